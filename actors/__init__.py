"""The actor primitive: Actor, ActorRef, mailboxes with overflow policies, ask and tell.

``actors`` knows nothing of supervisors or events: an ``ActorCell`` runs one incarnation at a time and a
supervisor (package ``supervisor``) decides what happens when one ends.
"""

from actors._actor import Actor, ActorContext
from actors._cell import ActorCell, ActorStatistics, Redelivery, Terminated
from actors._dead_letters import DeadLetter, DeadLetterReason, DeadLetters
from actors._errors import ActorError, ActorStoppedError, MailboxFullError, RequestDroppedError
from actors._mailbox import Mailbox, MailboxSpec, Overflow
from actors._ref import ActorRef
from actors._waiting import TrioFuture, current_future_factory

__all__ = (
    "Actor",
    "ActorCell",
    "ActorContext",
    "ActorError",
    "ActorRef",
    "ActorStatistics",
    "ActorStoppedError",
    "DeadLetter",
    "DeadLetterReason",
    "DeadLetters",
    "Mailbox",
    "MailboxFullError",
    "MailboxSpec",
    "Overflow",
    "Redelivery",
    "RequestDroppedError",
    "Terminated",
    "TrioFuture",
    "current_future_factory",
)

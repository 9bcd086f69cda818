"""The actor primitive: Actor, ActorRef, mailboxes with overflow policies, ask and tell.

``actors`` knows nothing of supervisors or events: an ``ActorCell`` runs one incarnation at a time and a
supervisor (package ``supervisor``) decides what happens when one ends.
"""

import logging

from actors._actor import Actor, ActorContext, DirectPath
from actors._cancellation import escaped_cancellation
from actors._cell import ActorCell, ActorSetup, ActorStatistics, Redelivery, Terminated
from actors._dead_letters import DeadLetter, DeadLetterReason, DeadLetters
from actors._errors import (
    ActorCrashedError,
    ActorError,
    ActorStoppedError,
    MailboxFullError,
    RequestDroppedError,
    WrongThreadError,
    describe_exception,
)
from actors._mailbox import Mailbox, MailboxSpec, Overflow, Request
from actors._ref import ActorRef
from actors._waiting import FutureFactory, OneShot, TrioFuture, current_future_factory

# the library never configures logging: records go nowhere unless the application adds a handler
logging.getLogger("actors").addHandler(logging.NullHandler())

__all__ = (
    "Actor",
    "ActorCell",
    "ActorContext",
    "ActorCrashedError",
    "ActorError",
    "ActorRef",
    "ActorSetup",
    "ActorStatistics",
    "ActorStoppedError",
    "DeadLetter",
    "DeadLetterReason",
    "DeadLetters",
    "DirectPath",
    "FutureFactory",
    "Mailbox",
    "MailboxFullError",
    "MailboxSpec",
    "OneShot",
    "Overflow",
    "Redelivery",
    "Request",
    "RequestDroppedError",
    "Terminated",
    "TrioFuture",
    "WrongThreadError",
    "current_future_factory",
    "describe_exception",
    "escaped_cancellation",
)

"""The Actor base class and the context the runtime gives each incarnation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from actors._mailbox import Mailbox
    from actors._ref import ActorRef


class ActorContext:
    """What an actor knows of itself: its ref, its incarnation, the current delivery attempt.

    ``attempt`` is the delivery attempt of the message being processed: 1, or 2, 3, ... when a message
    that crashed the previous incarnation is redelivered (see ``Redelivery``). The runtime's
    ``ActorCell`` is its actor's context (it subclasses this class, so that an actor costs one object
    rather than two); an actor uses only the names below.
    """

    __slots__ = ()

    #: the actor's own ref (stable across restarts)
    ref: ActorRef
    #: the actor's name
    name: str
    #: 1 for the first incarnation, incremented at every restart
    incarnation: int
    #: delivery attempt of the message being processed: 1, or more when it is redelivered
    attempt: int

    if TYPE_CHECKING:

        @property
        def mailbox(self) -> Mailbox: ...

        def request_stop(self) -> None: ...

    @property
    def queued(self) -> int:
        """How many messages wait in the mailbox behind the current one (lets an actor batch)."""
        return len(self.mailbox)

    def stop(self) -> None:
        """Stop normally once the current message is processed (a normal exit, not a crash)."""
        self.request_stop()


@attrs.frozen
class DirectPath:
    """A fast path for plain tells, which an actor may offer from ``Actor.direct``: the runtime's loop
    awaits the awaitable ``start(message)`` returns in place of ``receive(message)`` (one coroutine
    layer less per message), then calls ``done(message)``.

    - ``start(message)`` returns the awaitable that processes ``message`` (typically the user's own
      coroutine), or None to have ``receive`` process it as usual. It is asked only for a tell at its
      first delivery attempt; redeliveries always go to ``receive``.
    - ``done(message)`` runs synchronously after that awaitable completed (per-message accounting).
    - ``ask(message)``, optional, is ``start`` for asks: the awaitable it returns replaces
      ``receive(message)`` for the message of an ask (``Request.message``), and its result is the
      reply; None sends that ask to ``receive``. ``done`` is not called for asks. Without it, asks
      go to ``receive``.
    - ``failed(message, error)`` runs when the awaitable (of ``start`` or ``ask``) raised ``error``
      (any ``BaseException``, a kill's cancellation included) and returns the exception to raise in
      its place (``error`` itself, or a new one that is raised ``from error``); the incarnation then
      crashes, or is killed, exactly as if ``receive`` had raised it (an asker gets that exception).
      An exception raised by ``start``, ``ask`` or ``done`` themselves crashes the incarnation as
      well (``failed`` is not called for it; after ``done`` the message already counts as processed
      and is not retried).

    Every per-message guarantee of ``receive`` holds: ``processed``/``failed`` counters, the crash
    handling (retry in place, dead letter), kill, stop requests, idling, FIFO order.
    """

    start: Callable[[Any], Awaitable[Any] | None]
    done: Callable[[Any], None]
    failed: Callable[[Any, BaseException], BaseException]
    ask: Callable[[Any], Awaitable[Any] | None] | None = None


class Actor:
    """Subclass and override ``receive``; a fresh instance is made for every incarnation.

    ``receive``'s return value is the reply to an ``ask``; an exception raised from it crashes the
    incarnation (and is raised to the asker, when the message was an ``ask``). ``on_start`` runs before
    the first message of an incarnation, ``on_stop`` after its last one: on a normal stop, on a stop
    requested by the supervisor, and after a crash. Neither runs when the incarnation is killed
    (brutal kill, or a shutdown timeout that ran out), as in OTP.
    """

    __slots__ = ("_context",)  # subclasses without __slots__ still get a __dict__ as usual

    _context: ActorContext

    @property
    def context(self) -> ActorContext:
        """This incarnation's context (available from ``on_start`` on)."""
        return self._context

    async def on_start(self) -> None:
        """Runs when an incarnation starts; raising here fails the start."""

    async def on_stop(self) -> None:
        """Runs when an incarnation ends, unless it was killed."""

    def on_activate(self) -> None:
        """Runs (synchronously) in the task that is about to process this incarnation's mail: after
        ``on_start``, and again each time an idle incarnation gets a task back. For task-local state
        (context variables) that ``receive`` reads: set here, it costs nothing while the actor is
        idle, where a variable set in ``on_start`` makes the runtime keep that context for the whole
        incarnation. Raising here crashes the incarnation (``on_stop`` runs)."""

    def direct(self) -> DirectPath | None:
        """An optional fast path for tells (see ``DirectPath``), asked once per activation, after
        ``on_activate``; None (the default) sends every message to ``receive``."""
        return None

    async def receive(self, message: Any) -> Any:
        """Process one message; the return value answers an ``ask``."""
        raise NotImplementedError(f"{type(self).__name__} must implement receive()")

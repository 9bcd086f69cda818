"""ActorCell: an actor's identity (name, mailbox, counters, watchers) and its incarnation loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import attrs

from actors._actor import Actor, ActorContext
from actors._cancellation import call_listener, escaped_cancellation
from actors._dead_letters import DeadLetter, DeadLetterReason, DeadLetters
from actors._errors import ActorStoppedError
from actors._mailbox import UNBOUNDED, Mailbox, MailboxSpec, Request, fail_request
from actors._ref import ActorRef
from actors._waiting import FutureFactory, OneShot, current_future_factory


@attrs.frozen
class Terminated:
    """Notice that an actor (or supervisor) stopped for good. ``error`` is None for a normal stop."""

    name: str
    error: BaseException | None = None


@attrs.frozen
class ActorStatistics:
    """A snapshot of one actor's counters."""

    name: str
    incarnation: int
    mailbox_depth: int
    processed: int
    failed: int
    alive: bool


@attrs.frozen
class Redelivery:
    """How a message that crashed its actor is retried by the next incarnation, before anything else.

    ``max_redeliveries`` is how many times it is redelivered after the first attempt (0: never, it is
    dead-lettered at once). ``delay(attempt)`` gives the pause before delivery number ``attempt`` (2, 3, ...).
    Asks are never redelivered: their error went to the asker.
    """

    max_redeliveries: int = 0
    delay: Callable[[int], float] | None = None

    def __attrs_post_init__(self) -> None:
        if self.max_redeliveries < 0:
            raise ValueError(f"max_redeliveries must be >= 0, got {self.max_redeliveries!r}")


NO_REDELIVERY = Redelivery()
Watcher = Callable[[Terminated], None]


class ActorCell:
    """Everything about an actor that outlives one incarnation, plus ``run`` for one incarnation."""

    __slots__ = (
        "_factory",
        "_pause",
        "_redelivery",
        "_stop_requested",
        "_terminated",
        "_watchers",
        "dead_letters",
        "failed",
        "incarnation",
        "mailbox",
        "name",
        "new_future",
        "processed",
        "redelivery",
        "ref",
    )

    def __init__(
        self,
        name: str,
        factory: Callable[[], Actor],
        *,
        mailbox: MailboxSpec = UNBOUNDED,
        redelivery: Redelivery = NO_REDELIVERY,
        dead_letters: DeadLetters | None = None,
        new_future: FutureFactory | None = None,
    ) -> None:
        self.name = name
        self._factory = factory
        self.new_future = new_future or current_future_factory()
        self.dead_letters = dead_letters if dead_letters is not None else DeadLetters()
        self.mailbox = Mailbox(name, mailbox, self.dead_letters, self.new_future)
        self.redelivery = redelivery
        self.ref = ActorRef(self)
        self.incarnation = 0
        self.processed = 0
        self.failed = 0
        self._redelivery: tuple[Any, int] | None = None
        self._stop_requested = False
        self._pause: OneShot | None = None
        self._watchers: list[Watcher] = []
        self._terminated: Terminated | None = None

    # -- control, called by the supervisor ------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the running incarnation to end after its current message."""
        self._stop_requested = True
        self.mailbox.wake()
        pause = self._pause
        if pause is not None and not pause.done():
            pause.set_result(None)

    def terminate(self, error: BaseException | None = None) -> None:
        """The actor stopped for good: close the mailbox and notify watchers (once)."""
        if self._terminated is not None:
            return
        self._terminated = notice = Terminated(self.name, error)
        pending, self._redelivery = self._redelivery, None
        if pending is not None:
            self._lose(pending[0], DeadLetterReason.STOPPED, error, pending[1] - 1)
        self.mailbox.close()
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            call_listener(watcher, notice, "watcher of actor %r raised; ignored", self.name)

    def revive(self) -> None:
        """Undo ``terminate`` before an explicit restart of a stopped actor."""
        self._terminated = None
        self.mailbox.reopen()

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        """Notify ``watcher`` when the actor stops for good; returns the unwatch function.

        Watchers run synchronously inside whatever stops the actor; an exception from one is logged (logger
        ``actors``) and ignored.
        """
        if self._terminated is not None:
            watcher(self._terminated)
            return lambda: None
        self._watchers.append(watcher)

        def unwatch() -> None:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

        return unwatch

    def statistics(self) -> ActorStatistics:
        """A frozen snapshot of this actor's counters."""
        return ActorStatistics(
            self.name,
            self.incarnation,
            len(self.mailbox) + (self._redelivery is not None),
            self.processed,
            self.failed,
            not self.mailbox.closed,
        )

    # -- one incarnation ------------------------------------------------------------------------

    async def run(self, started: Callable[[], None]) -> None:
        """Run one incarnation: ``on_start``, then ``started()``, then messages until a stop request.

        Returns on a normal exit, raises the actor's exception on a crash (after ``on_stop`` ran).
        """
        actor = self._factory()
        actor._context = context = ActorContext(self)
        self.incarnation += 1
        self._stop_requested = False
        try:
            await actor.on_start()
            started()
            try:
                await self._process(actor, context)
            except Exception:
                await actor.on_stop()
                raise
            await actor.on_stop()
        except BaseException as exc:
            crash = escaped_cancellation(self.name, exc)
            if crash is None:
                raise
            raise crash from exc

    async def _process(self, actor: Actor, context: ActorContext) -> None:
        mailbox = self.mailbox
        queue = mailbox.queue
        receive = actor.receive
        item: Any = None
        attempt = 1
        try:
            while not self._stop_requested:
                if self._redelivery is not None:
                    item, attempt = self._redelivery
                    delay = self.redelivery.delay
                    if delay is not None and not await self._paused(delay(attempt)):
                        item = None
                        break
                    self._redelivery = None
                elif queue:
                    item = queue.popleft()
                    if mailbox._senders:  # a sender waits for room: let one in
                        mailbox.took_one()
                    if attempt != 1:
                        attempt = context.attempt = 1
                    if type(item) is not Request:
                        # the common case, kept short: a tell, first delivery
                        await receive(item)
                        item = None
                        self.processed += 1
                        continue
                else:
                    await mailbox.wait_nonempty()
                    continue
                context.attempt = attempt
                if type(item) is Request:
                    result = await receive(item.message)
                    if not item.reply.done():
                        item.reply.set_result(result)
                else:
                    await receive(item)
                item = None
                self.processed += 1
        except Exception as exc:
            self._crashed(item, attempt, exc)
            raise
        except BaseException as exc:
            crash = escaped_cancellation(self.name, exc)
            if crash is not None:
                # not a kill: an ordinary crash, and the asker must not get a bare cancellation
                self._crashed(item, attempt, crash)
                raise crash from exc
            if item is not None and self._redelivery is None:
                # killed (cancelled), or a BaseException such as SystemExit that will end the tree:
                # an asker gets that exception itself rather than a stopped-actor error
                cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
                self._lose(item, DeadLetterReason.KILLED, None if cancelled else exc, attempt)
            raise

    def _crashed(self, item: Any, attempt: int, error: Exception) -> None:
        self.failed += 1
        if item is None:
            return
        if type(item) is Request:
            # asks are never redelivered: the error goes to the asker
            fail_request(item, error)
        elif attempt <= self.redelivery.max_redeliveries:
            self._redelivery = (item, attempt + 1)
        else:
            self._redelivery = None
            self._lose(item, DeadLetterReason.CRASHED, error, attempt)

    async def _paused(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; False when a stop request cut the pause short."""
        if delay <= 0:
            return True
        self._pause = pause = self.new_future()
        try:
            with anyio.move_on_after(delay):
                await pause
        finally:
            self._pause = None
        return not self._stop_requested

    def _lose(self, item: Any, reason: DeadLetterReason, error: BaseException | None, attempts: int) -> None:
        if type(item) is Request:
            fail_request(item, error or ActorStoppedError(f"actor {self.name!r} stopped"))
            return
        self.dead_letters.report(DeadLetter(item, self.name, reason, error, attempts))

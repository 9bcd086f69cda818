"""ActorCell: an actor's identity (name, mailbox, counters, watchers) and its incarnation loop."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any, Protocol

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
    #: True while the incarnation lives on without a task (its mailbox stayed empty past the linger)
    idle: bool = False


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


def _changed_vars(found: contextvars.Context) -> contextvars.Context | None:
    """This task's context now, if it differs from ``found`` (taken before ``on_start``); else None."""
    now = contextvars.copy_context()
    if len(now) == len(found) and all(found.get(var, found) is value for var, value in now.items()):
        return None
    return now


class ActivationHost(Protocol):
    """Runs an idle incarnation again: what a supervisor gives ``ActorCell.run`` so that its actor can
    give up its task while idle. ``activate`` must start a task (in the host's task group, inside
    ``cell.task_context`` when there is one and never in the caller's context, which is a sender's)
    that calls ``cell.resume()``, or do nothing when the child is not running (its next incarnation
    then takes the mail)."""

    def activate(self, cell: ActorCell, /) -> None: ...


class ActorCell(ActorContext):
    """Everything about an actor that outlives one incarnation, plus ``run`` for one incarnation.

    It is also the ``ActorContext`` its actor sees (one object per actor rather than two: a supervisor
    may hold 100,000 idle actors); an actor uses only the context's names.
    """

    __slots__ = (
        "_actor",
        "_factory",
        "_host",
        "_pause",
        "_redelivery",
        "_retiring",
        "_stop_requested",
        "_terminated",
        "_vars",
        "_watchers",
        "attempt",
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
        self.attempt = 1
        self._factory = factory
        self.new_future = new_future or current_future_factory()
        self.dead_letters = dead_letters if dead_letters is not None else DeadLetters()
        self.mailbox = Mailbox(name, mailbox, self.dead_letters, self.new_future, self)
        self.redelivery = redelivery
        self.ref = ActorRef(self)
        self.incarnation = 0
        self.processed = 0
        self.failed = 0
        self._redelivery: tuple[Any, int] | None = None
        self._stop_requested = False
        self._pause: OneShot | None = None
        self._watchers: list[Watcher] | None = None  # made on first watch: idle actors are many
        self._terminated: Terminated | None = None
        #: the live incarnation, between its on_start and its end (also while it is idle)
        self._actor: Actor | None = None
        self._host: ActivationHost | None = None
        self._retiring = False
        self._vars: contextvars.Context | None = None

    # -- control, called by the supervisor ------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the running incarnation to end after its current message (an idle one is activated to run
        its ``on_stop``)."""
        self._stop_requested = True
        mailbox = self.mailbox
        if mailbox.idle:
            if self._actor is not None:
                mailbox.unidle()
                self.activate()
        else:
            mailbox.wake()
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
        self._actor = None
        self.mailbox.close()
        watchers, self._watchers = self._watchers or (), None
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
        if self._watchers is None:
            self._watchers = []
        self._watchers.append(watcher)

        def unwatch() -> None:
            if self._watchers is not None and watcher in self._watchers:
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
            self.idle,
        )

    # -- one incarnation ------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """True while the incarnation lives on without a task (its mailbox stayed empty past the linger)."""
        return self._actor is not None and self.mailbox.idle

    @property
    def task_context(self) -> contextvars.Context | None:
        """The context variables this incarnation's ``on_start`` set, for its later tasks to run in
        (``Context.run(task_group.start_soon, ...)``), so that receive sees them as it did when one task
        ran the whole incarnation; None when ``on_start`` set none."""
        return self._vars

    def activate(self) -> None:
        """A message (or a stop request) arrived for an idle incarnation: ask the host for a task."""
        host = self._host
        if host is not None and self._actor is not None:
            host.activate(self)

    def abandon(self) -> None:
        """The idle incarnation was killed: it ends without ``on_stop``, as a killed busy one would."""
        if self.mailbox.idle:
            self._actor = None

    def linger_check(self, mark: object) -> object:
        """One look of a host's linger sweep; returns the mark to pass at the next look.

        A task parked on its empty mailbox since the previous look (same ``mark``) is asked to end and
        leave the incarnation idle; the next message, or a stop request, makes the host ``activate`` it.
        """
        receiver = self.mailbox._receiver
        if receiver is None:
            return None  # busy, or already leaving
        if receiver is mark:
            self._retiring = True
            self.mailbox.wake()
            return None
        return receiver

    async def run(self, started: Callable[[], None], host: ActivationHost | None = None) -> bool:
        """Start an incarnation (``on_start``, then ``started()``) and run its first activation.

        Returns True on a normal exit (after ``on_stop`` ran) and raises the actor's exception on a
        crash (after ``on_stop`` ran). With a ``host`` it may instead return False: the mailbox was
        empty right after ``on_start``, or the task stayed parked on it past the host's linger (see
        ``linger_check``); the incarnation then lives on without a task until a message or a stop
        request makes the host call ``activate`` and then ``resume`` in a new task.
        """
        actor = self._factory()
        actor._context = self
        self.incarnation += 1
        self._stop_requested = False
        self._retiring = False
        self._host = host
        self._actor = None
        self._vars = None
        found = contextvars.copy_context() if host is not None else None
        try:
            await actor.on_start()
        except BaseException as exc:
            crash = escaped_cancellation(self.name, exc)
            if crash is None:
                raise
            raise crash from exc
        if found is not None:
            self._vars = _changed_vars(found)
        self._actor = actor
        started()
        mailbox = self.mailbox
        if host is not None and not mailbox and self._redelivery is None and not self._stop_requested:
            # nothing to do yet: hold no task until the first message (a tree may start 100,000 actors)
            mailbox.go_idle()
            return False
        return await self.resume()

    async def resume(self) -> bool:
        """Run the live incarnation in this task again: the same outcome as ``run``."""
        actor = self._actor
        if actor is None:
            raise RuntimeError(f"actor {self.name!r} has no live incarnation to resume")
        self.mailbox.unidle()
        try:
            if await self._process(actor):
                return False
        except Exception:
            self._actor = None
            await self._end(actor)
            raise
        except BaseException:
            # killed, or a BaseException that ends the tree: no on_stop
            self._actor = None
            raise
        self._actor = None
        await self._end(actor)
        return True

    async def _end(self, actor: Actor) -> None:
        try:
            await actor.on_stop()
        except BaseException as exc:
            crash = escaped_cancellation(self.name, exc)
            if crash is None:
                raise
            raise crash from exc

    async def _process(self, actor: Actor) -> bool:
        """Messages until a stop request (False) or, when asked to retire while parked, idle (True)."""
        mailbox = self.mailbox
        queue = mailbox.queue
        receive = actor.receive
        item: Any = None
        context = self  # the actor's context: ``attempt`` is read from it
        attempt = context.attempt = 1
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
                    if self._retiring:
                        # the linger sweep woke us: leave, unless something arrived meanwhile
                        self._retiring = False
                        if not queue and not self._stop_requested:
                            mailbox.go_idle()
                            return True
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
            return False
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

"""ActorCell: an actor's identity (name, mailbox, counters, watchers) and its incarnation loop."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
import attrs

from actors._actor import Actor, ActorContext, DirectPath
from actors._cancellation import call_listener, escaped_cancellation
from actors._dead_letters import DeadLetter, DeadLetterReason, DeadLetters
from actors._errors import ActorStoppedError
from actors._mailbox import (
    IDLE_QUEUE,
    RETIRE,
    UNBOUNDED,
    Mailbox,
    MailboxSpec,
    Request,
    fail_request,
)
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


def _no_start(message: Any) -> None:
    return None


def _no_done(message: Any) -> None:
    return None


def _same_error(message: Any, error: BaseException) -> BaseException:
    return error


#: what the loop reads for an actor without a fast path: never started
_NO_DIRECT_PATH = DirectPath(_no_start, _no_done, _same_error)
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


class _Rare:
    """The parts of an actor's state that most actors never use, made on first use: an idle actor
    costs one slot for them rather than four."""

    __slots__ = ("pause", "redelivery", "terminated", "vars", "watchers")

    def __init__(self) -> None:
        #: the message that crashed the last incarnation and its next attempt number, to go first
        self.redelivery: tuple[Any, int] | None = None
        self.pause: OneShot | None = None
        self.terminated: Terminated | None = None
        #: the context variables its incarnation's on_start set (see ``ActorCell.task_context``)
        self.vars: contextvars.Context | None = None
        self.watchers: list[Watcher] | None = None

    def unused(self) -> bool:
        return (
            self.redelivery is None
            and self.pause is None
            and self.terminated is None
            and self.vars is None
            and not self.watchers
        )


class ActorSetup(Protocol):
    """What an actor is made from: ``start()`` makes the ``Actor`` of each incarnation, ``redelivery``
    retries what crashed it. A ``supervisor.ChildSpec`` is one (see ``ActorCell``'s ``setup``)."""

    @property
    def start(self) -> Any: ...

    @property
    def redelivery(self) -> Redelivery: ...


class _Setup:
    __slots__ = ("redelivery", "start")

    def __init__(self, start: Callable[[], Actor], redelivery: Redelivery) -> None:
        self.start = start
        self.redelivery = redelivery


class ActorCell(Mailbox, ActorContext):
    """Everything about an actor that outlives one incarnation, plus ``run`` for one incarnation.

    It is its own mailbox and the ``ActorContext`` its actor sees (one object per actor rather than
    three: a supervisor may hold 100,000 idle actors); an actor uses only the context's names, and
    senders only the ``Mailbox`` ones.
    """

    __slots__ = (
        "_actor",
        "_host",
        "_rare",
        "_setup",
        "_stop_requested",
        "attempt",
        "failed",
        "incarnation",
        "processed",
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
        setup: ActorSetup | None = None,
    ) -> None:
        """``setup``, when given, is read instead of ``factory`` and ``redelivery`` (its ``start`` and
        ``redelivery``), whenever they are needed: an object the owner keeps anyway (a supervisor's
        ``ChildSpec``) rather than two more references per actor."""
        Mailbox.__init__(
            self,
            name,
            mailbox,
            dead_letters if dead_letters is not None else DeadLetters(),
            new_future or current_future_factory(),
        )
        self.attempt = 1
        self._setup: ActorSetup = _Setup(factory, redelivery) if setup is None else setup
        self.ref = ActorRef(self)
        self.incarnation = 0
        self.processed = 0
        self.failed = 0
        self._stop_requested = False
        self._rare: _Rare | None = None
        #: the live incarnation, between its on_start and its end (also while it is idle)
        self._actor: Actor | None = None
        self._host: ActivationHost | None = None

    @property
    def setup(self) -> ActorSetup:
        """What each incarnation is made from (``start``) and how crashed messages are retried."""
        return self._setup

    @property
    def redelivery(self) -> Redelivery:
        """How a message that crashed the actor is retried."""
        return self._setup.redelivery

    @property
    def mailbox(self) -> Mailbox:
        """The actor's mailbox: the cell itself."""
        return self

    def _rare_state(self) -> _Rare:
        rare = self._rare
        if rare is None:
            self._rare = rare = _Rare()
        return rare

    def _pending(self) -> tuple[Any, int] | None:
        rare = self._rare
        return None if rare is None else rare.redelivery

    def _clear_pending(self) -> None:
        rare = self._rare
        if rare is not None:
            rare.redelivery = None
            self._drop_rare_if_unused()

    def _drop_rare_if_unused(self) -> None:
        rare = self._rare
        if rare is not None and rare.unused():
            self._rare = None

    # -- control, called by the supervisor ------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the running incarnation to end after its current message (an idle one is activated to run
        its ``on_stop``)."""
        self._stop_requested = True
        if self.queue is IDLE_QUEUE:
            if self._actor is not None:
                self.unidle()
                self.activate()
        else:
            self.wake()
        rare = self._rare
        pause = None if rare is None else rare.pause
        if pause is not None and not pause.done():
            pause.set_result(None)

    def terminate(self, error: BaseException | None = None) -> Terminated | None:
        """The actor stopped for good: close the mailbox and notify watchers (once). Returns the
        notice the watchers got, or None when it had already stopped (nothing was notified)."""
        rare = self._rare_state()
        if rare.terminated is not None:
            return None
        rare.terminated = notice = Terminated(self.name, error)
        pending, rare.redelivery = rare.redelivery, None
        if pending is not None:
            self._lose(pending[0], DeadLetterReason.STOPPED, error, pending[1] - 1)
        self._actor = None
        self.close()
        watchers, rare.watchers = rare.watchers or (), None
        for watcher in watchers:
            call_listener(watcher, notice, "watcher of actor %r raised; ignored", self.name)
        return notice

    def revive(self) -> None:
        """Undo ``terminate`` before an explicit restart of a stopped actor."""
        if self._rare is not None:
            self._rare.terminated = None
            self._drop_rare_if_unused()
        self.reopen()

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        """Notify ``watcher`` when the actor stops for good; returns the unwatch function.

        Watchers run synchronously inside whatever stops the actor; an exception from one is logged (logger
        ``actors``) and ignored.
        """
        rare = self._rare_state()
        if rare.terminated is not None:
            watcher(rare.terminated)
            return lambda: None
        if rare.watchers is None:
            rare.watchers = []
        rare.watchers.append(watcher)

        def unwatch() -> None:
            rare = self._rare
            if rare is not None and rare.watchers is not None and watcher in rare.watchers:
                rare.watchers.remove(watcher)
                self._drop_rare_if_unused()

        return unwatch

    def statistics(self) -> ActorStatistics:
        """A frozen snapshot of this actor's counters."""
        return ActorStatistics(
            self.name,
            self.incarnation,
            len(self.queue) + (self._pending() is not None),
            self.processed,
            self.failed,
            not self._closed,
            self.idle,
        )

    # -- one incarnation ------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """True while the incarnation lives on without a task (its mailbox stayed empty past the linger)."""
        return self._actor is not None and self.queue is IDLE_QUEUE

    @property
    def task_context(self) -> contextvars.Context | None:
        """The context variables this incarnation's ``on_start`` set, for its later tasks to run in
        (``Context.run(task_group.start_soon, ...)``), so that receive sees them as it did when one task
        ran the whole incarnation; None when ``on_start`` set none."""
        rare = self._rare
        return None if rare is None else rare.vars

    def activate(self) -> None:
        """A message (or a stop request) arrived for an idle incarnation: ask the host for a task."""
        host = self._host
        if host is not None and self._actor is not None:
            host.activate(self)

    def _woke(self) -> None:
        self.activate()

    def abandon(self) -> None:
        """The idle incarnation was killed: it ends without ``on_stop``, as a killed busy one would."""
        if self.queue is IDLE_QUEUE:
            self._actor = None

    def linger_check(self, mark: object) -> object:
        """One look of a host's linger sweep; returns the mark to pass at the next look.

        A task parked on its empty mailbox since the previous look (same ``mark``) is asked to end and
        leave the incarnation idle; the next message, or a stop request, makes the host ``activate`` it.
        """
        receiver = self._receiver
        if receiver is None:
            return None  # busy, or already leaving
        if receiver is mark:
            self.retire()
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
        actor: Actor = self._setup.start()
        actor._context = self
        self.incarnation += 1
        self._stop_requested = False
        self._host = host
        self._actor = None
        if self._rare is not None:
            self._rare.vars = None
            self._drop_rare_if_unused()
        found = contextvars.copy_context() if host is not None else None
        try:
            await actor.on_start()
        except BaseException as exc:
            crash = escaped_cancellation(self.name, exc)
            if crash is None:
                raise
            raise crash from exc
        if found is not None:
            changed = _changed_vars(found)
            if changed is not None:
                self._rare_state().vars = changed
        self._actor = actor
        started()
        if host is not None and not self.queue and self._pending() is None and not self._stop_requested:
            # nothing to do yet: hold no task until the first message (a tree may start 100,000 actors)
            self.go_idle()
            return False
        return await self.resume()

    async def resume(self) -> bool:
        """Run the live incarnation in this task again: the same outcome as ``run``."""
        actor = self._actor
        if actor is None:
            raise RuntimeError(f"actor {self.name!r} has no live incarnation to resume")
        self.unidle()
        try:
            actor.on_activate()
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
        mailbox = self
        queue = mailbox.queue
        receive = actor.receive
        # the actor's fast path for plain tells, if it offers one: its awaitable replaces receive's
        path = actor.direct() or _NO_DIRECT_PATH
        start: Callable[[Any], Awaitable[Any] | None] | None = (
            None if path is _NO_DIRECT_PATH else path.start
        )
        done, failed, answer = path.done, path.failed, path.ask
        item: Any = None
        context = self  # the actor's context: ``attempt`` is read from it
        attempt = context.attempt = 1
        # only a crash, which ends this loop, sets a redelivery: it is looked up once, not per message
        pending = self._pending()
        try:
            while not self._stop_requested:
                if pending is not None:
                    item, attempt = pending
                    delay = self.redelivery.delay
                    if delay is not None and not await self._paused(delay(attempt)):
                        item = None
                        break
                    pending = None
                    self._clear_pending()
                elif queue:
                    item = queue.popleft()
                    if mailbox._senders:  # a sender waits for room: let one in
                        mailbox.took_one()
                    if attempt != 1:
                        attempt = context.attempt = 1
                    if type(item) is not Request:
                        # the common case, kept short: a tell, first delivery
                        if start is not None:
                            work = start(item)
                            if work is not None:
                                try:
                                    await work
                                except BaseException as exc:
                                    error = failed(item, exc)
                                    if error is exc:
                                        raise
                                    raise error from exc
                                message, item = item, None
                                self.processed += 1
                                done(message)
                                continue
                        await receive(item)
                        item = None
                        self.processed += 1
                        continue
                    if answer is not None:
                        # an ask (never a redelivery: asks are not redelivered), the fast way
                        work = answer(item.message)
                        if work is not None:
                            try:
                                result = await work
                            except BaseException as exc:
                                error = failed(item.message, exc)
                                if error is exc:
                                    raise
                                raise error from exc
                            reply = item.reply
                            item = None
                            self.processed += 1
                            if not reply.done():
                                reply.set_result(result)
                            continue
                else:
                    # wait_nonempty() inlined (the queue is empty here): a round trip such as an ask
                    # parks once per message, and this saves a coroutine each time
                    receiver = mailbox.new_future()
                    mailbox._receiver = receiver
                    try:
                        woke = await receiver
                    finally:
                        if mailbox._receiver is receiver:
                            mailbox._receiver = None
                    # the linger sweep may wake us with RETIRE: leave, unless something arrived meanwhile
                    if woke is RETIRE and not queue and not self._stop_requested:
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
            if item is not None and pending is None:
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
            self._rare_state().redelivery = (item, attempt + 1)
        else:
            self._clear_pending()
            self._lose(item, DeadLetterReason.CRASHED, error, attempt)

    async def _paused(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; False when a stop request cut the pause short."""
        if delay <= 0:
            return True
        rare = self._rare_state()
        rare.pause = pause = self.new_future()
        try:
            with anyio.move_on_after(delay):
                await pause
        finally:
            rare.pause = None
            self._drop_rare_if_unused()
        return not self._stop_requested

    def _lose(self, item: Any, reason: DeadLetterReason, error: BaseException | None, attempts: int) -> None:
        if type(item) is Request:
            fail_request(item, error or ActorStoppedError(f"actor {self.name!r} stopped"))
            return
        self.dead_letters.report(DeadLetter(item, self.name, reason, error, attempts))

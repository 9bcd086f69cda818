"""The supervisor runtime: starts children in order, applies its strategy when one exits, gives up
past its restart intensity, and stops children in reverse order within their shutdown timeouts."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
from collections import deque
from collections.abc import Callable

import anyio

from actors import (
    ActorCell,
    ActorRef,
    ActorStoppedError,
    DeadLetters,
    FutureFactory,
    OneShot,
    Terminated,
    current_future_factory,
    describe_exception,
    escaped_cancellation,
)
from supervisor._activations import Activations
from supervisor._child import (
    ActorChild,
    Child,
    ChildState,
    Exit,
    RestartDue,
    SupervisorChild,
    Timer,
    WakeDue,
    is_shutdown,
    more_of,
    over_intensity,
    trim,
)
from supervisor._errors import ChildNotFoundError, ChildStartError, RestartIntensityExceeded
from supervisor._linger import Sweeper
from supervisor._restart_plan import backoff_delay, restart_group, restart_times_of
from supervisor._shutdown import exited_within, stop_child
from supervisor._snapshot import ChildCounts, ChildInfo, TreeSnapshot
from supervisor._spec import BRUTAL_KILL, ChildSpec, Restart, SupervisorSpec

_log = logging.getLogger("supervisor")


def unwrap_group(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The single exception inside (nested) one-exception groups; the group itself otherwise."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


GiveUpListener = Callable[[str, RestartIntensityExceeded], None]

#: what a child's start future is resolved with when a stop request cuts the wait for it short
_STOP = object()


def _describe_exit(error: BaseException | None) -> str:
    # never the error's repr in a log message: a user's exception whose __repr__ raises would make
    # logging drop the record
    return "a normal exit" if error is None else describe_exception(error)


class Supervisor:
    """A supervisor's identity and runtime. Root supervisors come from ``open_supervisor``; nested ones
    are children of another. Each ``run`` is one incarnation: the static children start afresh, dynamic
    children added at run time are gone."""

    def __init__(
        self,
        name: str,
        spec: SupervisorSpec,
        *,
        dead_letters: DeadLetters | None = None,
        new_future: FutureFactory | None = None,
        on_give_up: GiveUpListener | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        #: called (name, error) when this supervisor or one nested below it gives up
        self.on_give_up = on_give_up
        self.dead_letters = dead_letters if dead_letters is not None else DeadLetters()
        self.new_future = new_future or current_future_factory()
        self.incarnation = 0
        self.restarts = 0
        #: the children by id, in start order (one table, not a list beside it: 100,000 children)
        self._by_id: dict[str, Child] = {}
        self._events: deque[Exit | RestartDue | WakeDue] = deque()
        self._wake: OneShot | None = None
        self._restart_times: list[float] = []
        #: retires idle actor children (None with linger=None); one per incarnation
        self._sweeper: Sweeper | None = None
        #: runs idle actor children again (None with linger=None); one per incarnation
        self._activations: Activations | None = None
        self._context = contextvars.copy_context()
        self._stop_requested = False
        #: a SystemExit, KeyboardInterrupt, ... from a child that was being stopped: it ends the tree
        self._interrupt: BaseException | None = None
        #: the future a child's start is awaited on: a stop request resolves it with ``_STOP``
        self._starting: OneShot | None = None
        #: "starting" (static children starting), "running" or "stopped"
        self._phase = "stopped"
        self._tg: anyio.abc.TaskGroup | None = None
        self._lock = anyio.Lock()
        self._watchers: list[Callable[[Terminated], None]] = []
        self._terminated: Terminated | None = None

    # -- inspection -------------------------------------------------------------------------------

    def which_children(self) -> list[ChildInfo]:
        """The children in start order, as OTP's ``which_children``."""
        return [
            ChildInfo(
                c.spec.id,
                "supervisor" if c.spec.is_supervisor else "actor",
                c.state.value,
                c.restarts,
                c.runnable.ref if isinstance(c.runnable, ActorCell) else None,
                c.runnable if isinstance(c.runnable, Supervisor) else None,
            )
            for c in self._by_id.values()
        ]

    def count_children(self) -> ChildCounts:
        """How many children, as OTP's ``count_children``: specs, active ones, supervisors, workers."""
        supervisors = active = 0
        ended = (ChildState.STOPPED, ChildState.GAVE_UP)
        for c in self._by_id.values():
            supervisors += c.spec.is_supervisor
            active += c.state not in ended
        specs = len(self._by_id)
        return ChildCounts(specs, active, supervisors, specs - supervisors)

    def ref(self, child_id: str) -> ActorRef:
        """The ref of actor child ``child_id``."""
        runnable = self._find(child_id).runnable
        if not isinstance(runnable, ActorCell):
            raise ChildNotFoundError(f"child {child_id!r} of {self.name!r} is a supervisor, not an actor")
        return runnable.ref

    def supervisor(self, child_id: str) -> Supervisor:
        """The nested supervisor ``child_id``."""
        runnable = self._find(child_id).runnable
        if not isinstance(runnable, Supervisor):
            raise ChildNotFoundError(f"child {child_id!r} of {self.name!r} is an actor, not a supervisor")
        return runnable

    def snapshot(self, state: str | None = None, restarts: int | None = None) -> TreeSnapshot:
        """A frozen snapshot of the whole tree below this supervisor; ``print`` renders it.

        Each node's ``restarts`` counts how often that node was restarted by its parent (0 for a root).
        """
        children: list[TreeSnapshot] = []
        for c in self._by_id.values():
            if isinstance(c.runnable, Supervisor):
                children.append(c.runnable.snapshot(c.state.value, c.restarts))
            else:
                stats = c.runnable.statistics()
                children.append(
                    TreeSnapshot(
                        c.spec.id, "actor", c.state.value, c.restarts,
                        stats.mailbox_depth, stats.processed, stats.failed,
                    )
                )
        return TreeSnapshot(
            self.name,
            "supervisor",
            state or self._phase,
            0 if restarts is None else restarts,
            children=tuple(children),
        )

    def watch(self, watcher: Callable[[Terminated], None]) -> Callable[[], None]:
        """Notify ``watcher`` when this supervisor stops for good (never on a restart). Watchers run
        synchronously; an exception from one is logged (logger ``supervisor``) and ignored."""
        if self._terminated is not None:
            watcher(self._terminated)
            return lambda: None
        self._watchers.append(watcher)
        return lambda: self._watchers.remove(watcher) if watcher in self._watchers else None

    # -- dynamic children ---------------------------------------------------------------------------

    async def start_child(self, spec: ChildSpec) -> ActorRef | Supervisor:
        """Add and start a child at run time; it is forgotten when this supervisor restarts."""
        async with self._lock:
            if spec.id in self._by_id:
                raise ValueError(f"supervisor {self.name!r} already has a child {spec.id!r}")
            child = self._new_child(spec)
            self._by_id[spec.id] = child
            try:
                await self._start(child)
            except BaseException as exc:
                # a caller that gave up (cancelled) leaves no child behind either
                self._forget(child)
                if not isinstance(exc, Exception):
                    self._terminate(child, None)
                    raise
                self._terminate(child, exc)
                raise ChildStartError(self.name, spec.id, exc) from exc
            return child.runnable.ref if isinstance(child.runnable, ActorCell) else child.runnable

    async def terminate_child(self, child_id: str) -> None:
        """Stop a child for good (watchers are notified); its spec stays until ``delete_child``."""
        async with self._lock:
            child = self._find(child_id)
            await stop_child(child, self.new_future)
            self._finish(child, None)

    async def restart_child(self, child_id: str) -> ActorRef | Supervisor:
        """Start again a child that was terminated; ``ChildStartError`` if its start fails (it then
        stays stopped)."""
        async with self._lock:
            child = self._find(child_id)
            if child.state not in (ChildState.STOPPED, ChildState.GAVE_UP):
                raise ChildNotFoundError(f"child {child_id!r} of {self.name!r} is {child.state.value}")
            child.runnable.revive()
            try:
                await self._start(child)
            except Exception as exc:
                self._terminate(child, exc)
                raise ChildStartError(self.name, child_id, exc) from exc
            return child.runnable.ref if isinstance(child.runnable, ActorCell) else child.runnable

    async def delete_child(self, child_id: str) -> None:
        """Forget a terminated child's spec."""
        async with self._lock:
            child = self._find(child_id)
            if child.state not in (ChildState.STOPPED, ChildState.GAVE_UP):
                raise ChildNotFoundError(f"child {child_id!r} of {self.name!r} is {child.state.value}")
            self._forget(child)

    # -- control ------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop the children in reverse order, then end this incarnation normally."""
        self._stop_requested = True
        self._notify()
        starting = self._starting
        if starting is not None and not starting.done():
            # a child is starting: its start must not hold the stop up past the child's shutdown
            starting.set_result(_STOP)

    def terminate(self, error: BaseException | None = None) -> Terminated | None:
        """This supervisor stopped for good: tell its watchers (once). Returns the notice they got, or
        None when it had already stopped."""
        if self._terminated is not None:
            return None
        self._terminated = notice = Terminated(self.name, error)
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            # a watcher's bug must not break the tree
            try:
                watcher(notice)
            except (Exception, asyncio.CancelledError, anyio.get_cancelled_exc_class()):
                _log.exception(
                    "watcher of supervisor %r raised; ignored", self.name, extra={"supervisor": self.name}
                )
        return notice

    def revive(self) -> None:
        """Undo ``terminate`` before an explicit restart."""
        self._terminated = None
        self._stop_requested = False

    async def run(self, started: Callable[[], None]) -> None:
        """One incarnation: start the static children in order, then supervise until stopped.

        Raises ``ChildStartError`` when a child fails to start (the started ones are stopped first) and
        ``RestartIntensityExceeded`` when it gives up (its children stopped newest-first).
        """
        self.incarnation += 1
        self._interrupt = None
        # not reset here but when a run ends: a stop requested before this task ran still counts
        self._events.clear()
        self._restart_times.clear()
        linger = self.spec.linger
        self._sweeper = None if linger is None else Sweeper(linger, self.new_future)
        #: the context idle actors' activations start from when their on_start set no variable
        self._context = contextvars.copy_context()
        self._by_id = {spec.id: self._new_child(spec) for spec in self.spec.children}
        failure: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self._phase = "starting"
                self._activations = None if self._sweeper is None else Activations(tg, self._context)
                if self._sweeper is not None:
                    tg.start_soon(self._sweeper.run, name=f"supervisor {self.name} linger")
                try:
                    async with self._lock:
                        await self._start_all()
                    # "running" only once every static child has started
                    self._phase = "running"
                    started()
                    await self._supervise()
                except Exception as exc:
                    failure = exc
                except BaseException as exc:
                    # a cancellation that is not ours (a user callback's) is a failure, never a quiet end
                    failure = escaped_cancellation(self.name, exc)
                    if failure is None:
                        raise
                finally:
                    self._phase = "stopped"
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # a BaseException (SystemExit, KeyboardInterrupt, ...) escaped a child: it ends this
            # supervisor and is raised as itself, not wrapped in the task group's group
            failure = unwrap_group(group)
            if failure is group:
                raise
        finally:
            self._stop_requested = False
            interrupt, self._interrupt = self._interrupt, None
            if interrupt is not None and (failure is None or isinstance(failure, Exception)):
                # it outranks a failure (a give-up) that came with it
                failure = interrupt
            # Children not stopped one by one (this supervisor was killed, or a child failed to start)
            # were cancelled with it: they are gone for good, so their refs must say so.
            for child in reversed(tuple(self._by_id.values())):
                if child.state is not ChildState.GAVE_UP:
                    child.state = ChildState.STOPPED
                self._terminate(child, None)
        if failure is not None:
            raise failure

    # -- internals ----------------------------------------------------------------------------------

    def _new_child(self, spec: ChildSpec) -> Child:
        if isinstance(spec.start, SupervisorSpec):
            nested = Supervisor(
                spec.id,
                spec.start,
                dead_letters=self.dead_letters,
                new_future=self.new_future,
                on_give_up=self.on_give_up,
            )
            return SupervisorChild(spec, nested)
        return ActorChild(spec, self.dead_letters, self.new_future)

    def _find(self, child_id: str) -> Child:
        child = self._by_id.get(child_id)
        if child is None:
            raise ChildNotFoundError(f"supervisor {self.name!r} has no child {child_id!r}")
        return child

    def _notify(self) -> None:
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)

    async def _start_all(self) -> None:
        started: list[Child] = []
        for child in tuple(self._by_id.values()):
            try:
                await self._start(child)
            except BaseException as exc:
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    raise
                # a SystemExit, KeyboardInterrupt, ... from a start also stops the started ones in
                # order, and is then raised as itself
                for done in reversed(started):
                    await stop_child(done, self.new_future)
                    self._finish(done, None)
                if self._stop_requested and isinstance(exc, ActorStoppedError):
                    return  # stopped while starting: a normal end, as OTP's shutdown
                if isinstance(exc, Exception):
                    raise ChildStartError(self.name, child.spec.id, exc) from exc
                raise
            started.append(child)

    async def _start(self, child: Child) -> None:
        """Start ``child`` and wait until it started; raise its start's error. A stop request meanwhile
        stops it within its shutdown (``ActorStoppedError``); a cancellation of the caller kills it."""
        if self._stop_requested:
            raise ActorStoppedError(f"supervisor {self.name!r} is stopping: child {child.spec.id!r} not started")
        child.state = ChildState.STARTING
        child.generation += 1
        self._starting = started = self.new_future()
        self._spawn(child, started)
        try:
            outcome = await started
        except BaseException:
            child.state = ChildState.STOPPED
            if child.scope is not None and (not started.done() or started.cancelled()):
                child.scope.cancel()  # the caller gave up (cancelled): no start left running behind it
            raise
        finally:
            self._starting = None
        if outcome is _STOP:
            await self._stop_starting(child)

    async def _stop_starting(self, child: Child) -> None:
        """A stop request came while ``child`` started: as OTP, whose supervisor stops a child once its
        start returned, it stops right after its start (running its stop hook) and is killed when its
        shutdown runs out first."""
        child.state = ChildState.STOPPING  # its start completing now asks it to stop (signal_started)
        child.runnable.request_stop()
        shutdown = child.spec.shutdown
        exited = shutdown != BRUTAL_KILL and await exited_within(child, shutdown, self.new_future)
        if not exited and child.scope is not None:
            child.scope.cancel()
        await exited_within(child, math.inf, self.new_future)
        child.state = ChildState.STOPPED
        raise ActorStoppedError(f"child {child.spec.id!r} of {self.name!r} was stopped while it started")

    def activate(self, cell: ActorCell) -> None:
        """Give an idle actor child a task again (its mailbox got a message or a stop request); a
        child that is not running is left alone: its next incarnation takes its mail."""
        child = self._by_id.get(cell.name)
        if (
            child is cell
            and child.scope is None
            and child.state in (ChildState.RUNNING, ChildState.STOPPING)
        ):
            try:
                self._spawn(child, None)
            except RuntimeError:
                if not _in_loop_callback():
                    raise
                # mail sent from an asyncio loop callback (call_soon, a signal handler, a
                # protocol), where anyio can start nothing: this supervisor's task does it
                self._events.append(WakeDue(cell))
                self._notify()

    def _spawn(self, child: Child, started: OneShot | None) -> None:
        """Start a task for ``child``: its incarnation (``started`` given) or an idle one's activation.

        The cancel scope exists before the task runs, so a kill that comes first still reaches it.
        """
        tg = self._tg
        assert tg is not None
        child.scope = scope = anyio.CancelScope()
        runnable = child.runnable
        sweeper = self._sweeper
        if sweeper is not None and isinstance(runnable, ActorCell):
            sweeper.track(runnable)
            if started is None:
                assert self._activations is not None
                # an activation runs in the context its incarnation's on_start left, not in the
                # context of whoever sent the message that woke it
                self._activations.start(
                    runnable.task_context or self._context,
                    self._run_child, child, child.generation, None, scope,
                    name=child.spec.id,
                )
                return
        tg.start_soon(self._run_child, child, child.generation, started, scope, name=child.spec.id)

    async def _run_child(
        self, child: Child, incarnation: int, started: OneShot | None, scope: anyio.CancelScope
    ) -> None:
        def signal_started() -> None:
            if child.state is ChildState.STOPPING:
                # its supervisor cut its start short to stop it: it ends now, with its stop hook
                runnable.request_stop()
            else:
                # RUNNING from this moment, not when the supervisor resumes: a child that crashes on
                # its first message before that must still be seen to exit
                child.state = ChildState.RUNNING
            backoff = child.spec.backoff
            # only a backoff that resets needs the start time (most children keep no rare record)
            if backoff is not None and backoff.reset_after is not None:
                more_of(child).last_started = anyio.current_time()
            if started is not None and not started.done():
                started.set_result(None)

        runnable = child.runnable
        error: BaseException | None = None
        ended = True
        with scope:
            try:
                if isinstance(runnable, Supervisor):
                    await runnable.run(signal_started)
                elif started is None:
                    ended = await runnable.resume()
                else:
                    ended = await runnable.run(signal_started, None if self._sweeper is None else self)
            except Exception as exc:
                error = exc
            except BaseException as exc:
                # a cancellation that no enclosing scope asked for is an ordinary crash of this child
                error = escaped_cancellation(child.spec.id, exc)
                if error is None:
                    if isinstance(exc, anyio.get_cancelled_exc_class()):
                        raise
                    # SystemExit, KeyboardInterrupt, ...: caught here, before asyncio would stop the
                    # loop with it, so that the supervisor stops the others in order and then raises it
                    error = exc
        if scope.cancelled_caught and error is None:
            # trio.Cancelled cannot be constructed: the kill is reported as a stop
            error = ActorStoppedError(f"child {child.spec.id!r} was killed")
            ended = True
        elif error is not None and child.state is ChildState.STOPPING and isinstance(error, Exception):
            # its supervisor is stopping it: nothing restarts it and nobody else hears of this error
            _log.warning(
                "supervisor %r: child %r raised while stopping: %s; ignored",
                self.name, child.spec.id, describe_exception(error),
                extra={"supervisor": self.name, "child": child.spec.id, "error": error},
            )
        if child.scope is scope:
            child.scope = None
        if self._sweeper is not None and isinstance(runnable, ActorCell):
            self._sweeper.untrack(runnable)
        more = child._more
        waiters = None if more is None else more.exit_waiters
        if waiters:
            assert more is not None
            more.exit_waiters = None
            trim(child)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        if not ended:
            return  # idle: the incarnation lives on without a task
        if started is not None and not started.done():
            started.set_exception(error or RuntimeError(f"child {child.spec.id!r} exited before it started"))
            return
        if child.state is ChildState.RUNNING and child.generation == incarnation:
            self._events.append(Exit(child, incarnation, error))
            self._notify()
        elif error is not None and not isinstance(error, Exception) and self._interrupt is None:
            # raised while it was being stopped: the tree still ends with it, once stopped in order
            _log.error(
                "supervisor %r: child %r raised %s while stopping; stopping the tree",
                self.name, child.spec.id, describe_exception(error),
                extra={"supervisor": self.name, "child": child.spec.id},
            )
            self._interrupt = error
            self._notify()

    async def _supervise(self) -> None:
        while True:
            if self._stop_requested or self._interrupt is not None:
                async with self._lock:
                    await self._stop_all()
                if self._interrupt is not None:
                    raise self._interrupt
                return
            if not self._events:
                self._wake = wake = self.new_future()
                await wake
                continue
            event = self._events.popleft()
            if isinstance(event, WakeDue):
                self.activate(event.cell)
                continue
            async with self._lock:
                if isinstance(event, RestartDue):
                    await self._start_group(event.group)
                else:
                    await self._on_exit(event)

    async def _on_exit(self, event: Exit) -> None:
        child = event.child
        if child.generation != event.incarnation or child.state is not ChildState.RUNNING:
            return
        error = event.error
        child_id = child.spec.id
        if error is not None and not isinstance(error, Exception):
            # a BaseException ends the whole tree: the others stop in order, then it propagates
            _log.error(
                "supervisor %r: child %r raised %s; stopping the tree",
                self.name, child_id, describe_exception(error), extra={"supervisor": self.name, "child": child_id},
            )
            self._finish(child, error)
            await self._stop_all()
            raise error
        restart = child.spec.restart
        if restart is Restart.TEMPORARY or (restart is Restart.TRANSIENT and is_shutdown(child, error)):
            if error is not None:
                # nobody else hears of this error but the child's watchers
                _log.warning(
                    "supervisor %r: %s child %r exited with %s; not restarted",
                    self.name, restart.value, child_id, describe_exception(error),
                    extra={"supervisor": self.name, "child": child_id, "error": error},
                )
            ended = ChildState.GAVE_UP if isinstance(error, RestartIntensityExceeded) else ChildState.STOPPED
            self._finish(child, error, ended)
            return
        now = anyio.current_time()
        intensity = self.spec.intensity
        if intensity is not None and over_intensity(self._restart_times, now, intensity):
            self._finish(child, error)  # its watchers hear why it stopped for good
            await self._stop_all()
            gave_up = RestartIntensityExceeded(self.name, intensity.max_restarts, intensity.within)
            gave_up.__cause__ = error
            _log.error(
                "supervisor %r gave up: more than %d restarts within %s s (last: child %r, %s)",
                self.name, intensity.max_restarts, intensity.within, child_id, _describe_exit(error),
                extra={"supervisor": self.name, "child": child_id, "error": error},
            )
            self._tell_give_up(gave_up)
            raise gave_up
        own = child.spec.intensity
        if own is not None and over_intensity(restart_times_of(child), now, own):
            _log.error(
                "supervisor %r: child %r gave up: more than %d restarts within %s s (last: %s)",
                self.name, child_id, own.max_restarts, own.within, _describe_exit(error),
                extra={"supervisor": self.name, "child": child_id, "error": error},
            )
            self._finish(child, error, ChildState.GAVE_UP)
            return
        self.restarts += 1
        group = restart_group(self.spec.strategy, tuple(self._by_id.values()), child)
        for other in reversed(group):
            if other is not child:
                await stop_child(other, self.new_future)
                if other.spec.restart is Restart.TEMPORARY:
                    # never restarted, even when a sibling's exit stopped it (as in OTP): it is gone
                    self._finish(other, None)
        group = tuple(m for m in group if m is child or m.spec.restart is not Restart.TEMPORARY)
        for member in group:
            member.restarts += 1
            member.state = ChildState.RESTARTING
        delay = backoff_delay(child, now)
        _log.info(
            "supervisor %r: child %r %s; restarting %s (restart %d%s)",
            self.name, child_id, "exited" if error is None else f"crashed with {describe_exception(error)}",
            ", ".join(repr(m.spec.id) for m in group), child.restarts,
            f", in {delay:.3f} s" if delay > 0 else "",
            extra={
                "supervisor": self.name, "child": child_id, "attempt": child.restarts,
                "error": error, "delay": delay, "group": tuple(m.spec.id for m in group),
            },
        )
        if delay > 0:
            assert self._tg is not None
            timer = Timer(anyio.CancelScope(), list(group))
            for member in group:
                more_of(member).timer = timer
            self._tg.start_soon(self._restart_after, timer, delay)
        else:
            await self._start_group(group)

    def _tell_give_up(self, gave_up: RestartIntensityExceeded) -> None:
        if self.on_give_up is None:
            return
        try:
            self.on_give_up(self.name, gave_up)
        except (Exception, asyncio.CancelledError, anyio.get_cancelled_exc_class()):
            # the give-up itself is raised to the parent whatever the listener does
            _log.exception(
                "give-up listener raised on supervisor %r; ignored", self.name, extra={"supervisor": self.name}
            )

    async def _restart_after(self, timer: Timer, delay: float) -> None:
        with timer.scope:
            await anyio.sleep(delay)
            for member in timer.members:
                more_of(member).timer = None
            self._events.append(RestartDue(tuple(timer.members)))
            self._notify()

    async def _start_group(self, group: tuple[Child, ...]) -> None:
        for member in group:
            if member.state is not ChildState.RESTARTING:
                continue
            try:
                await self._start(member)
            except BaseException as exc:
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    raise
                if self._stop_requested:
                    return  # stopping: nothing more starts, and this exit restarts nothing
                # a restart that fails to start counts as another crash of that child (a
                # SystemExit, KeyboardInterrupt, ... then ends the tree in order, as from a running child)
                member.state = ChildState.RUNNING
                self._events.appendleft(Exit(member, member.generation, exc))
                return

    async def _stop_all(self) -> None:
        for child in reversed(tuple(self._by_id.values())):
            await stop_child(child, self.new_future)
            self._finish(child, None)

    def _finish(self, child: Child, error: BaseException | None, state: ChildState = ChildState.STOPPED) -> None:
        child.state = state
        self._terminate(child, error)
        if child.spec.restart is Restart.TEMPORARY and self._by_id.get(child.spec.id) is child:
            self._forget(child)

    def _forget(self, child: Child) -> None:
        del self._by_id[child.spec.id]

    def _terminate(self, child: Child, error: BaseException | None) -> None:
        """``child`` stopped for good: its own watchers, then the spec's ``on_child_stopped``, hear it
        (once: nothing when it had already stopped)."""
        notice = child.runnable.terminate(error)
        listener = self.spec.on_child_stopped
        if notice is None or listener is None:
            return
        try:
            listener(notice)
        except (Exception, asyncio.CancelledError, anyio.get_cancelled_exc_class()):
            # a listener's bug must not break the tree
            _log.exception(
                "on_child_stopped of supervisor %r raised on child %r; ignored",
                self.name, notice.name, extra={"supervisor": self.name, "child": notice.name},
            )


def _in_loop_callback() -> bool:
    """Whether this runs in a callback of a running asyncio loop, outside any task."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return asyncio.current_task() is None

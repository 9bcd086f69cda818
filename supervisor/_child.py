"""A supervisor's records of its children: states, the per-child record, restart timers and the
events its loop handles, and the OTP rules applied to one exit."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, cast

import anyio
import attrs

from actors import ActorCell, DeadLetters, FutureFactory, OneShot
from supervisor._errors import RestartIntensityExceeded
from supervisor._spec import ChildSpec, Intensity, SupervisorSpec

if TYPE_CHECKING:
    from supervisor._supervisor import Supervisor


class ChildState(enum.Enum):
    """Where a child is in its life."""

    STARTING = "starting"
    RUNNING = "running"
    #: waiting out a restart backoff
    RESTARTING = "restarting"
    STOPPING = "stopping"
    #: stopped for good (kept as a spec: ``restart_child`` or ``delete_child`` may follow)
    STOPPED = "stopped"
    #: its own intensity ran out; stopped for good
    GAVE_UP = "gave_up"


class ChildMore:
    """The parts of a child record that most children never use, made on first use (a supervisor may
    have 100,000 idle children): exit waiters, restart times, backoff bookkeeping, a pending timer."""

    __slots__ = ("backoff_restarts", "exit_waiters", "last_started", "restart_times", "timer")

    def __init__(self) -> None:
        self.exit_waiters: list[OneShot] | None = None
        self.restart_times: list[float] | None = None
        self.backoff_restarts = 0
        self.last_started = 0.0
        self.timer: Timer | None = None

    def unused(self) -> bool:
        return (
            not self.exit_waiters
            and self.restart_times is None
            and self.backoff_restarts == 0
            and self.last_started == 0.0
            and self.timer is None
        )


class _Record:
    """What both kinds of child record have (a mixin of declarations: the slots are in the classes)."""

    __slots__ = ()

    spec: ChildSpec
    state: ChildState
    #: the supervisor's count of starts of this child: an exit is matched to the start it ends
    generation: int
    restarts: int
    scope: anyio.CancelScope | None
    _more: ChildMore | None

    @property
    def timer(self) -> Timer | None:
        """The restart backoff this child waits for, if any."""
        more = self._more
        return None if more is None else more.timer


class ActorChild(ActorCell, _Record):
    """An actor child: the actor's cell and the supervisor's record of it in one object (a supervisor
    may have 100,000 idle children: one object each rather than two)."""

    __slots__ = ("_more", "generation", "restarts", "scope", "state")

    def __init__(self, spec: ChildSpec, dead_letters: DeadLetters, new_future: FutureFactory) -> None:
        start = spec.start
        assert not isinstance(start, SupervisorSpec)
        super().__init__(
            spec.id,
            start,
            mailbox=spec.mailbox,
            redelivery=spec.redelivery,
            dead_letters=dead_letters,
            new_future=new_future,
            setup=spec,  # the cell reads start and redelivery from the spec: no copies
        )
        self.state = ChildState.STOPPED
        self.generation = 0
        self.restarts = 0
        self.scope: anyio.CancelScope | None = None
        self._more: ChildMore | None = None

    @property
    def spec(self) -> ChildSpec:  # type: ignore[override]
        """This child's spec (the cell's setup)."""
        return cast("ChildSpec", self.setup)

    @property
    def runnable(self) -> ActorChild:
        """What runs: the cell itself."""
        return self


class SupervisorChild(_Record):
    """A nested supervisor child: the supervisor's record of it."""

    __slots__ = ("_more", "generation", "restarts", "runnable", "scope", "spec", "state")

    def __init__(self, spec: ChildSpec, runnable: Supervisor) -> None:
        self.spec = spec
        self.runnable = runnable
        self.state = ChildState.STOPPED
        self.generation = 0
        self.restarts = 0
        self.scope: anyio.CancelScope | None = None
        self._more: ChildMore | None = None


#: a supervisor's record of one child
Child = ActorChild | SupervisorChild


def more_of(child: Child) -> ChildMore:
    """The rarely used part of ``child``'s record, made on first use."""
    more = child._more
    if more is None:
        child._more = more = ChildMore()
    return more


def trim(child: Child) -> None:
    """Drop the rarely used part of ``child``'s record if it holds nothing."""
    more = child._more
    if more is not None and more.unused():
        child._more = None


@attrs.define(eq=False)
class Timer:
    """A restart backoff shared by a group; a member stopped meanwhile leaves ``members``."""

    scope: anyio.CancelScope
    members: list[Child]


@attrs.frozen
class Exit:
    """A child's task ended (``error`` None for a normal exit)."""

    child: Child
    incarnation: int
    error: BaseException | None


@attrs.frozen
class RestartDue:
    """A group's restart backoff ran out."""

    group: tuple[Child, ...]


@attrs.frozen
class WakeDue:
    """An idle actor child got mail where no task runs (an asyncio loop callback): the supervisor's
    own task gives it a task."""

    cell: ActorCell


def is_shutdown(child: Child, error: BaseException | None) -> bool:
    """Whether an exit counts as OTP's ``normal`` or ``shutdown``: no error, or a nested supervisor that
    gave up (OTP: a supervisor past its intensity exits with reason ``shutdown``)."""
    return error is None or (child.spec.is_supervisor and isinstance(error, RestartIntensityExceeded))


def over_intensity(times: list[float], now: float, intensity: Intensity) -> bool:
    # a list, not a deque: it holds at most max_restarts + 1 entries, and an empty deque per idle
    # child would cost ~700 bytes
    times.append(now)
    # OTP keeps a restart while now - then <= period: one exactly `within` seconds old still counts
    horizon = now - intensity.within
    while times and times[0] < horizon:
        del times[0]
    return len(times) > intensity.max_restarts

"""A supervisor's records of its children: states, the per-child record, restart timers and the
events its loop handles, and the OTP rules applied to one exit."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import anyio
import attrs

from actors import ActorCell, OneShot
from supervisor._errors import RestartIntensityExceeded
from supervisor._spec import ChildSpec, Intensity

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


@attrs.define(eq=False)
class Child:
    """A supervisor's record of one child: its spec, the running thing, and its restart bookkeeping."""

    spec: ChildSpec
    runnable: ActorCell | Supervisor
    state: ChildState = ChildState.STOPPED
    incarnation: int = 0
    restarts: int = 0
    scope: anyio.CancelScope | None = None
    # made on first use: a supervisor may have 100,000 idle children
    exit_waiters: list[OneShot] | None = None
    restart_times: list[float] | None = None
    backoff_restarts: int = 0
    last_started: float = 0.0
    timer: Timer | None = None


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


def is_shutdown(child: Child, error: BaseException | None) -> bool:
    """Whether an exit counts as OTP's ``normal`` or ``shutdown``: no error, or a nested supervisor that
    gave up (OTP: a supervisor past its intensity exits with reason ``shutdown``)."""
    return error is None or (child.spec.is_supervisor and isinstance(error, RestartIntensityExceeded))


def over_intensity(times: list[float], now: float, intensity: Intensity) -> bool:
    # a list, not a deque: it holds at most max_restarts + 1 entries, and an empty deque per idle
    # child would cost ~700 bytes
    times.append(now)
    horizon = now - intensity.within
    while times and times[0] <= horizon:
        del times[0]
    return len(times) > intensity.max_restarts

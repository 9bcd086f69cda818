"""What a restart takes and when: the children a strategy restarts together, a child's own restart
times (for its own intensity), and its backoff delay."""

from __future__ import annotations

from supervisor._child import Child, ChildState, more_of
from supervisor._spec import Strategy


def restart_group(strategy: Strategy, children: tuple[Child, ...], child: Child) -> tuple[Child, ...]:
    """The children restarted with ``child`` (in start order): itself (one_for_one), every live
    child (one_for_all), or itself and the live children started after it (rest_for_one)."""
    if strategy is Strategy.ONE_FOR_ONE:
        return (child,)
    members = children
    if strategy is Strategy.REST_FOR_ONE:
        members = members[members.index(child):]
    alive = (ChildState.RUNNING, ChildState.RESTARTING, ChildState.STARTING)
    return tuple(c for c in members if c is child or c.state in alive)


def backoff_delay(child: Child, now: float) -> float:
    """Seconds before ``child``'s next restart under its spec's backoff (0 without one); a child
    that ran ``reset_after`` seconds since its last start starts the backoff over."""
    backoff = child.spec.backoff
    if backoff is None:
        return 0.0
    more = more_of(child)
    if backoff.reset_after is not None and now - more.last_started >= backoff.reset_after:
        more.backoff_restarts = 0
    delay = backoff.delay_for(child.spec.id, more.backoff_restarts)
    more.backoff_restarts += 1
    return delay


def restart_times_of(child: Child) -> list[float]:
    """When ``child`` was restarted, for its own intensity (made at its first use)."""
    more = more_of(child)
    if more.restart_times is None:
        more.restart_times = []
    return more.restart_times

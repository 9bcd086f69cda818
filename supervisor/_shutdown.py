"""Stopping one child as OTP does: a stop request, then a kill once its shutdown time runs out
(or at once for ``BRUTAL_KILL``); an idle actor child is woken to run its ``on_stop``."""

from __future__ import annotations

import math

import anyio

from actors import ActorCell, FutureFactory
from supervisor._child import Child, ChildState, more_of, trim
from supervisor._spec import BRUTAL_KILL


async def stop_child(child: Child, new_future: FutureFactory) -> None:
    """Stop ``child`` within its shutdown and wait until it has exited; a child waiting out a
    restart backoff leaves its group's timer (cancelled with its last member) and stays stopped."""
    timer = child.timer
    if timer is not None:
        # the group's timer still restarts the other members: it is cancelled with its last one
        more_of(child).timer = None
        trim(child)
        timer.members.remove(child)
        if not timer.members:
            timer.scope.cancel()
    if child.state is ChildState.RESTARTING:
        child.state = ChildState.STOPPED
        return
    runnable = child.runnable
    idle = isinstance(runnable, ActorCell) and runnable.idle
    if isinstance(runnable, ActorCell) and child.scope is None and not idle:
        # woken from outside any task, its activation still to come (see Supervisor.activate):
        # start it now, so that it is stopped like any running actor (does nothing if it ended)
        runnable.activate()
    if child.state is not ChildState.RUNNING or (child.scope is None and not idle):
        return
    child.state = ChildState.STOPPING
    shutdown = child.spec.shutdown
    if shutdown == BRUTAL_KILL:
        if child.scope is not None:
            child.scope.cancel()
        elif isinstance(runnable, ActorCell):
            runnable.abandon()  # killed while idle: no task to cancel, and no on_stop
    else:
        # an idle actor gets a task again to run its on_stop
        child.runnable.request_stop()
        if not await exited_within(child, shutdown, new_future) and child.scope is not None:
            child.scope.cancel()
    await exited_within(child, math.inf, new_future)
    child.state = ChildState.STOPPED


async def exited_within(child: Child, timeout: float, new_future: FutureFactory) -> bool:
    """Whether ``child``'s task ends within ``timeout`` seconds (True at once without a task)."""
    if child.scope is None:
        return True
    waiter = new_future()
    more = more_of(child)
    if more.exit_waiters is None:
        more.exit_waiters = []
    more.exit_waiters.append(waiter)
    with anyio.move_on_after(timeout):
        await waiter
    return waiter.done() and not waiter.cancelled()

"""Activations of idle actor children: tasks in a task group of their own, opened on demand and
dropped with its last task (see ``Activations``)."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc

Run = Callable[..., Awaitable[None]]


class Activations:
    """Starts the tasks that run idle actor children again, in a task group that exists only while
    one of them runs.

    A task group's tables (its tasks, its cancel scope's tasks and child scopes) keep the size of their
    peak: when 100,000 idle actors wake at once, a group that lives as long as the supervisor would
    hold ~125 bytes per actor for good. This group is opened by a host task in the supervisor's group
    at the first activation and closed when its last activation ends, so its tables go with it. The
    host and the group are inside the supervisor's group: cancelling that (a shutdown, a kill of the
    supervisor) cancels every activation, as before.
    """

    __slots__ = ("_context", "_opening", "_parent", "_pending", "_running", "_tg")

    def __init__(self, parent: anyio.abc.TaskGroup, context: contextvars.Context) -> None:
        self._parent = parent
        #: the host task runs in the supervisor's context, never in a sender's
        self._context = context
        self._tg: anyio.abc.TaskGroup | None = None
        #: activations asked for before the host opened its group
        self._pending: list[tuple[contextvars.Context, Run, tuple[Any, ...], str]] = []
        self._opening = False
        #: activations started or pending and not yet ended
        self._running = 0

    def start(self, context: contextvars.Context, run: Run, *args: Any, name: str) -> None:
        """Start ``run(*args)`` in a task whose context is a copy of ``context``."""
        self._running += 1
        tg = self._tg
        if tg is not None:
            context.run(self._spawn, tg, run, args, name)
            return
        self._pending.append((context, run, args, name))
        if not self._opening:
            self._opening = True
            self._context.run(self._start_host)

    def _start_host(self) -> None:
        self._parent.start_soon(self._host, name="activations")

    def _spawn(self, tg: anyio.abc.TaskGroup, run: Run, args: tuple[Any, ...], name: str) -> None:
        # called inside the activation's context: the new task's context is a copy of it
        tg.start_soon(self._activation, run, args, name=name)

    async def _host(self) -> None:
        async with anyio.create_task_group() as tg:
            self._open(tg)

    def _open(self, tg: anyio.abc.TaskGroup) -> None:
        # a method of its own: the host's frame keeps no reference to the pending list while it waits
        self._tg = tg
        self._opening = False
        pending, self._pending = self._pending, []
        for context, run, args, name in pending:
            context.run(self._spawn, tg, run, args, name)

    async def _activation(self, run: Run, args: tuple[Any, ...]) -> None:
        try:
            await run(*args)
        finally:
            self._running -= 1
            if not self._running:
                # no activation left anywhere: this group closes, the next activation opens another
                self._tg = None

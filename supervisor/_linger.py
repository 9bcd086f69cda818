"""The linger sweep: retires the actor children of one supervisor that stayed idle (see
``SupervisorSpec.linger``)."""

from __future__ import annotations

import anyio

from actors import ActorCell, FutureFactory, OneShot


class Sweeper:
    """Tracks the actor children that hold a task and, every ``linger`` seconds, asks those parked on
    an empty mailbox since the previous look to give up their task (so after ``linger`` to
    ``2 * linger`` seconds idle). It sleeps while no child holds a task."""

    __slots__ = ("_active", "_new_future", "_wake", "linger")

    def __init__(self, linger: float, new_future: FutureFactory) -> None:
        self.linger = linger
        self._new_future = new_future
        #: each actor child holding a task, with the mark of the last look
        self._active: dict[ActorCell, object] = {}
        self._wake: OneShot | None = None

    def track(self, cell: ActorCell) -> None:
        """``cell`` got a task."""
        active = self._active
        if not active:
            wake = self._wake
            if wake is not None:
                self._wake = None
                if not wake.done():
                    wake.set_result(None)
        active[cell] = None

    def untrack(self, cell: ActorCell) -> None:
        """``cell``'s task ended."""
        active = self._active
        if active:
            active.pop(cell, None)
            if not active:
                # a dict keeps its peak size: start afresh rather than hold a table sized for every child
                self._active = {}

    async def run(self) -> None:
        """Sweep until cancelled (with the supervisor's task group)."""
        while True:
            if not self._active:
                self._wake = wake = self._new_future()
                await wake
                continue
            await anyio.sleep(self.linger)
            self._look()

    def _look(self) -> None:
        # a method of its own, so that no reference to the dict outlives the look (it may be replaced)
        active = self._active
        for cell, mark in tuple(active.items()):
            if cell in active:
                active[cell] = cell.linger_check(mark)

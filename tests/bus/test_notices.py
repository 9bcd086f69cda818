"""SupervisorGaveUp: a supervisor of the user's own beside the handlers gives up, subscribers hear of it."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import Actor
from bus import BusTerminal, MessageRegistry, SupervisorGaveUp
from supervisor import ChildSpec, Intensity, SupervisorSpec

pytestmark = pytest.mark.anyio


class Fragile(Actor):
    async def receive(self, message: Any) -> None:
        raise RuntimeError(f"cannot take {message!r}")


async def test_a_user_supervisor_that_gives_up_is_announced_as_supervisor_gave_up() -> None:
    heard: list[SupervisorGaveUp] = []
    got_it = anyio.Event()

    async def on_gave_up(notice: SupervisorGaveUp, ctx: object) -> None:
        heard.append(notice)
        got_it.set()

    registry = MessageRegistry()
    registry.register(on_gave_up)
    workers = ChildSpec("workers", SupervisorSpec([ChildSpec("w", Fragile)], intensity=Intensity(0, 5.0)))
    async with BusTerminal(registry, children=[workers]) as terminal:
        terminal.supervisor.supervisor("workers").ref("w").tell_nowait("poison")
        with anyio.fail_after(10):
            await got_it.wait()
        await terminal.drain()
        # the root restarted the workers supervisor: the bus and the tree carry on
        assert [c.state for c in terminal.supervisor.which_children() if c.id == "workers"] == ["running"]
    assert len(heard) == 1
    assert heard[0].supervisor == "workers"
    assert "RestartIntensityExceeded" in heard[0].error
    assert "cannot take 'poison'" in heard[0].error

"""When a supervisor gives up: the give-up listener hears of it, and the child that tipped it over is
reported to its watchers with its own error."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import Actor, Terminated
from supervisor import (
    INFINITY,
    ChildSpec,
    Intensity,
    RestartIntensityExceeded,
    SupervisorSpec,
    open_supervisor,
)

pytestmark = pytest.mark.anyio


class Fragile(Actor):
    async def receive(self, message: Any) -> None:
        raise RuntimeError("fragile")


async def test_the_child_whose_crash_makes_the_root_give_up_is_reported_with_its_error() -> None:
    notices: list[Terminated] = []
    with pytest.raises(RestartIntensityExceeded):
        async with open_supervisor([ChildSpec("a", Fragile)], intensity=Intensity(0, 5.0)) as root:
            root.ref("a").watch(notices.append)
            root.ref("a").tell_nowait("x")
            await anyio.sleep_forever()
    assert [(n.name, repr(n.error)) for n in notices] == [("a", "RuntimeError('fragile')")]


async def test_a_nested_supervisor_that_gave_up_is_reported_with_restart_intensity_exceeded() -> None:
    notices: list[Terminated] = []
    inner = SupervisorSpec([ChildSpec("x", Fragile)], intensity=Intensity(0, 5.0))
    with pytest.raises(RestartIntensityExceeded):
        async with open_supervisor(
            [ChildSpec("inner", inner, shutdown=INFINITY)], intensity=Intensity(0, 5.0)
        ) as root:
            root.supervisor("inner").watch(notices.append)
            root.supervisor("inner").ref("x").tell_nowait(1)
            await anyio.sleep_forever()
    assert len(notices) == 1
    assert isinstance(notices[0].error, RestartIntensityExceeded)


async def test_many_dynamic_children_are_added_and_found_by_id() -> None:
    class Echo(Actor):
        async def receive(self, message: Any) -> Any:
            return message

    async with open_supervisor([]) as root:
        for i in range(2000):
            await root.start_child(ChildSpec(f"c{i}", Echo))
        assert await root.ref("c1999").ask("hi") == "hi"
        await root.terminate_child("c0")
        await root.delete_child("c0")
        assert len(root.which_children()) == 1999
        with pytest.raises(ValueError, match="already has a child 'c1'"):
            await root.start_child(ChildSpec("c1", Echo))


async def test_the_give_up_listener_hears_a_nested_supervisor_and_then_the_root() -> None:
    heard: list[tuple[str, str]] = []

    def listener(name: str, error: RestartIntensityExceeded) -> None:
        heard.append((name, repr(error.__cause__)))

    mid = ChildSpec("mid", SupervisorSpec([ChildSpec("w", Fragile)], intensity=Intensity(0, 5.0)))
    with pytest.raises(RestartIntensityExceeded):
        async with open_supervisor([mid], intensity=Intensity(0, 5.0), on_give_up=listener) as root:
            root.supervisor("mid").ref("w").tell_nowait("x")
            await anyio.sleep_forever()
    assert heard[0] == ("mid", "RuntimeError('fragile')")
    assert heard[1][0] == "root"
    assert "RestartIntensityExceeded" in heard[1][1]

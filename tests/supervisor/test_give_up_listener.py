"""open_supervisor(on_give_up=...) hears of every supervisor in the tree that gives up."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import Actor
from supervisor import (
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

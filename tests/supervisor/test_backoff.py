"""Restart backoff (Akka's restartWithBackoff): delays grow exponentially up to a maximum, stretched by
jitter, and start from the minimum again once the child has run ``reset_after`` seconds."""

from itertools import pairwise
from typing import Any

import anyio
import attrs
import pytest

from actors import Actor
from supervisor import Backoff, ChildSpec, open_supervisor
from tests.actors.helpers import CRASH, WHO, Boom, mock_clock

pytestmark = pytest.mark.anyio


class Timed(Actor):
    """Notes the virtual time of each crash and of each start."""

    def __init__(self, crashes: list[float], starts: list[float]) -> None:
        self.crashes = crashes
        self.starts = starts

    async def on_start(self) -> None:
        self.starts.append(anyio.current_time())

    async def receive(self, message: Any) -> Any:
        if message == CRASH:
            self.crashes.append(anyio.current_time())
            raise Boom("crash")
        return self.context.incarnation


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_restart_delays_grow_to_the_maximum_and_start_over_after_a_quiet_period() -> None:
    backoff = Backoff(min=1.0, max=8.0, factor=2.0, jitter=0.2, reset_after=30.0)
    crashes: list[float] = []
    starts: list[float] = []
    spec = ChildSpec("W", lambda: Timed(crashes, starts), backoff=backoff)
    async with open_supervisor([spec], intensity=None) as sup:
        w = sup.ref("W")

        async def crash_and_measure() -> float:
            w.tell_nowait(CRASH)
            await w.ask(WHO)  # answered by the restarted incarnation
            return starts[-1] - crashes[-1]

        delays = [await crash_and_measure() for _ in range(6)]
        await anyio.sleep(31.0)  # runs quietly for longer than reset_after
        after_reset = await crash_and_measure()

    ceiling = backoff.max * (1 + backoff.jitter)
    assert backoff.min <= delays[0] <= backoff.min * (1 + backoff.jitter)
    # 1, 2, 4, 8 (times up to 1.2): each at least 1.5 times the one before until the maximum
    assert all(later >= 1.5 * earlier for earlier, later in pairwise(delays[:4]))
    assert all(delay <= ceiling for delay in delays)
    assert all(delay >= backoff.max for delay in delays[3:])  # capped, not shrinking
    assert backoff.min <= after_reset <= backoff.min * (1 + backoff.jitter)


def test_backoff_delays_follow_min_times_factor_to_the_n_capped_and_stretched_by_jitter() -> None:
    backoff = Backoff(min=0.5, max=4.0, factor=3.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(4)] == [0.5, 1.5, 4.0, 4.0]
    jittery = Backoff(min=1.0, max=10.0, factor=2.0, jitter=0.5)
    assert all(4.0 <= jittery.delay(2) <= 6.0 for _ in range(50))
    with pytest.raises(ValueError):
        Backoff(min=2.0, max=1.0)
    with pytest.raises(ValueError):
        Backoff(factor=0.5)


@attrs.frozen(eq=False)
class PerChild(Backoff):
    """One backoff for several children: a fixed delay per child id, and the ids it was asked for."""

    delays: dict[str, float] = attrs.field(kw_only=True)
    asked: list[tuple[str, int]] = attrs.field(kw_only=True, factory=list)

    def delay_for(self, child: str, restarts: int) -> float:
        self.asked.append((child, restarts))
        return self.delays[child]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_backoff_shared_by_several_children_is_told_which_child_restarts() -> None:
    backoff = PerChild(jitter=0.0, delays={"A": 1.0, "B": 7.0})
    crashes: dict[str, list[float]] = {"A": [], "B": []}
    starts: dict[str, list[float]] = {"A": [], "B": []}
    specs = [
        ChildSpec(name, lambda name=name: Timed(crashes[name], starts[name]), backoff=backoff)
        for name in ("A", "B")
    ]
    async with open_supervisor(specs, intensity=None) as sup:
        for name in ("A", "B", "A"):
            ref = sup.ref(name)
            ref.tell_nowait(CRASH)
            await ref.ask(WHO)  # answered by the restarted incarnation
    # each child's restarts are counted on their own, and each waited its own delay
    assert backoff.asked == [("A", 0), ("B", 0), ("A", 1)]
    assert starts["A"][1] - crashes["A"][0] == pytest.approx(1.0)
    assert starts["B"][1] - crashes["B"][0] == pytest.approx(7.0)
    assert starts["A"][2] - crashes["A"][1] == pytest.approx(1.0)

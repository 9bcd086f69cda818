"""OTP edge cases: terminating one member of a group that waits out a restart backoff, and a transient
nested supervisor that gives up (OTP: it exits with reason ``shutdown``, which a transient child is not
restarted after)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import Actor, Terminated
from supervisor import (
    INFINITY,
    Backoff,
    ChildSpec,
    Intensity,
    Restart,
    RestartIntensityExceeded,
    Strategy,
    SupervisorSpec,
    open_supervisor,
)
from tests.actors.helpers import CRASH, WHO, Journal, mock_clock, wait_until, worker

pytestmark = pytest.mark.anyio

BACKOFF = Backoff(min=5.0, max=5.0, jitter=0.0)


def states(sup: Any) -> dict[str, str]:
    return {c.id: c.state for c in sup.which_children()}


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
@pytest.mark.parametrize("strategy", [Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE])
async def test_terminating_one_member_during_a_group_backoff_still_restarts_the_others(
    strategy: Strategy,
) -> None:
    journal = Journal()
    children = [worker(n, journal, backoff=BACKOFF) for n in "ABC"]
    async with open_supervisor(children, strategy=strategy, intensity=None) as sup:
        sup.ref("A").tell_nowait(CRASH)
        await wait_until(lambda: set(states(sup).values()) == {"restarting"})
        await sup.terminate_child("B")  # during the backoff
        assert states(sup) == {"A": "restarting", "B": "stopped", "C": "restarting"}
        await anyio.sleep(BACKOFF.max + 1)
        assert states(sup) == {"A": "running", "B": "stopped", "C": "running"}
        assert await sup.ref("A").ask(WHO) == 2
        assert await sup.ref("C").ask(WHO) == 2
        assert not sup.ref("B").alive
        # and B can still be brought back by hand
        await sup.restart_child("B")
        assert await sup.ref("B").ask(WHO) == 2


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_terminating_every_member_during_a_group_backoff_cancels_the_restart() -> None:
    journal = Journal()
    children = [worker(n, journal, backoff=BACKOFF) for n in "AB"]
    async with open_supervisor(children, strategy=Strategy.ONE_FOR_ALL, intensity=None) as sup:
        sup.ref("B").tell_nowait(CRASH)
        await wait_until(lambda: set(states(sup).values()) == {"restarting"})
        journal.clear()
        await sup.terminate_child("A")
        await sup.terminate_child("B")
        await anyio.sleep(BACKOFF.max * 3)
        assert states(sup) == {"A": "stopped", "B": "stopped"}
        assert journal.of("start") == []


class Fragile(Actor):
    async def receive(self, message: Any) -> Any:
        if message == CRASH:
            raise RuntimeError("fragile")
        return self.context.incarnation


def nested(restart: Restart) -> ChildSpec:
    inner = SupervisorSpec([ChildSpec("x", Fragile)], intensity=Intensity(0, 5.0))
    return ChildSpec("inner", inner, restart=restart, shutdown=INFINITY)


async def test_a_transient_nested_supervisor_that_gives_up_is_not_restarted_and_its_parent_sees_it() -> None:
    journal = Journal()
    notices: list[Terminated] = []
    gave_up: list[str] = []
    async with open_supervisor(
        [nested(Restart.TRANSIENT), worker("sibling", journal)],
        intensity=Intensity(0, 5.0),  # a restart of `inner` would make the root give up
        on_give_up=lambda name, _: gave_up.append(name),
    ) as root:
        root.supervisor("inner").watch(notices.append)
        root.supervisor("inner").ref("x").tell_nowait(CRASH)
        await wait_until(lambda: bool(notices))
        assert states(root) == {"inner": "gave_up", "sibling": "running"}
        assert root.which_children()[0].restarts == 0
        assert root.snapshot().state == "running"
        assert await root.ref("sibling").ask(WHO) == 1
        assert isinstance(notices[0].error, RestartIntensityExceeded)
        assert gave_up == ["inner"]
        # it can be brought back by hand, as any stopped child
        await root.restart_child("inner")
        assert await root.supervisor("inner").ref("x").ask(WHO) == 1


async def test_a_permanent_nested_supervisor_that_gives_up_is_restarted() -> None:
    async with open_supervisor([nested(Restart.PERMANENT)], intensity=Intensity(3, 5.0)) as root:
        inner = root.supervisor("inner")
        inner.ref("x").tell_nowait(CRASH)
        await wait_until(lambda: inner.incarnation == 2 and states(root)["inner"] == "running")
        assert root.which_children()[0].restarts == 1
        assert await inner.ref("x").ask(WHO) == 1

"""Restart intensity: at most N restarts in any sliding window of P seconds; past that the supervisor
stops its children newest-first and fails to its parent (escalation)."""

from typing import Any

import anyio
import pytest

from actors import Actor, ActorStoppedError, Terminated
from supervisor import (
    BRUTAL_KILL,
    INFINITY,
    ChildSpec,
    Intensity,
    RestartIntensityExceeded,
    Supervisor,
    SupervisorSpec,
    open_supervisor,
)
from tests.actors.helpers import (
    CRASH,
    WHO,
    Boom,
    Journal,
    Sleep,
    expect_failure,
    mock_clock,
    wait_until,
    worker,
)

pytestmark = pytest.mark.anyio


async def test_a_third_crash_within_the_period_stops_children_newest_first_and_fails_the_supervisor() -> None:
    journal = Journal()
    notices: list[Terminated] = []
    children = [worker(n, journal) for n in ("W", "A", "B")]
    with pytest.raises(RestartIntensityExceeded) as failure:
        async with open_supervisor(children, intensity=Intensity(2, within=60.0)) as sup:
            sup.watch(notices.append)
            w = sup.ref("W")
            for incarnation in (2, 3):  # two quick crashes are survived
                w.tell_nowait(CRASH)
                assert await w.ask(WHO) == incarnation
            journal.clear()
            w.tell_nowait(CRASH)
            await expect_failure()
    assert isinstance(failure.value.__cause__, Boom)
    # W's end hook ran at its crash; then the others stop newest-first
    assert journal.events == [("stop", "W"), ("stop", "B"), ("stop", "A")]
    assert [c.state for c in sup.which_children()] == ["stopped"] * 3
    assert notices == [Terminated("root", failure.value)]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_crashes_further_apart_than_the_period_are_survived_indefinitely() -> None:
    journal = Journal()
    period = 10.0
    async with open_supervisor([worker("W", journal)], intensity=Intensity(1, within=period)) as sup:
        w = sup.ref("W")
        for incarnation in range(2, 22):
            w.tell_nowait(CRASH)
            assert await w.ask(WHO) == incarnation
            await anyio.sleep(2 * period + 1)
        assert sup.restarts == 20


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_two_crashes_within_the_period_exceed_an_intensity_of_one() -> None:
    journal = Journal()
    with pytest.raises(RestartIntensityExceeded):
        async with open_supervisor([worker("W", journal)], intensity=Intensity(1, within=10.0)) as sup:
            w = sup.ref("W")
            w.tell_nowait(CRASH)
            assert await w.ask(WHO) == 2
            await anyio.sleep(9.0)
            w.tell_nowait(CRASH)
            await expect_failure()


async def test_an_intensity_of_zero_fails_on_the_first_crash() -> None:
    journal = Journal()
    with pytest.raises(RestartIntensityExceeded) as failure:
        async with open_supervisor([worker("W", journal)], intensity=Intensity(0)) as sup:
            sup.ref("W").tell_nowait(CRASH)
            await expect_failure()
    assert isinstance(failure.value.__cause__, Boom)
    assert journal.count("start", "W") == 1


class CrashesAtOnce(Actor):
    """Sends itself a message on start and crashes on it: every incarnation crashes right away."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def on_start(self) -> None:
        self.journal.record("start", self.context.name)
        self.context.ref.tell_nowait(CRASH)

    async def receive(self, message: Any) -> Any:
        raise Boom(f"{self.context.name} crashed on {message!r}")


async def test_a_failing_nested_supervisor_escalates_until_the_top_gives_up() -> None:
    journal = Journal()
    mid = SupervisorSpec(
        [ChildSpec("worker", lambda: CrashesAtOnce(journal))], intensity=Intensity(1, within=60.0)
    )
    mid_handle: Supervisor | None = None
    with pytest.raises(RestartIntensityExceeded) as failure:
        async with open_supervisor(
            [ChildSpec("mid", mid, shutdown=INFINITY)], intensity=Intensity(1, within=60.0)
        ) as top:
            mid_handle = top.supervisor("mid")
            await expect_failure()
    # mid: worker crash, restart, crash -> mid fails; top restarts mid once; the same again -> top fails
    assert journal.count("start", "worker") == 4
    assert mid_handle is not None
    assert mid_handle.incarnation == 2
    assert failure.value.supervisor == "root"
    mid_failure = failure.value.__cause__
    assert isinstance(mid_failure, RestartIntensityExceeded)
    assert mid_failure.supervisor == "mid"
    assert isinstance(mid_failure.__cause__, Boom)


async def test_the_root_giving_up_while_the_block_handles_an_error_raises_restart_intensity_exceeded() -> None:
    journal = Journal()
    children = [worker("A", journal), worker("B", journal, shutdown=BRUTAL_KILL)]
    with pytest.raises(RestartIntensityExceeded) as failure:
        async with open_supervisor(children, intensity=Intensity(0)) as sup:
            sup.ref("A").tell_nowait(CRASH)
            # B is killed while the root gives up: this ask fails and the block is left with an error
            await sup.ref("B").ask(Sleep(10.0))
    assert isinstance(failure.value.__cause__, Boom)
    assert isinstance(failure.value.__context__, ActorStoppedError)


async def test_a_child_past_its_own_intensity_is_stopped_for_good_while_its_siblings_carry_on() -> None:
    journal = Journal()
    children = [worker("fragile", journal, intensity=Intensity(1, within=60.0)), worker("B", journal)]
    async with open_supervisor(children, intensity=Intensity(10, within=60.0)) as sup:
        notices: list[Terminated] = []
        fragile = sup.ref("fragile")
        fragile.watch(notices.append)
        fragile.tell_nowait(CRASH)
        assert await fragile.ask(WHO) == 2  # one restart is within its own limit
        fragile.tell_nowait(CRASH)
        await wait_until(lambda: bool(notices))
        assert isinstance(notices[0].error, Boom)
        assert [(c.id, c.state) for c in sup.which_children()] == [
            ("fragile", "gave_up"),
            ("B", "running"),
        ]
        assert await sup.ref("B").ask(WHO) == 1
        assert not fragile.alive

"""Children whose start fails: at the supervisor's start (ChildStartError, the started ones stopped) and
at a restart (counted as another crash, toward the intensity)."""

from typing import Any

import anyio
import pytest

from actors import Actor
from supervisor import (
    Backoff,
    ChildSpec,
    ChildStartError,
    Intensity,
    RestartIntensityExceeded,
    open_supervisor,
)
from tests.actors.helpers import (
    CRASH,
    Boom,
    Journal,
    expect_failure,
    mock_clock,
    wait_until,
    worker,
)

pytestmark = pytest.mark.anyio


class FailsToStart(Actor):
    """``on_start`` raises from incarnation ``failing_from`` on."""

    def __init__(self, journal: Journal, failing_from: int) -> None:
        self.journal = journal
        self.failing_from = failing_from

    async def on_start(self) -> None:
        self.journal.record("start", self.context.name)
        if self.context.incarnation >= self.failing_from:
            raise Boom(f"{self.context.name} cannot start")

    async def on_stop(self) -> None:
        self.journal.record("stop", self.context.name)

    async def receive(self, message: Any) -> Any:
        if message == CRASH:
            raise Boom("crashed")
        return message


def failing(child_id: str, journal: Journal, failing_from: int, **options: Any) -> ChildSpec:
    return ChildSpec(child_id, lambda: FailsToStart(journal, failing_from), **options)


async def test_a_child_failing_to_start_names_itself_and_the_started_ones_are_stopped() -> None:
    journal = Journal()
    children = [worker("A", journal), failing("B", journal, failing_from=1), worker("C", journal)]
    with pytest.raises(ChildStartError) as failure:
        async with open_supervisor(children):
            pytest.fail("the block must not run when a child fails to start")
    assert failure.value.child_id == "B"
    assert isinstance(failure.value.__cause__, Boom)
    # B's on_stop does not run (it never started); C was never started
    assert journal.events == [("start", "A"), ("start", "B"), ("stop", "A")]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_restarts_that_keep_failing_to_start_count_toward_the_intensity() -> None:
    journal = Journal()
    backoff = Backoff(min=1.0, max=1.0, jitter=0.0)
    spec = failing("F", journal, failing_from=2, backoff=backoff)
    with pytest.raises(RestartIntensityExceeded) as failure:
        async with open_supervisor([spec], intensity=Intensity(3, within=100.0)) as sup:
            began = anyio.current_time()
            sup.ref("F").tell_nowait(CRASH)
            await expect_failure(100.0)
    # the crash, then three restarts that fail to start: the third failure is one too many
    assert anyio.current_time() - began == pytest.approx(3.0)
    assert journal.count("start", "F") == 4
    assert isinstance(failure.value.__cause__, Boom)
    assert "cannot start" in str(failure.value.__cause__)


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_stop_request_is_honoured_while_a_child_waits_to_retry_its_failing_start() -> None:
    journal = Journal()
    backoff = Backoff(min=10.0, max=10.0, jitter=0.0)
    spec = failing("F", journal, failing_from=2, backoff=backoff)
    async with open_supervisor([spec], intensity=Intensity(100, within=1000.0)) as sup:
        sup.ref("F").tell_nowait(CRASH)
        await wait_until(lambda: journal.count("start", "F") == 3, timeout=100.0, interval=0.5)
        assert sup.which_children()[0].state == "restarting"
        stop_requested = anyio.current_time()
    assert anyio.current_time() == stop_requested  # no waiting out the backoff
    assert journal.count("start", "F") == 3
    assert sup.which_children()[0].state == "stopped"
    assert not sup.ref("F").alive

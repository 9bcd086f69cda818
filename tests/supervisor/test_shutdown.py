"""Stopping: reverse start order through nested supervisors, shutdown timeouts, brutal kills, and the
rule for ``on_stop``: it runs on a graceful stop and after a crash, never when the actor is killed."""

from typing import Any

import anyio
import pytest

from actors import Actor, DeadLetterReason, Terminated
from supervisor import BRUTAL_KILL, INFINITY, ChildSpec, SupervisorSpec, open_supervisor
from tests.actors.helpers import (
    CRASH,
    WHO,
    Journal,
    Sleep,
    collect_dead_letters,
    mock_clock,
    wait_until,
    worker,
)

pytestmark = pytest.mark.anyio


class SlowToStop(Actor):
    """Its ``on_stop`` takes a while: a stop that did not wait for it would be caught out."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def on_stop(self) -> None:
        await anyio.sleep(0.01)
        self.journal.record("stop", self.context.name)

    async def receive(self, message: Any) -> Any:
        return message


async def test_stopping_a_tree_stops_children_in_reverse_order_and_returns_after_every_end_hook() -> None:
    journal = Journal()

    def slow(child_id: str) -> ChildSpec:
        return ChildSpec(child_id, lambda: SlowToStop(journal))

    s1 = ChildSpec("S1", SupervisorSpec([slow("A"), slow("B")]), shutdown=INFINITY)
    async with open_supervisor([s1, slow("C")]) as root:
        root.supervisor("S1").watch(lambda notice: journal.record("terminated", notice.name))
        root.watch(lambda notice: journal.record("terminated", notice.name))
    # the `async with` returned: every end hook already ran, children before their supervisors
    assert journal.events == [
        ("stop", "C"),
        ("stop", "B"),
        ("stop", "A"),
        ("terminated", "S1"),
        ("terminated", "root"),
    ]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_busy_child_is_cancelled_after_its_shutdown_timeout_and_not_before() -> None:
    journal = Journal()
    hub, letters = collect_dead_letters()
    async with open_supervisor([worker("busy", journal, shutdown=2.0)], dead_letters=hub) as sup:
        sup.ref("busy").tell_nowait(Sleep(1000))
        await wait_until(lambda: journal.count("busy", "busy") == 1)
        began = anyio.current_time()
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.terminate_child, "busy")
            await anyio.sleep(1.9)
            # the stop request was made; the child ignores it while its receive runs
            assert sup.which_children()[0].state == "stopping"
        stopped_after = anyio.current_time() - began
    assert 2.0 <= stopped_after < 1000
    # killed: on_stop did not run, and the message it was busy with is a dead letter
    assert journal.of("stop") == []
    assert [(dl.message, dl.reason) for dl in letters] == [(Sleep(1000), DeadLetterReason.KILLED)]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_brutal_kill_cancels_a_busy_child_at_once() -> None:
    journal = Journal()
    async with open_supervisor([worker("busy", journal, shutdown=BRUTAL_KILL)]) as sup:
        sup.ref("busy").tell_nowait(Sleep(1000))
        await wait_until(lambda: journal.count("busy", "busy") == 1)
        began = anyio.current_time()
        await sup.terminate_child("busy")
        assert anyio.current_time() == began
        assert not sup.ref("busy").alive
    assert journal.of("stop") == []


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_on_stop_runs_on_a_graceful_stop_and_after_a_crash_but_never_when_killed() -> None:
    journal = Journal()
    children = [
        worker("graceful", journal),
        worker("crashing", journal),
        worker("timed_out", journal, shutdown=1.0),
        worker("brutal", journal, shutdown=BRUTAL_KILL),
    ]
    async with open_supervisor(children) as sup:
        journal.clear()
        await sup.terminate_child("graceful")  # idle: honours the stop request
        sup.ref("crashing").tell_nowait(CRASH)
        assert await sup.ref("crashing").ask(WHO) == 2  # crashed, restarted
        for busy in ("timed_out", "brutal"):
            sup.ref(busy).tell_nowait(Sleep(1000))
        await wait_until(lambda: len(journal.of("busy")) == 2)
        await sup.terminate_child("timed_out")
        await sup.terminate_child("brutal")
        hooks = [event for event in journal.events if event[0] != "busy"]
        assert hooks == [("stop", "graceful"), ("stop", "crashing"), ("start", "crashing")]


async def test_a_killed_nested_supervisor_takes_its_children_with_it() -> None:
    journal = Journal()
    hub, letters = collect_dead_letters()
    nested = ChildSpec("S1", SupervisorSpec([worker("A", journal)]), shutdown=BRUTAL_KILL)
    async with open_supervisor([nested], dead_letters=hub) as root:
        a = root.supervisor("S1").ref("A")
        notices: list[Terminated] = []
        a.watch(notices.append)
        await root.terminate_child("S1")
        assert not a.alive
        assert notices == [Terminated("A")]
        a.tell_nowait("late")
        assert [(dl.message, dl.reason) for dl in letters] == [("late", DeadLetterReason.STOPPED)]
    # killed, not stopped: A's on_stop never ran
    assert journal.events == [("start", "A")]

"""Restart strategies: which siblings stop and start again, and in which order, when one child exits."""

import pytest

from supervisor import Restart, Strategy, Supervisor, open_supervisor
from tests.actors.helpers import CRASH, STOP, WHO, Journal, wait_until, worker

pytestmark = pytest.mark.anyio


def incarnations(sup: Supervisor) -> dict[str, int]:
    """Each actor child's current incarnation (1 = never restarted)."""
    return {c.id: c.ref.statistics().incarnation for c in sup.which_children() if c.ref is not None}


async def test_one_for_one_restarts_only_the_crashed_child() -> None:
    journal = Journal()
    async with open_supervisor([worker(n, journal) for n in "ABC"]) as sup:
        journal.clear()
        sup.ref("B").tell_nowait(CRASH)
        # queued behind the crash: the surviving mailbox hands it to B's next incarnation
        assert await sup.ref("B").ask(WHO) == 2
        assert incarnations(sup) == {"A": 1, "B": 2, "C": 1}
        # B's end hook ran at its crash; A and C ran no hook at all
        assert journal.events == [("stop", "B"), ("start", "B")]
        assert [(c.id, c.restarts) for c in sup.which_children()] == [("A", 0), ("B", 1), ("C", 0)]


async def test_one_for_all_stops_the_others_in_reverse_and_restarts_every_child_in_start_order() -> None:
    journal = Journal()
    children = [worker(n, journal) for n in "ABC"]
    async with open_supervisor(children, strategy=Strategy.ONE_FOR_ALL) as sup:
        journal.clear()
        sup.ref("B").tell_nowait(CRASH)
        await wait_until(lambda: len(journal.of("start")) == 3)
        # B's end hook (on_stop) already ran when it crashed, before the supervisor saw the exit; the
        # supervisor then stops the others in reverse start order (C, then A) and starts all in order.
        assert journal.events == [
            ("stop", "B"),
            ("stop", "C"),
            ("stop", "A"),
            ("start", "A"),
            ("start", "B"),
            ("start", "C"),
        ]
        assert incarnations(sup) == {"A": 2, "B": 2, "C": 2}
        # every child of the group was restarted once; the supervisor counts one restart
        assert [(c.id, c.restarts) for c in sup.which_children()] == [("A", 1), ("B", 1), ("C", 1)]
        assert sup.restarts == 1


async def test_rest_for_one_stops_later_children_in_reverse_and_restarts_them_in_order() -> None:
    journal = Journal()
    children = [worker(n, journal) for n in "ABCD"]
    async with open_supervisor(children, strategy=Strategy.REST_FOR_ONE) as sup:
        journal.clear()
        sup.ref("B").tell_nowait(CRASH)
        await wait_until(lambda: len(journal.of("start")) == 3)
        assert journal.events == [
            ("stop", "B"),
            ("stop", "D"),
            ("stop", "C"),
            ("start", "B"),
            ("start", "C"),
            ("start", "D"),
        ]
        assert incarnations(sup) == {"A": 1, "B": 2, "C": 2, "D": 2}


async def test_one_for_all_leaves_siblings_running_when_a_transient_child_exits_normally() -> None:
    journal = Journal()
    children = [
        worker("A", journal),
        worker("T", journal, restart=Restart.TRANSIENT),
        worker("C", journal),
    ]
    async with open_supervisor(children, strategy=Strategy.ONE_FOR_ALL) as sup:
        journal.clear()
        notices: list[object] = []
        sup.ref("T").watch(notices.append)
        sup.ref("T").tell_nowait(STOP)
        await wait_until(lambda: bool(notices))
        assert journal.events == [("stop", "T")]
        assert [(c.id, c.state) for c in sup.which_children()] == [
            ("A", "running"),
            ("T", "stopped"),
            ("C", "running"),
        ]
        assert await sup.ref("A").ask(WHO) == 1
        assert await sup.ref("C").ask(WHO) == 1
        assert sup.restarts == 0


async def test_one_for_all_stops_a_temporary_sibling_for_good_instead_of_restarting_it() -> None:
    journal = Journal()
    children = [
        worker("A", journal),
        worker("tmp", journal, restart=Restart.TEMPORARY),
        worker("C", journal),
    ]
    async with open_supervisor(children, strategy=Strategy.ONE_FOR_ALL) as sup:
        notices: list[object] = []
        sup.ref("tmp").watch(notices.append)
        journal.clear()
        sup.ref("A").tell_nowait(CRASH)
        await wait_until(lambda: len(journal.of("start")) == 2)
        assert journal.events == [
            ("stop", "A"),
            ("stop", "C"),
            ("stop", "tmp"),
            ("start", "A"),
            ("start", "C"),
        ]
        assert [c.id for c in sup.which_children()] == ["A", "C"]
        assert len(notices) == 1

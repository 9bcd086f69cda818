"""Watches (a ``Terminated`` notice when an actor stops for good, never on a restart) and the printable
snapshot of a supervision tree."""

import pytest

from actors import Terminated
from supervisor import INFINITY, ChildSpec, Intensity, Restart, SupervisorSpec, open_supervisor
from tests.actors.helpers import CRASH, STOP, WHO, Boom, Journal, wait_until, worker

pytestmark = pytest.mark.anyio


async def test_watching_an_actor_notifies_on_a_permanent_stop_and_never_on_a_restart() -> None:
    journal = Journal()
    children = [worker("P", journal), worker("T", journal, restart=Restart.TRANSIENT)]
    async with open_supervisor(children, intensity=Intensity(10, within=60.0)) as sup:
        permanent: list[Terminated] = []
        transient: list[Terminated] = []
        sup.ref("P").watch(permanent.append)
        sup.ref("T").watch(transient.append)
        for message in (CRASH, STOP, CRASH):  # restarts after a crash and after a normal exit
            sup.ref("P").tell_nowait(message)
        assert await sup.ref("P").ask(WHO) == 4
        sup.ref("T").tell_nowait(CRASH)
        assert await sup.ref("T").ask(WHO) == 2
        assert permanent == []
        assert transient == []

        sup.ref("T").tell_nowait(CRASH)
        sup.ref("T").tell_nowait(STOP)  # the next incarnation exits normally: T is done
        await wait_until(lambda: bool(transient))
        assert transient == [Terminated("T")]

        await sup.terminate_child("P")
        assert permanent == [Terminated("P")]
        late: list[Terminated] = []
        sup.ref("P").watch(late.append)  # watching a stopped actor notifies at once
        assert late == [Terminated("P")]


async def test_a_temporary_childs_watchers_receive_its_crash_error() -> None:
    journal = Journal()
    async with open_supervisor([worker("tmp", journal, restart=Restart.TEMPORARY)]) as sup:
        notices: list[Terminated] = []
        sup.ref("tmp").watch(notices.append)
        sup.ref("tmp").tell_nowait(CRASH)
        await wait_until(lambda: bool(notices))
        assert isinstance(notices[0].error, Boom)


async def test_unwatching_stops_the_notices() -> None:
    journal = Journal()
    async with open_supervisor([worker("A", journal)]) as sup:
        notices: list[Terminated] = []
        unwatch = sup.ref("A").watch(notices.append)
        unwatch()
        await sup.terminate_child("A")
        assert notices == []


async def test_the_snapshot_renders_ids_kinds_states_and_restart_counts_of_the_whole_tree() -> None:
    journal = Journal()
    nested = ChildSpec("jobs", SupervisorSpec([worker("parser", journal)]), shutdown=INFINITY)
    async with open_supervisor([worker("api", journal), nested]) as sup:
        parser = sup.supervisor("jobs").ref("parser")
        parser.tell_nowait(CRASH)
        assert await parser.ask("hello") == "hello"
        parser.tell_nowait("queued")  # stays in the mailbox: taken only after the snapshot
        snapshot = sup.snapshot()
        text = str(snapshot)
        await sup.terminate_child("api")
        after = sup.snapshot()

    assert [(n.id, n.kind, n.state, n.restarts) for n in snapshot.walk()] == [
        ("root", "supervisor", "running", 0),
        ("api", "actor", "running", 0),
        ("jobs", "supervisor", "running", 0),
        ("parser", "actor", "running", 1),
    ]
    parser_node = snapshot.walk()[3]
    assert (parser_node.processed, parser_node.failed, parser_node.mailbox_depth) == (1, 1, 1)
    assert text.splitlines() == [
        "root [supervisor] running restarts=0",
        "├─ api [actor] running restarts=0 mailbox=0 processed=0 failed=0",
        "└─ jobs [supervisor] running restarts=0",
        "   └─ parser [actor] running restarts=1 mailbox=1 processed=1 failed=1",
    ]
    assert text == snapshot.render()
    assert after.children[0].state == "stopped"
    assert sup.snapshot().state == "stopped"


async def test_a_watcher_that_raises_does_not_break_the_supervisor_or_other_watchers() -> None:
    journal = Journal()
    notices: list[Terminated] = []

    def broken(notice: Terminated) -> None:
        raise RuntimeError("bug in a watcher")

    async with open_supervisor([worker("T", journal, restart=Restart.TRANSIENT)]) as sup:
        sup.ref("T").watch(broken)
        sup.ref("T").watch(notices.append)
        sup.ref("T").tell_nowait(STOP)
        await wait_until(lambda: bool(notices))
        assert sup.snapshot().state == "running"
    assert notices == [Terminated("T")]

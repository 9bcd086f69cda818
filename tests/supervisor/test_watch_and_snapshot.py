"""Watches (a ``Terminated`` notice when an actor stops for good, never on a restart) and the printable
snapshot of a supervision tree."""

import pytest

from actors import Actor, Terminated
from supervisor import (
    INFINITY,
    ChildSpec,
    ChildStartError,
    Intensity,
    Restart,
    SupervisorSpec,
    open_supervisor,
)
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


async def test_on_child_stopped_hears_every_child_that_stops_for_good_once_and_never_a_restart() -> None:
    journal = Journal()
    heard: list[Terminated] = []
    children = [
        worker("P", journal),
        worker("T", journal, restart=Restart.TRANSIENT),
        worker("tmp", journal, restart=Restart.TEMPORARY),
        worker("own", journal, intensity=Intensity(0, within=60.0)),
        ChildSpec("jobs", SupervisorSpec([worker("parser", journal)]), shutdown=INFINITY),
    ]
    async with open_supervisor(
        children, intensity=Intensity(10, within=60.0), on_child_stopped=heard.append
    ) as sup:
        watched: list[Terminated] = []
        sup.ref("T").watch(watched.append)
        for message in (CRASH, STOP):  # restarts after a crash and after a normal exit
            sup.ref("P").tell_nowait(message)
        assert await sup.ref("P").ask(WHO) == 3
        sup.ref("T").tell_nowait(CRASH)
        assert await sup.ref("T").ask(WHO) == 2
        assert heard == []

        sup.ref("T").tell_nowait(STOP)  # a transient child's normal exit: stopped for good
        sup.ref("tmp").tell_nowait(CRASH)  # a temporary child's crash: gone, with its error
        sup.ref("own").tell_nowait(CRASH)  # past its own intensity: gave up, with its error
        await wait_until(lambda: len(heard) == 3)
        assert watched == [Terminated("T")]  # the child's own watchers still hear it
        by_name = {notice.name: notice for notice in heard}
        assert by_name["T"] == Terminated("T")
        assert isinstance(by_name["tmp"].error, Boom)
        assert isinstance(by_name["own"].error, Boom)

        await sup.terminate_child("P")
        assert heard[-1] == Terminated("P")
        await sup.terminate_child("P")  # already stopped: nothing more
        assert len(heard) == 4
        sup.supervisor("jobs").ref("parser").tell_nowait(CRASH)  # a grandchild: not this one's child
        assert await sup.supervisor("jobs").ref("parser").ask(WHO) == 2
        assert len(heard) == 4
    # the tree's shutdown stops the rest for good: the nested supervisor, once
    assert [notice.name for notice in heard[4:]] == ["jobs"]


async def test_on_child_stopped_hears_a_dynamic_child_that_fails_to_start_and_survives_a_raising_listener() -> None:
    journal = Journal()
    heard: list[Terminated] = []

    def listener(notice: Terminated) -> None:
        heard.append(notice)
        raise RuntimeError("bug in the listener")

    async with open_supervisor([worker("A", journal)], on_child_stopped=listener) as sup:
        with pytest.raises(ChildStartError):
            await sup.start_child(ChildSpec("broken", _fails_to_start))
        assert [notice.name for notice in heard] == ["broken"]
        assert isinstance(heard[0].error, Boom)
        await sup.terminate_child("A")
        assert sup.snapshot().state == "running"  # the listener's bug broke nothing
    assert [notice.name for notice in heard] == ["broken", "A"]


def _fails_to_start() -> Actor:
    raise Boom("cannot start")


def test_on_child_stopped_must_be_callable() -> None:
    with pytest.raises(TypeError, match="on_child_stopped"):
        SupervisorSpec(on_child_stopped="not a function")  # type: ignore[arg-type]

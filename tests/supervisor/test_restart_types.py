"""Restart types: permanent children always come back, transient ones only after a crash, temporary
ones never (and leave the supervisor's child list)."""

import pytest

from actors import ActorStoppedError, Terminated
from supervisor import Restart, open_supervisor
from tests.actors.helpers import CRASH, STOP, WHO, Boom, Journal, wait_until, worker

pytestmark = pytest.mark.anyio


async def test_a_permanent_child_is_restarted_after_a_normal_exit() -> None:
    journal = Journal()
    async with open_supervisor([worker("P", journal)]) as sup:
        sup.ref("P").tell_nowait(STOP)  # self.context.stop(): a normal exit
        assert await sup.ref("P").ask(WHO) == 2
        assert [(c.id, c.state, c.restarts) for c in sup.which_children()] == [("P", "running", 1)]


async def test_a_transient_child_is_restarted_after_a_crash_but_not_after_a_normal_exit() -> None:
    journal = Journal()
    async with open_supervisor([worker("T", journal, restart=Restart.TRANSIENT)]) as sup:
        ref = sup.ref("T")
        notices: list[Terminated] = []
        ref.watch(notices.append)
        ref.tell_nowait(CRASH)
        assert await ref.ask(WHO) == 2
        ref.tell_nowait(STOP)
        await wait_until(lambda: bool(notices))
        assert notices == [Terminated("T")]
        assert [(c.id, c.state, c.restarts) for c in sup.which_children()] == [("T", "stopped", 1)]
        with pytest.raises(ActorStoppedError):
            await ref.ask(WHO)


async def test_a_temporary_child_is_never_restarted_and_leaves_which_children() -> None:
    journal = Journal()
    children = [
        worker("crashes", journal, restart=Restart.TEMPORARY),
        worker("exits", journal, restart=Restart.TEMPORARY),
        worker("stays", journal),
    ]
    async with open_supervisor(children) as sup:
        notices: list[Terminated] = []
        sup.ref("crashes").watch(notices.append)
        sup.ref("exits").watch(notices.append)
        sup.ref("crashes").tell_nowait(CRASH)
        sup.ref("exits").tell_nowait(STOP)
        await wait_until(lambda: len(notices) == 2)
        assert [c.id for c in sup.which_children()] == ["stays"]
        by_name = {notice.name: notice.error for notice in notices}
        assert isinstance(by_name["crashes"], Boom)
        assert by_name["exits"] is None
        assert journal.count("start", "crashes") == 1
        assert journal.count("start", "exits") == 1
        assert sup.restarts == 0

"""Children added at run time: started, listed, stopped and deleted on demand; forgotten when their
supervisor restarts (which starts its static children afresh)."""

import pytest

from actors import ActorRef, ActorStoppedError, DeadLetterReason
from supervisor import (
    INFINITY,
    ChildNotFoundError,
    ChildSpec,
    ChildStartError,
    Intensity,
    SupervisorSpec,
    open_supervisor,
)
from tests.actors.helpers import (
    CRASH,
    WHO,
    Boom,
    Journal,
    Scripted,
    collect_dead_letters,
    wait_until,
    worker,
)

pytestmark = pytest.mark.anyio


async def test_children_added_at_run_time_are_gone_after_their_supervisor_restarts() -> None:
    journal = Journal()
    mid_spec = SupervisorSpec([worker("static", journal)], intensity=Intensity(0))
    async with open_supervisor([ChildSpec("mid", mid_spec, shutdown=INFINITY)]) as top:
        mid = top.supervisor("mid")
        dynamic = await mid.start_child(worker("dynamic", journal))
        assert isinstance(dynamic, ActorRef)
        assert [c.id for c in mid.which_children()] == ["static", "dynamic"]
        assert await dynamic.ask(WHO) == 1

        mid.ref("static").tell_nowait(CRASH)  # intensity 0: mid gives up, top restarts it
        await wait_until(lambda: mid.incarnation == 2 and mid.snapshot().state == "running")

        assert [(c.id, c.state) for c in mid.which_children()] == [("static", "running")]
        assert await mid.ref("static").ask(WHO) == 1  # a fresh actor: the old one stopped with mid
        assert not dynamic.alive
        with pytest.raises(ActorStoppedError):
            await dynamic.ask(WHO)
        with pytest.raises(ChildNotFoundError):
            mid.ref("dynamic")
        assert top.which_children()[0].restarts == 1


async def test_a_dynamic_child_can_be_terminated_restarted_and_deleted() -> None:
    journal = Journal()
    async with open_supervisor([worker("static", journal)]) as sup:
        ref = await sup.start_child(worker("dynamic", journal))
        assert isinstance(ref, ActorRef)
        with pytest.raises(ValueError, match="already has a child"):
            await sup.start_child(worker("dynamic", journal))
        with pytest.raises(ChildNotFoundError):  # only a stopped child can be deleted
            await sup.delete_child("dynamic")
        await sup.terminate_child("dynamic")
        assert not ref.alive
        assert [(c.id, c.state) for c in sup.which_children()][1] == ("dynamic", "stopped")
        again = await sup.restart_child("dynamic")
        assert again is ref  # the same identity: its mailbox reopened
        assert await ref.ask(WHO) == 2
        await sup.terminate_child("dynamic")
        await sup.delete_child("dynamic")
        assert [c.id for c in sup.which_children()] == ["static"]
        assert journal.events == [
            ("start", "static"),
            ("start", "dynamic"),
            ("stop", "dynamic"),
            ("start", "dynamic"),
            ("stop", "dynamic"),
        ]


async def test_a_restart_child_whose_start_fails_raises_child_start_error_and_the_child_stays_stopped() -> None:
    journal = Journal()
    hub, letters = collect_dead_letters()
    spec = ChildSpec("W", lambda: FailsToStartAgain(journal))
    async with open_supervisor([spec], dead_letters=hub) as sup:
        ref = sup.ref("W")
        await sup.terminate_child("W")
        with pytest.raises(ChildStartError) as failure:
            await sup.restart_child("W")
        assert failure.value.child_id == "W"
        assert isinstance(failure.value.__cause__, Boom)
        assert [(c.id, c.state) for c in sup.which_children()] == [("W", "stopped")]
        assert not ref.alive
        ref.tell_nowait("lost?")  # not silently queued: a dead letter
    assert [(dl.message, dl.reason) for dl in letters] == [("lost?", DeadLetterReason.STOPPED)]


class FailsToStartAgain(Scripted):
    """Starts once; every later start fails."""

    async def on_start(self) -> None:
        await super().on_start()
        if self.context.incarnation > 1:
            raise Boom("cannot start again")

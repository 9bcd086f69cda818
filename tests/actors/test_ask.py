"""``ask``: replies, timeouts (the late reply is discarded), asks to stopped actors, and the actor's
exception raised to the asker while the actor itself is restarted by its supervisor."""

import threading
from typing import Any

import anyio
import pytest

from actors import Actor, ActorStoppedError, MailboxSpec, WrongThreadError
from supervisor import ChildSpec, open_supervisor
from tests.actors.helpers import (
    CRASH,
    WHO,
    Boom,
    Journal,
    Sleep,
    collect_dead_letters,
    mock_clock,
    wait_until,
    worker,
)

pytestmark = pytest.mark.anyio


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        return message


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_an_ask_times_out_no_earlier_than_its_timeout_and_the_late_reply_reaches_no_one() -> None:
    journal = Journal()
    hub, letters = collect_dead_letters()
    async with open_supervisor([worker("slow", journal)], dead_letters=hub) as sup:
        slow = sup.ref("slow")
        began = anyio.current_time()
        with pytest.raises(TimeoutError):
            await slow.ask(Sleep(5.0), timeout=1.0)
        assert anyio.current_time() - began >= 1.0
        # the next ask waits behind the slow message and gets its own reply, not the late one
        assert await slow.ask("next") == "next"
        assert anyio.current_time() - began >= 5.0
        assert journal.received["slow"] == [Sleep(5.0), "next"]
        stats = slow.statistics()
        assert (stats.incarnation, stats.processed, stats.failed) == (1, 2, 0)
    assert letters == []


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_an_ask_timeout_covers_waiting_for_room_in_a_full_mailbox() -> None:
    journal = Journal()
    spec = worker("busy", journal, mailbox=MailboxSpec(capacity=1))
    async with open_supervisor([spec]) as sup:
        busy = sup.ref("busy")
        busy.tell_nowait(Sleep(100.0))
        await wait_until(lambda: journal.count("busy", "busy") == 1)
        busy.tell_nowait("fills the mailbox")
        began = anyio.current_time()
        with pytest.raises(TimeoutError):
            await busy.ask("no room", timeout=1.0)
        assert anyio.current_time() - began == pytest.approx(1.0)
        await sup.terminate_child("busy")


async def test_an_ask_to_a_stopped_actor_fails_at_once() -> None:
    journal = Journal()
    async with open_supervisor([worker("gone", journal)]) as sup:
        ref = sup.ref("gone")
        await sup.terminate_child("gone")
        began = anyio.current_time()
        with anyio.fail_after(5.0), pytest.raises(ActorStoppedError):
            await ref.ask("anyone?")
        with pytest.raises(ActorStoppedError):
            await ref.ask("anyone?", timeout=10.0)
        # generous bound: nothing waited for a reply or a timeout
        assert anyio.current_time() - began < 1.0


async def test_the_actors_exception_reaches_the_asker_and_the_actor_is_restarted() -> None:
    journal = Journal()
    hub, letters = collect_dead_letters()
    async with open_supervisor([worker("A", journal)], dead_letters=hub) as sup:
        ref = sup.ref("A")
        with pytest.raises(Boom, match="A crashed"):
            await ref.ask(CRASH)
        assert await ref.ask(WHO) == 2
        assert sup.which_children()[0].restarts == 1
    # the error went to the asker: the ask is not a dead letter as well
    assert letters == []


async def test_an_actor_ref_used_from_a_foreign_thread_raises_and_the_actor_carries_on() -> None:
    async with open_supervisor([ChildSpec("echo", Echo)]) as sup:
        ref = sup.ref("echo")
        errors: list[BaseException] = []

        def from_a_foreign_thread() -> None:
            for send in (ref.tell_nowait, ref.ask_nowait):
                try:
                    send("lost?")
                except WrongThreadError as exc:
                    errors.append(exc)

        thread = threading.Thread(target=from_a_foreign_thread)
        thread.start()
        thread.join()
        assert len(errors) == 2
        assert "anyio.from_thread.run_sync(ref.tell_nowait, message)" in str(errors[0])
        # nothing was queued, nothing is wedged: the actor answers the next ask
        assert await ref.ask("still here", timeout=10) == "still here"
        assert ref.statistics().processed == 1
        # the way the error names works
        await anyio.to_thread.run_sync(lambda: anyio.from_thread.run_sync(ref.tell_nowait, "via the loop"))
        assert await ref.ask("after", timeout=10) == "after"

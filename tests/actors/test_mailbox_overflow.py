"""Bounded mailboxes: each overflow policy, and dead letters for what is dropped or sent too late.

``tell_nowait`` never yields, so a burst of them fills a mailbox before its actor takes anything."""

from typing import Any

import anyio
import pytest

from actors import (
    Actor,
    ActorStoppedError,
    DeadLetterReason,
    MailboxFullError,
    MailboxSpec,
    Overflow,
)
from supervisor import ChildSpec, open_supervisor
from tests.actors.helpers import Journal, collect_dead_letters, wait_until, worker

pytestmark = pytest.mark.anyio

K = 3


def bounded(journal: Journal, overflow: Overflow) -> ChildSpec:
    return worker("box", journal, mailbox=MailboxSpec(capacity=K, overflow=overflow))


async def test_drop_new_keeps_the_first_k_messages_and_dead_letters_the_rest() -> None:
    journal = Journal()
    hub, letters = collect_dead_letters()
    async with open_supervisor([bounded(journal, Overflow.DROP_NEW)], dead_letters=hub) as sup:
        for n in range(1, 7):
            sup.ref("box").tell_nowait(n)
        await wait_until(lambda: sup.ref("box").statistics().processed == K)
    assert journal.received["box"] == [1, 2, 3]
    assert [(dl.message, dl.reason, dl.recipient) for dl in letters] == [
        (n, DeadLetterReason.OVERFLOW, "box") for n in (4, 5, 6)
    ]


async def test_drop_oldest_keeps_the_newest_k_messages_and_dead_letters_the_rest() -> None:
    journal = Journal()
    hub, letters = collect_dead_letters()
    async with open_supervisor([bounded(journal, Overflow.DROP_OLDEST)], dead_letters=hub) as sup:
        for n in range(1, 7):
            sup.ref("box").tell_nowait(n)
        await wait_until(lambda: sup.ref("box").statistics().processed == K)
    assert journal.received["box"] == [4, 5, 6]
    assert [(dl.message, dl.reason) for dl in letters] == [
        (n, DeadLetterReason.OVERFLOW) for n in (1, 2, 3)
    ]


async def test_a_dropped_ask_fails_its_asker_and_is_a_dead_letter() -> None:
    journal = Journal()
    hub, letters = collect_dead_letters()
    async with open_supervisor([bounded(journal, Overflow.DROP_OLDEST)], dead_letters=hub) as sup:
        box = sup.ref("box")
        reply = box.ask_nowait("question")
        for n in range(1, K + 1):
            box.tell_nowait(n)
        with pytest.raises(MailboxFullError):
            await reply
        await wait_until(lambda: box.statistics().processed == K)
    assert [(dl.message, dl.reason) for dl in letters] == [("question", DeadLetterReason.OVERFLOW)]


async def test_fail_raises_mailbox_full_at_the_sender_and_keeps_what_was_queued() -> None:
    journal = Journal()
    hub, letters = collect_dead_letters()
    async with open_supervisor([bounded(journal, Overflow.FAIL)], dead_letters=hub) as sup:
        box = sup.ref("box")
        for n in range(1, K + 1):
            box.tell_nowait(n)
        with pytest.raises(MailboxFullError):
            box.tell_nowait(4)
        with pytest.raises(MailboxFullError):
            await box.tell(5)  # refused at once, not awaited
        await wait_until(lambda: box.statistics().processed == K)
        box.tell_nowait(6)  # room again
        await wait_until(lambda: box.statistics().processed == K + 1)
    assert journal.received["box"] == [1, 2, 3, 6]
    # refused messages were handed back to their sender: they are not dead letters
    assert letters == []


class Gated(Actor):
    """Waits at the gate on the message "gate"; records everything else."""

    def __init__(self, gate: anyio.Event, journal: Journal) -> None:
        self.gate = gate
        self.journal = journal

    async def receive(self, message: Any) -> Any:
        if message == "gate":
            self.journal.record("at the gate", self.context.name)
            await self.gate.wait()
        else:
            self.journal.received[self.context.name].append(message)


async def test_backpressure_blocks_the_sender_until_there_is_room() -> None:
    journal = Journal()
    gate = anyio.Event()
    hub, letters = collect_dead_letters()
    spec = ChildSpec("box", lambda: Gated(gate, journal), mailbox=MailboxSpec(capacity=K))
    sent: list[int] = []

    async def send(n: int) -> None:
        await box.tell(n)
        sent.append(n)

    async with open_supervisor([spec], dead_letters=hub) as sup:
        box = sup.ref("box")
        box.tell_nowait("gate")
        await wait_until(lambda: journal.events == [("at the gate", "box")])
        for n in range(1, K + 1):
            box.tell_nowait(n)
        with pytest.raises(MailboxFullError):
            box.tell_nowait(99)
        async with anyio.create_task_group() as tg:
            tg.start_soon(send, K + 1)
            tg.start_soon(send, K + 2)
            await anyio.wait_all_tasks_blocked()
            assert sent == []  # both senders wait for room
            assert box.statistics().mailbox_depth == K
            gate.set()
        assert sorted(sent) == [K + 1, K + 2]  # two senders: no order between them
        await wait_until(lambda: box.statistics().processed == K + 3)
    assert journal.received["box"][:K] == [1, 2, 3]
    assert sorted(journal.received["box"][K:]) == [K + 1, K + 2]
    assert letters == []


async def test_messages_to_a_stopped_actor_are_dead_letters_and_asks_fail() -> None:
    journal = Journal()
    hub, letters = collect_dead_letters()
    async with open_supervisor([worker("gone", journal)], dead_letters=hub) as sup:
        ref = sup.ref("gone")
        await sup.terminate_child("gone")
        ref.tell_nowait("after")
        await ref.tell("awaited")
        with pytest.raises(ActorStoppedError):
            await ref.ask("question")
    assert [(dl.message, dl.reason, dl.recipient) for dl in letters] == [
        ("after", DeadLetterReason.STOPPED, "gone"),
        ("awaited", DeadLetterReason.STOPPED, "gone"),
    ]
    assert hub.count == 2


async def test_messages_still_queued_when_an_actor_stops_for_good_are_dead_letters() -> None:
    journal = Journal()
    gate = anyio.Event()
    hub, letters = collect_dead_letters()
    spec = ChildSpec("box", lambda: Gated(gate, journal), shutdown=0.5)
    async with open_supervisor([spec], dead_letters=hub) as sup:
        box = sup.ref("box")
        box.tell_nowait("gate")
        box.tell_nowait("queued")
        pending = box.ask_nowait("pending question")
        await wait_until(lambda: journal.events == [("at the gate", "box")])
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.terminate_child, "box")
            await wait_until(lambda: sup.which_children()[0].state == "stopping")
            gate.set()  # "gate" is done; with a stop requested, the actor ends there
        with pytest.raises(ActorStoppedError):
            await pending
        assert journal.received["box"] == []
    assert [(dl.message, dl.reason) for dl in letters] == [("queued", DeadLetterReason.STOPPED)]

"""Mailbox.offer and Mailbox.put_many: the senders' one-call paths keep what put_nowait does per
message (order, capacity, overflow policy, dead letters, waking the receiver or an idle actor)."""

from typing import Any

import anyio
import pytest

from actors import (
    DeadLetter,
    DeadLetterReason,
    DeadLetters,
    Mailbox,
    MailboxFullError,
    MailboxSpec,
    Overflow,
    current_future_factory,
)

pytestmark = pytest.mark.anyio


class Woken(Mailbox):
    """Counts how often an idle mailbox asked its owner for a task."""

    __slots__ = ("woken",)

    def __init__(self, spec: MailboxSpec, letters: list[DeadLetter]) -> None:
        hub = DeadLetters()
        hub.subscribe(letters.append)
        super().__init__("box", spec, hub, current_future_factory())
        self.woken = 0

    def _woke(self) -> None:
        self.woken += 1


def box(capacity: int | None = None, overflow: Overflow = Overflow.BACKPRESSURE) -> tuple[Woken, list[DeadLetter]]:
    letters: list[DeadLetter] = []
    return Woken(MailboxSpec(capacity, overflow), letters), letters


async def test_put_many_queues_in_order_behind_what_was_there_and_wakes_the_receiver() -> None:
    mailbox, letters = box()
    woke: list[Any] = []

    async def receiver() -> None:
        woke.append(await mailbox.wait_nonempty())

    async with anyio.create_task_group() as tg:
        tg.start_soon(receiver)
        await anyio.wait_all_tasks_blocked()
        mailbox.put_nowait(1)
        mailbox.put_many([2, 3, 4])
        mailbox.put_many([])
    assert woke == [None]
    assert list(mailbox.queue) == [1, 2, 3, 4]
    assert letters == []


async def test_put_many_to_an_idle_mailbox_wakes_its_owner_once() -> None:
    mailbox, _ = box(capacity=5)
    mailbox.go_idle()
    assert mailbox.idle
    mailbox.put_many([])
    assert mailbox.idle  # nothing arrived: no task asked for
    mailbox.put_many([1, 2, 3])
    assert (mailbox.idle, mailbox.woken, list(mailbox.queue)) == (False, 1, [1, 2, 3])


@pytest.mark.parametrize(
    ("overflow", "kept", "dropped"),
    [(Overflow.DROP_OLDEST, [3, 4, 5], [1, 2]), (Overflow.DROP_NEW, [1, 2, 3], [4, 5])],
)
async def test_put_many_past_capacity_applies_the_overflow_policy_message_by_message(
    overflow: Overflow, kept: list[int], dropped: list[int]
) -> None:
    mailbox, letters = box(capacity=3, overflow=overflow)
    mailbox.put_nowait(1)
    mailbox.put_many([2, 3, 4, 5])
    assert list(mailbox.queue) == kept
    assert [(letter.message, letter.reason) for letter in letters] == [
        (n, DeadLetterReason.OVERFLOW) for n in dropped
    ]


@pytest.mark.parametrize("overflow", [Overflow.BACKPRESSURE, Overflow.FAIL])
async def test_put_many_past_capacity_under_a_refusing_policy_keeps_what_fit_and_raises(
    overflow: Overflow,
) -> None:
    mailbox, letters = box(capacity=3, overflow=overflow)
    with pytest.raises(MailboxFullError):
        mailbox.put_many([1, 2, 3, 4, 5])
    assert list(mailbox.queue) == [1, 2, 3]
    assert letters == []


async def test_put_many_and_offer_to_a_closed_mailbox_dead_letter_each_message() -> None:
    mailbox, letters = box(capacity=3)
    mailbox.close()
    mailbox.put_many([1, 2])
    assert mailbox.offer(3) is True
    assert [(letter.message, letter.reason) for letter in letters] == [
        (n, DeadLetterReason.STOPPED) for n in (1, 2, 3)
    ]
    assert len(mailbox) == 0


async def test_offer_queues_only_while_there_is_room() -> None:
    mailbox, letters = box(capacity=2, overflow=Overflow.DROP_OLDEST)
    mailbox.go_idle()
    assert mailbox.offer(1) is True
    assert mailbox.woken == 1
    assert mailbox.offer(2) is True
    # full: left out, and no overflow policy applied (the caller decides what to do)
    assert mailbox.offer(3) is False
    assert list(mailbox.queue) == [1, 2]
    assert letters == []
    unbounded, _ = box()
    assert all(unbounded.offer(n) for n in range(100))
    assert len(unbounded) == 100

"""Handlers whose actors went idle (no task after the linger) still get everything sent to them,
including what no bound may refuse: notices, and a re-entrant emit past a full mailbox."""

from __future__ import annotations

import anyio
import pytest
from trio.testing import MockClock

from bus import BusTerminal, DeadLetter, Event, EventBus, MessageRegistry

pytestmark = pytest.mark.anyio

VIRTUAL = [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mockclock")]


class Job(Event):
    n: int


class Poison(Event):
    n: int


async def idle_long_enough() -> None:
    await anyio.sleep(10)  # well past the handlers supervisor's linger: every actor gave up its task


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_a_dead_letter_reaches_a_subscriber_whose_actor_went_idle() -> None:
    heard: list[DeadLetter] = []

    async def fails(event: Poison, ctx: object) -> None:
        raise RuntimeError(f"poison {event.n}")

    async def on_dead_letter(letter: DeadLetter, ctx: object) -> None:
        heard.append(letter)

    registry = MessageRegistry()
    registry.register(fails, retries=0)
    registry.register(on_dead_letter, mailbox_capacity=1)
    async with BusTerminal(registry) as terminal:
        await idle_long_enough()
        for n in range(3):
            await terminal.bus.emit(Poison(n))
        await terminal.drain()
        await idle_long_enough()
        await terminal.bus.emit(Poison(3))
        await terminal.drain()
    assert [letter.event for letter in heard] == [Poison(0), Poison(1), Poison(2), Poison(3)]


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_a_handler_emitting_to_its_own_full_mailbox_after_going_idle_queues_past_the_bound() -> None:
    handled: list[int] = []

    async def countdown(job: Job, ctx: object, bus: EventBus) -> None:
        handled.append(job.n)
        if job.n:
            await bus.emit(Job(job.n - 1))
            await bus.emit(Job(job.n - 1))

    registry = MessageRegistry()
    registry.register(countdown, mailbox_capacity=1)
    async with BusTerminal(registry) as terminal:
        await idle_long_enough()
        await terminal.bus.emit(Job(3))
        await terminal.drain()
    assert sorted(handled) == sorted([3, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0])

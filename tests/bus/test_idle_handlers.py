"""Handlers whose actors went idle (no task after the linger) still get everything sent to them,
including what no bound may refuse: notices, and a re-entrant emit past a full mailbox."""

from __future__ import annotations

import gc
import tracemalloc

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


class Ping(Event):
    hops: int


class Pong(Event):
    hops: int


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_a_handler_publishing_back_up_its_chain_after_going_idle_runs_inline_each_time() -> None:
    # the root bus, not the handler's own handle: the chain is known from the task, whatever the handle
    log: list[str] = []
    root: list[EventBus[Event]] = []

    async def a(event: Ping) -> None:
        log.append(f"a{event.hops}")
        if event.hops < 2:
            await root[0].publish(Pong(event.hops + 1))

    async def b(event: Pong) -> None:
        log.append(f"b{event.hops}")
        await root[0].publish(Ping(event.hops + 1))  # back to a, which waits on b: inline

    registry = MessageRegistry()
    registry.register(a, b)
    async with BusTerminal(registry) as terminal:
        root.append(terminal.bus)
        for _round in range(3):
            await idle_long_enough()
            assert terminal.handler_ref(a.__qualname__).statistics().idle
            with anyio.fail_after(5):
                await terminal.bus.publish(Ping(0))
    assert log == ["a0", "b1", "a2"] * 3


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_an_idle_handler_costs_a_bounded_number_of_bytes() -> None:
    # a regression guard, not the benchmark (benchmarks/bench_memory.py, ~810 B at 10,000 handlers
    # on asyncio; ~840 B here): no context copy, crash record, start time, watcher, backoff or
    # per-route table of its own
    n = 2_000
    registry = MessageRegistry()
    done: list[int] = []
    for i in range(n):

        async def handler(event: Job) -> None:
            done.append(event.n)

        handler.__qualname__ = handler.__name__ = f"idle_{i}"
        registry.register(handler)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(Job(1))
            await terminal.drain()
            await idle_long_enough()
            assert terminal.handler_ref("idle_0").statistics().idle
            gc.collect()
            per_handler = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    assert len(done) == n
    assert per_handler < 1_000, f"{per_handler:.0f} bytes per idle handler"

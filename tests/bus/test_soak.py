"""A bounded soak: publish, emit, emit_many and sink interleaved from several tasks, handlers that
fail now and then (transiently or for good), a DeadLetter subscriber. Afterwards every emitted
delivery was handled or dead-lettered exactly as the policy says, the counters agree, and nothing
is left running.

Real clocks on both backends: sync handlers and the SQLite sink work in threads, and a MockClock
jumps ahead whenever every task waits on a thread. Each crash costs a restart backoff of ~10 ms,
so the whole soak takes a second or two."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from bus import BusTerminal, DeadLetter, Event, MailboxFullError, MessageContext, MessageRegistry
from bus.sinks import SQLiteSink

pytestmark = pytest.mark.anyio

LIMIT = 60


class Job(Event):
    n: int
    poison: bool  # fails on every attempt
    flaky: bool  # fails on the first attempt only


class Transient(Exception):
    pass


class Poison(Exception):
    pass


def jobs(seed: int, count: int) -> list[Job]:
    rng = random.Random(seed)
    return [Job(n, rng.random() < 0.05, rng.random() < 0.15) for n in range(count)]


async def test_a_mixed_soak_accounts_for_every_delivery_and_leaves_nothing_running(tmp_path: Path) -> None:
    handled: Counter[tuple[str, int]] = Counter()
    attempts: Counter[tuple[str, int]] = Counter()
    letters: Counter[tuple[str, int]] = Counter()
    letter_reasons: Counter[str] = Counter()
    published_ok: list[int] = []
    published_failed: list[int] = []

    async def worker(job: Job, ctx: MessageContext) -> None:
        attempts["worker", job.n] += 1
        if job.poison:
            raise Poison(job.n)
        if job.flaky and ctx.attempt == 1:
            raise Transient(job.n)
        await anyio.lowlevel.checkpoint()
        handled["worker", job.n] += 1

    def sync_worker(job: Job, ctx: MessageContext) -> None:
        # a sync handler in a worker thread: its counters are only touched from this actor's thread
        if job.poison:
            raise Poison(job.n)
        handled["sync_worker", job.n] += 1

    async def auditor(job: Job) -> None:
        handled["auditor", job.n] += 1

    async def on_letter(letter: DeadLetter) -> None:
        assert isinstance(letter.event, Job)
        letters[letter.handler.rsplit(".", 1)[-1], letter.event.n] += 1
        letter_reasons[letter.reason] += 1

    registry = MessageRegistry()
    registry.register(
        worker, retries=2, retry_backoff=0.001, restart_backoff_factor=1.0, mailbox_capacity=64
    )
    registry.register(sync_worker, retries=0)
    registry.register(auditor, mailbox_capacity=16)
    registry.register(on_letter)
    emitted = jobs(1, 160)
    batched = jobs(2, 80)
    batched = [Job(n + 1000, j.poison, j.flaky) for n, j in enumerate(batched)]
    published = [Job(n + 2000, j.poison, False) for n, j in enumerate(jobs(3, 60))]
    sunk = [Job(n + 3000, False, False) for n in range(60)]

    tasks_before = len(anyio.get_running_tasks())
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry, sinks=[SQLiteSink(tmp_path / "e.db")]) as terminal:
            bus = terminal.bus

            async def emitter(part: list[Job]) -> None:
                for job in part:
                    if job.n % 2:
                        await bus.emit(job)
                    else:
                        try:
                            bus.emit_nowait(job)
                        except MailboxFullError:
                            # nothing was queued: wait for room instead
                            await bus.emit(job)
                    await anyio.lowlevel.checkpoint()

            async def batch_emitter() -> None:
                for i in range(0, len(batched), 20):
                    await bus.emit_many(batched[i : i + 20])

            async def publisher() -> None:
                for job in published:
                    try:
                        await bus.publish(job)
                    except Poison:
                        published_failed.append(job.n)
                    else:
                        published_ok.append(job.n)

            async def sinker() -> None:
                for job in sunk:
                    await bus.sink(job)

            async with anyio.create_task_group() as tg:
                tg.start_soon(emitter, emitted[:80])
                tg.start_soon(emitter, emitted[80:])
                tg.start_soon(batch_emitter)
                tg.start_soon(publisher)
                tg.start_soon(sinker)
            await terminal.drain()
            statistics = terminal.statistics()
            stored = await terminal_sink_rows(tmp_path / "e.db")
    assert len(anyio.get_running_tasks()) == tasks_before  # no task outlives the terminal

    queued = emitted + batched
    for job in queued:
        # worker: retried in place, then dead-lettered; handled at most once either way
        if job.poison:
            assert (handled["worker", job.n], letters["worker", job.n]) == (0, 1), job
            assert attempts["worker", job.n] == 3
            assert (handled["sync_worker", job.n], letters["sync_worker", job.n]) == (0, 1), job
        else:
            assert (handled["worker", job.n], letters["worker", job.n]) == (1, 0), job
            assert attempts["worker", job.n] == (2 if job.flaky else 1)
            assert (handled["sync_worker", job.n], letters["sync_worker", job.n]) == (1, 0), job
        assert (handled["auditor", job.n], letters["auditor", job.n]) == (1, 0)
    # publish: the first failing handler stops it, the error reaches the caller, nothing is retried
    assert sorted(published_failed) == sorted(j.n for j in published if j.poison)
    assert sorted(published_ok) == sorted(j.n for j in published if not j.poison)
    for job in published:
        assert attempts["worker", job.n] == 1
        assert letters["worker", job.n] == 0
        assert handled["auditor", job.n] == (0 if job.poison else 1)
    poison_queued = sum(j.poison for j in queued)
    assert letter_reasons == Counter({"retries_exhausted": 2 * poison_queued})
    assert statistics.in_flight == 0
    assert statistics.emitted >= len(queued)
    assert statistics.published == len(published)
    assert statistics.sunk == len(sunk)
    assert sorted(stored) == [j.n for j in sunk]


async def terminal_sink_rows(path: Path) -> list[int]:
    async with SQLiteSink(path) as reader:
        return [event.n for event, _ in await reader.read()]  # type: ignore[attr-defined]

"""Restart backoff and the crash-loop rule at the default policy (issue 7, items 4 and 5).

Virtual time: trio with a MockClock, so seconds of backoff take no wall-clock time.
"""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from bus import (
    BusTerminal,
    DeadLetter,
    Event,
    HandlerRestarted,
    HandlerStopped,
    MessageContext,
    MessageRegistry,
)

pytestmark = pytest.mark.anyio


def mock_clock_trio() -> object:
    return pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mockclock")


VIRTUAL = [mock_clock_trio()]


class Job(Event):
    n: int


class Boom(Exception):
    pass


class Database:
    pass


class Notices:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []
        self.restarted: list[HandlerRestarted] = []
        self.stopped: list[HandlerStopped] = []

    def register(self, registry: MessageRegistry) -> None:
        async def on_letter(letter: DeadLetter, ctx: Any) -> None:
            self.letters.append(letter)

        async def on_restarted(notice: HandlerRestarted, ctx: Any) -> None:
            self.restarted.append(notice)

        async def on_stopped(notice: HandlerStopped, ctx: Any) -> None:
            self.stopped.append(notice)

        registry.register(on_letter, on_restarted, on_stopped)


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_a_handler_survives_a_five_second_dependency_outage_and_then_processes_its_queue() -> None:
    outage = {"until": 0.0}
    starts: list[float] = []
    done: list[tuple[int, int]] = []

    def database() -> Database:
        starts.append(anyio.current_time())
        if anyio.current_time() < outage["until"]:
            raise ConnectionError("database down")
        return Database()

    async def store(job: Job, ctx: MessageContext, db: Database) -> None:
        if job.n == 0 and ctx.attempt == 1:
            outage["until"] = anyio.current_time() + 5.0
            raise Boom("lost the connection")
        done.append((job.n, ctx.attempt))

    registry = MessageRegistry()
    registry.factory(database)
    registry.register(store)
    notices = Notices()
    notices.register(registry)
    async with BusTerminal(registry) as terminal:
        for n in range(10):
            await terminal.bus.emit(Job(n))
        await terminal.drain()
        assert terminal.handler_ref(store.__qualname__).alive
    # the message that hit the outage was retried (attempt 2), not dead-lettered; all others ran
    assert done == [(0, 2)] + [(n, 1) for n in range(1, 10)]
    assert notices.letters == []
    assert notices.stopped == []
    assert starts[-1] >= outage["until"]
    gaps = [b - a for a, b in itertools.pairwise(starts[1:])]
    assert min(gaps) >= 0.01  # never two restarts closer than 10 ms


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_a_start_that_keeps_failing_stops_the_handler_for_good_with_handler_stopped() -> None:
    broken = {"now": False}
    starts: list[float] = []

    def database() -> Database:
        starts.append(anyio.current_time())
        if broken["now"]:
            raise ConnectionError("database gone")
        return Database()

    async def store(job: Job, ctx: Any, db: Database) -> None:
        broken["now"] = True
        raise Boom("lost it")

    registry = MessageRegistry()
    registry.factory(database)
    registry.register(store)
    notices = Notices()
    notices.register(registry)
    async with BusTerminal(registry) as terminal:
        begin = anyio.current_time()
        await terminal.bus.emit(Job(1))
        await terminal.bus.emit(Job(2))
        await terminal.drain()
        stopped_after = anyio.current_time() - begin
        assert not terminal.handler_ref(store.__qualname__).alive
        await terminal.bus.emit(Job(3))  # to a stopped handler: a dead letter at once
        await terminal.drain()
    assert len(notices.stopped) == 1
    assert "crash loop" in notices.stopped[0].reason
    assert "database gone" in notices.stopped[0].reason
    # 1 start, 1 crash on the message, then 20 failed restarts in a row: about 26 s of backoff
    assert len(starts) == 1 + 20
    assert 25 < stopped_after < 40
    assert sorted(d.event.n for d in notices.letters if isinstance(d.event, Job)) == [1, 2, 3]
    assert {d.reason for d in notices.letters} == {"handler_stopped"}


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_poison_in_every_fifth_message_never_stops_a_default_policy_handler() -> None:
    processed: list[int] = []

    async def work(job: Job, ctx: Any) -> None:
        if job.n % 5 == 4:
            raise Boom(f"poison {job.n}")
        processed.append(job.n)

    registry = MessageRegistry()
    registry.register(work)
    notices = Notices()
    notices.register(registry)
    async with BusTerminal(registry) as terminal:
        for n in range(500):
            await terminal.bus.emit(Job(n))
        await terminal.drain()
        assert terminal.handler_ref(work.__qualname__).alive
    assert processed == [n for n in range(500) if n % 5 != 4]
    assert sorted(d.event.n for d in notices.letters if isinstance(d.event, Job)) == list(
        range(4, 500, 5)
    )
    assert {(d.reason, d.attempts) for d in notices.letters} == {("retries_exhausted", 4)}
    assert notices.stopped == []
    assert len(notices.restarted) == 100 * 4


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_five_poison_messages_in_a_row_do_not_stop_a_default_policy_handler() -> None:
    processed: list[int] = []

    async def work(job: Job, ctx: Any) -> None:
        if 10 <= job.n < 15:
            raise Boom("poison")
        processed.append(job.n)

    registry = MessageRegistry()
    registry.register(work)
    notices = Notices()
    notices.register(registry)
    async with BusTerminal(registry) as terminal:
        for n in range(30):
            await terminal.bus.emit(Job(n))
        await terminal.drain()
        assert terminal.handler_ref(work.__qualname__).alive
    assert processed == [n for n in range(30) if not 10 <= n < 15]
    assert len(notices.letters) == 5
    assert notices.stopped == []


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_a_handler_that_fails_every_message_stops_after_max_restarts_crashes_in_a_row() -> None:
    crashes: list[float] = []

    async def broken(job: Job, ctx: Any) -> None:
        crashes.append(anyio.current_time())
        raise Boom("always")

    registry = MessageRegistry()
    registry.register(broken, retries=1, max_restarts=6)
    notices = Notices()
    notices.register(registry)
    async with BusTerminal(registry) as terminal:
        for n in range(10):
            await terminal.bus.emit(Job(n))
        await terminal.drain()
        assert not terminal.handler_ref(broken.__qualname__).alive
    # 7 crashes in a row (more than max_restarts=6) without one message handled: stopped
    assert len(crashes) == 7
    gaps = [b - a for a, b in itertools.pairwise(crashes)]
    assert min(gaps) >= 0.01
    assert len(notices.stopped) == 1
    assert "max_restarts=6" in notices.stopped[0].reason
    reasons = [d.reason for d in notices.letters]
    assert reasons.count("retries_exhausted") == 3
    assert reasons.count("handler_stopped") == 7


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_an_incarnation_that_ran_restart_period_without_crashing_resets_the_crash_loop() -> None:
    async def sometimes(job: Job, ctx: Any) -> None:
        raise Boom("fails, but rarely")

    registry = MessageRegistry()
    registry.register(sometimes, retries=0, max_restarts=2, restart_period=1.0)
    notices = Notices()
    notices.register(registry)
    async with BusTerminal(registry) as terminal:
        for n in range(6):
            await anyio.sleep(1.5)  # longer than restart_period between two crashes
            await terminal.bus.emit(Job(n))
            await terminal.drain()
        assert terminal.handler_ref(sometimes.__qualname__).alive
    assert len(notices.letters) == 6
    assert notices.stopped == []


@pytest.mark.parametrize("anyio_backend", VIRTUAL)
async def test_handlers_of_one_policy_keep_their_own_crash_loops_and_backoff() -> None:
    # the handlers of one policy share one backoff object: each still counts its own crashes
    broken_crashes: list[float] = []
    flaky_crashes: list[float] = []
    handled: list[int] = []

    async def broken(job: Job, ctx: Any) -> None:
        broken_crashes.append(anyio.current_time())
        raise Boom("always")

    async def flaky(job: Job, ctx: Any) -> None:
        if job.n % 2 == 0:
            flaky_crashes.append(anyio.current_time())
            raise Boom("every other message")
        handled.append(job.n)

    registry = MessageRegistry()
    registry.register(
        broken, flaky, retries=0, max_restarts=3, restart_backoff=1.0, restart_backoff_max=10.0, restart_jitter=0.0
    )
    notices = Notices()
    notices.register(registry)
    async with BusTerminal(registry) as terminal:
        for n in range(12):
            await terminal.bus.emit(Job(n))
        await terminal.drain()
        assert not terminal.handler_ref(broken.__qualname__).alive
        assert terminal.handler_ref(flaky.__qualname__).alive
    # broken: 4 crashes in a row (more than max_restarts=3), its backoff doubling each time
    assert len(broken_crashes) == 4
    gaps = [b - a for a, b in itertools.pairwise(broken_crashes)]
    assert gaps == pytest.approx([1.0, 2.0, 4.0], abs=0.01)
    # flaky made progress between its crashes: never stopped, each restart after the first delay
    assert handled == list(range(1, 12, 2))
    assert len(flaky_crashes) == 6
    assert [n.handler.rsplit(".", 1)[-1] for n in notices.stopped] == ["broken"]

"""Leaving the terminal (bus._terminal) and sinks: every ``sink`` call ends within the shutdown timeout,
handlers can sink, emit and publish until they have stopped, and every exit closes every sink."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pytest
from trio.testing import MockClock

from bus import BusClosedError, BusTerminal, Event, EventBus, MessageContext, MessageRegistry
from bus.sinks import JSONLinesSink, OnError, Sink, SQLiteSink

pytestmark = pytest.mark.anyio

LIMIT = 30


class Saved(Event):
    __type_name__ = "tests.sink_shutdown.saved"

    n: int


class Finish(Event):
    __type_name__ = "tests.sink_shutdown.finish"

    n: int


class Tracked(Sink):
    """Wraps a sink: records open/close, can fail every write, can hang in open."""

    def __init__(self, inner: Sink, *, down: bool = False, open_forever: bool = False) -> None:
        self.inner = inner
        self.down = down
        self.open_forever = open_forever
        self.opened = 0
        self.closed = 0

    @property
    def name(self) -> str:
        return f"tracked:{self.inner.name}"

    async def open(self) -> None:
        self.opened += 1
        await self.inner.open()
        if self.open_forever:
            await anyio.sleep(math.inf)

    async def write(self, batch: Sequence[tuple[Event, MessageContext]]) -> None:
        if self.down:
            await anyio.lowlevel.checkpoint()
            raise OSError("storage unavailable")
        await self.inner.write(batch)

    async def read(self, *, on_error: OnError = "raise") -> list[tuple[Event, MessageContext]]:
        return await self.inner.read(on_error=on_error)

    async def close(self) -> None:
        self.closed += 1
        await self.inner.close()


# Real time on both backends, with relative bounds and generous slack: these sinks work in
# worker threads, and a MockClock would jump past every deadline while a thread runs.
MAKE_SINKS = [
    pytest.param(lambda p: SQLiteSink(p / "e.db"), id="sqlite"),
    pytest.param(lambda p: JSONLinesSink(p / "e.jsonl"), id="jsonl"),
]


@pytest.mark.parametrize("make_sink", MAKE_SINKS)
async def test_every_sink_call_raises_bus_closed_within_the_shutdown_timeout_during_an_outage(
    tmp_path: Path, make_sink: Callable[[Path], Sink]
) -> None:
    sink = Tracked(make_sink(tmp_path), down=True)
    ended: dict[int, tuple[str, float]] = {}

    async def call(bus: EventBus, n: int) -> None:
        try:
            await bus.sink(Saved(n))
        except BusClosedError:
            ended[n] = ("BusClosedError", anyio.current_time())
        else:
            ended[n] = ("stored", anyio.current_time())

    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as tg:
            async with BusTerminal(sinks=[sink], shutdown_timeout=0.5) as terminal:
                tg.start_soon(call, terminal.bus, 1)
                await anyio.sleep(0.1)
                tg.start_soon(call, terminal.bus, 2)
                await anyio.sleep(0.01)
                left = anyio.current_time()
            exited = anyio.current_time()
    assert {n: outcome for n, (outcome, _) in ended.items()} == {
        1: "BusClosedError",
        2: "BusClosedError",
    }
    # within the shutdown timeout (generous slack for a loaded machine on real time)
    assert all(at - left <= 0.5 + 2.0 for _, at in ended.values())
    assert exited - left <= 0.5 + 2.0
    assert (sink.opened, sink.closed) == (1, 1)


@pytest.mark.parametrize("make_sink", MAKE_SINKS)
async def test_sink_calls_queued_when_the_storage_recovers_in_time_are_stored(
    tmp_path: Path, make_sink: Callable[[Path], Sink]
) -> None:
    sink = Tracked(make_sink(tmp_path), down=True)
    outcomes: list[str] = []

    async def call(bus: EventBus, n: int) -> None:
        await bus.sink(Saved(n))
        outcomes.append("stored")

    async def recover() -> None:
        await anyio.sleep(0.2)
        sink.down = False

    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as tg, BusTerminal(sinks=[sink], shutdown_timeout=5.0) as terminal:
            for n in range(5):
                tg.start_soon(call, terminal.bus, n)
            await anyio.sleep(0.05)
            tg.start_soon(recover)
            # the exit waited (retrying) for the storage, within its timeout
    assert outcomes == ["stored"] * 5


@pytest.mark.parametrize("make_sink", MAKE_SINKS)
async def test_a_handler_can_sink_emit_and_publish_while_it_stops_after_the_drain_time(
    tmp_path: Path, make_sink: Callable[[Path], Sink]
) -> None:
    sink = make_sink(tmp_path)
    started = anyio.Event()
    results: list[str] = []
    finished: list[int] = []

    async def slow(event: Saved, ctx: MessageContext, bus: EventBus) -> None:
        started.set()
        await anyio.sleep(0.5)  # past the terminal's drain time, within its own shutdown timeout
        context = await bus.sink(Saved(event.n + 100))
        results.append(f"sunk {context.causation_id == ctx.message_id}")
        await bus.emit(Finish(event.n))
        await bus.publish(Finish(event.n + 1))
        results.append("emitted and published")

    async def finish(event: Finish, ctx: MessageContext) -> None:
        finished.append(event.n)

    registry = MessageRegistry()
    registry.register(finish)
    registry.register(slow, shutdown_timeout=LIMIT)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry, sinks=[sink], shutdown_timeout=0.1) as terminal:
            await terminal.bus.emit(Saved(1))
            await started.wait()
        async with make_sink(tmp_path) as reader:
            stored = [event for event, _ in await reader.read()]
    assert results == ["sunk True", "emitted and published"]
    assert 2 in finished  # the publish reached a handler that had not stopped yet
    assert stored == [Saved(101)]
    with pytest.raises(BusClosedError):
        await terminal.bus.sink(Saved(2))


async def test_leaving_by_cancellation_closes_every_sink_and_fails_waiting_calls(
    tmp_path: Path,
) -> None:
    first = Tracked(SQLiteSink(tmp_path / "e.db"))
    second = Tracked(JSONLinesSink(tmp_path / "e.jsonl"), down=True)
    outcome: list[str] = []

    async def call(bus: EventBus) -> None:
        try:
            await bus.sink(Saved(1))
        except BusClosedError:
            outcome.append("BusClosedError")

    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as scope:
                async with BusTerminal(sinks=[first, second]) as terminal:
                    tg.start_soon(call, terminal.bus)
                    await anyio.sleep(0.1)
                    scope.cancel()
                    await anyio.sleep(math.inf)
    assert scope.cancelled_caught
    assert outcome == ["BusClosedError"]
    assert (first.opened, first.closed) == (1, 1)
    assert (second.opened, second.closed) == (1, 1)
    sqlite_inner = first.inner
    assert isinstance(sqlite_inner, SQLiteSink)
    assert sqlite_inner._connection is None  # the connection is really closed


async def test_cancelling_the_start_half_way_closes_the_sinks_already_opened(
    tmp_path: Path,
) -> None:
    opened = Tracked(SQLiteSink(tmp_path / "e.db"))
    hanging = Tracked(JSONLinesSink(tmp_path / "e.jsonl"), open_forever=True)
    untouched = Tracked(JSONLinesSink(tmp_path / "f.jsonl"))
    with anyio.fail_after(LIMIT), anyio.move_on_after(0.2) as scope:
        async with BusTerminal(sinks=[opened, hanging, untouched]):
            pytest.fail("the start should have been cancelled")
    assert scope.cancelled_caught
    assert (opened.opened, opened.closed) == (1, 1)
    assert (hanging.opened, hanging.closed) == (1, 1)  # its open was cut short: closed anyway
    assert untouched.opened == 0


class Hanging(Sink):
    """A storage whose writes never return (a dead network peer): no thread, pure awaiting."""

    def __init__(self) -> None:
        self.closed = 0

    @property
    def name(self) -> str:
        return "hanging:test"

    async def open(self) -> None:
        pass

    async def write(self, batch: Sequence[tuple[Event, MessageContext]]) -> None:
        await anyio.sleep(math.inf)

    async def read(self, *, on_error: OnError = "raise") -> list[tuple[Event, MessageContext]]:
        return []

    async def close(self) -> None:
        self.closed += 1


def mock_clock_trio() -> object:
    return pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mockclock")


@pytest.mark.parametrize("anyio_backend", ["asyncio", mock_clock_trio()])
async def test_sink_calls_into_a_write_that_never_returns_raise_bus_closed_within_the_timeout() -> None:
    sink = Hanging()
    ended: list[float] = []

    async def call(bus: EventBus) -> None:
        with pytest.raises(BusClosedError):
            await bus.sink(Saved(1))
        ended.append(anyio.current_time())

    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as tg, BusTerminal(sinks=[sink], shutdown_timeout=0.5) as terminal:
            tg.start_soon(call, terminal.bus)
            await anyio.sleep(0.1)
            left = anyio.current_time()
    assert len(ended) == 1
    assert ended[0] - left <= 0.5 + 2.0
    assert sink.closed == 1

"""Redis down when the terminal stops: the exit is bounded by the shutdown timeout, an
``emit_nowait`` entry that never reached Redis is counted as lost, and what was handled is not
handled again once Redis is back."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anyio
import pytest

from bus import BusTerminal, MessageRegistry
from bus.transport import RedisStreams
from tests.bus.transport.test_redis_streams import Placed, eventually, namespace
from tests.servers import RedisServer

pytestmark = pytest.mark.anyio


async def test_leaving_the_terminal_while_redis_is_down_takes_no_longer_than_the_shutdown_timeout(
    tmp_path: Path,
) -> None:
    seen: list[int] = []
    registry = MessageRegistry()

    @registry
    async def on_placed(event: Placed) -> None:
        seen.append(event.amount)

    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        name = namespace()
        transport = RedisStreams(server.url, namespace=name, connect_timeout=1.0, write_timeout=1.0)
        async with BusTerminal(registry, transport=transport, shutdown_timeout=2.0) as terminal:
            for n in range(5):
                await terminal.bus.emit(Placed("before", n))
            await eventually(lambda: len(seen) == 5, "the first events handled")
            await anyio.to_thread.run_sync(server.stop)
            terminal.bus.emit_nowait(Placed("queued while down", 99))
            leaving = time.monotonic()
        left = time.monotonic() - leaving
        # the emit_nowait entry never reached Redis: counted as lost (and logged), not kept
        assert transport.statistics().lost_nowait == 1
        # the shutdown timeout, with generous slack for a loaded machine (no tight bound)
        assert left < 2.0 + 10.0, left
        # Redis back: a new terminal of the same handler handles nothing twice
        await anyio.to_thread.run_sync(server.start)
        again = RedisStreams(server.url, namespace=name, connect_timeout=2.0, write_timeout=2.0)
        async with BusTerminal(registry, transport=again) as terminal:
            await terminal.bus.emit(Placed("after", 100))
            await eventually(lambda: 100 in seen, "processing resumed")
        assert sorted(n for n in seen if n != 100) == list(range(5))
    finally:
        server.stop()


async def test_an_emit_nowait_entry_whose_write_is_under_way_when_the_terminal_stops_is_counted_lost(
    tmp_path: Path,
) -> None:
    # Redis frozen (SIGSTOP) holds the entry's write in flight through the flush; the write then
    # fails at the client's timeout. It used to be counted nowhere (the flush saw an empty queue).
    seen: list[int] = []
    registry = MessageRegistry()

    @registry
    async def on_placed(event: Placed) -> None:
        seen.append(event.amount)

    server = RedisServer(tmp_path / "redis")
    server.start()
    frozen = False
    try:
        transport = RedisStreams(server.url, namespace=namespace(), connect_timeout=1.0, write_timeout=1.0)
        async with BusTerminal(registry, transport=transport, shutdown_timeout=2.0) as terminal:
            await terminal.bus.emit(Placed("before", 1))
            await eventually(lambda: seen == [1], "the first event handled")
            os.kill(server.process.pid, signal.SIGSTOP)
            frozen = True
            terminal.bus.emit_nowait(Placed("in flight", 2))
            writer = transport._writer
            assert writer is not None
            await eventually(lambda: bool(writer.in_flight), "the writer waiting on the frozen server")
        assert transport.statistics().lost_nowait == 1
        assert seen == [1]
    finally:
        if frozen:
            os.kill(server.process.pid, signal.SIGCONT)
        server.stop()

"""Redis down when the terminal stops: the exit is bounded by the shutdown timeout, an
``emit_nowait`` entry that never reached Redis is counted as lost, and what was handled is not
handled again once Redis is back."""

from __future__ import annotations

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

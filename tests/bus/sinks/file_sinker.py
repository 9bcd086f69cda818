"""A process that sinks events into a SQLite or JSON Lines store as fast as it can, from several
tasks (single events and batches), printing each event's number once ``sink``/``sink_many``
returned for it (acknowledged), until it is killed: the kill -9 tests' victim.

    python -m tests.bus.sinks.file_sinker sqlite|jsonl PATH START [asyncio|trio]

It also emits each single event to a handler, so that a Ctrl-C finds messages queued.

Each event ``n`` is sunk with the message id ``row-<n>``, so a resend is recognisable.
"""

from __future__ import annotations

import os
import sys

import anyio

from bus import BusTerminal, MessageRegistry
from bus.sinks import JSONLinesSink, SQLiteSink
from tests.strategies import SampleRow

TASKS = 8


async def handle(row: SampleRow) -> None:
    await anyio.sleep(0.001)


async def main(kind: str, path: str, start: int) -> None:
    sink = SQLiteSink(path) if kind == "sqlite" else JSONLinesSink(path)
    registry = MessageRegistry()
    registry.register(handle)
    async with BusTerminal(registry, sinks=[sink], shutdown_timeout=1.0) as terminal:
        bus = terminal.bus

        async def single(first: int) -> None:
            n = first
            while True:
                await bus.sink(SampleRow(n, "row"), message_id=f"row-{n}")
                os.write(1, f"{n}\n".encode())
                await bus.emit(SampleRow(n, "row"))
                n += TASKS

        async def batches(first: int) -> None:
            # its own number range, far above the single callers'
            n = first
            while True:
                rows = [SampleRow(m, "batch") for m in range(n, n + 5)]
                await bus.sink_many(rows, message_ids=[f"row-{m}" for m in range(n, n + 5)])
                os.write(1, "".join(f"{m}\n" for m in range(n, n + 5)).encode())
                n += 5

        async with anyio.create_task_group() as tasks:
            for offset in range(TASKS - 1):
                tasks.start_soon(single, start + offset)
            tasks.start_soon(batches, start + 10_000_000)


if __name__ == "__main__":
    backend = sys.argv[4] if len(sys.argv) > 4 else "asyncio"
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), backend=backend)

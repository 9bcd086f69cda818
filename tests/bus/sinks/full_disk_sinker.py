"""A process whose disk "fills up" while it sinks: its file size limit (RLIMIT_FSIZE, SIGXFSZ
ignored, so writes past it fail with EFBIG, possibly half-way) is set just above the store's size,
then raised again after ``FULL_FOR`` seconds, as when space is freed. It prints each event's number
once ``sink`` returned for it, then ``done``.

    python -m tests.bus.sinks.full_disk_sinker sqlite|jsonl PATH [asyncio|trio]

A ``sink`` call that raised (the storage's error reaching a caller) fails the process.
"""

from __future__ import annotations

import os
import resource
import signal
import sys

import anyio

from bus import BusTerminal, MessageRegistry
from bus.sinks import JSONLinesSink, SQLiteSink
from tests.strategies import SampleRow

FULL_FOR = 0.6
HEADROOM = 20_000  # bytes the store may still grow by once "full"


def store_size(path: str) -> int:
    return sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))


async def main(kind: str, path: str) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    sink = SQLiteSink(path) if kind == "sqlite" else JSONLinesSink(path)
    async with BusTerminal(MessageRegistry(), sinks=[sink], shutdown_timeout=10.0) as terminal:
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        # the WAL grows from the start of the file: the limit is on any one file's size
        resource.setrlimit(resource.RLIMIT_FSIZE, (store_size(path) + HEADROOM, hard))

        async def sinker(first: int) -> None:
            n = first
            while True:
                await terminal.bus.sink(SampleRow(n, "x" * 200), message_id=f"row-{n}")
                os.write(1, f"{n}\n".encode())
                n += 4

        async with anyio.create_task_group() as tasks:
            for first in range(4):
                tasks.start_soon(sinker, first)
            await anyio.sleep(FULL_FOR)
            resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space freed
            await anyio.sleep(0.3)
            tasks.cancel_scope.cancel()
    os.write(1, b"done\n")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], backend=sys.argv[3] if len(sys.argv) > 3 else "asyncio")

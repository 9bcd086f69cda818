"""A process that sinks events into PostgreSQL as fast as it can, printing each event's number once
``sink`` returned for it (acknowledged), until it is killed: the kill -9 test's victim.

    python -m tests.bus.sinks.postgres_sinker DSN TABLE
"""

from __future__ import annotations

import os
import sys

import anyio

from bus import BusTerminal, MessageRegistry
from bus.sinks import PostgresSink
from tests.strategies import SampleRow


async def main(dsn: str, table: str) -> None:
    async with BusTerminal(MessageRegistry(), sinks=[PostgresSink(dsn, table=table)]) as terminal:

        async def sinker(start: int) -> None:
            n = start
            while True:
                await terminal.bus.sink(SampleRow(n, "row"))
                os.write(1, f"{n}\n".encode())
                n += 10

        async with anyio.create_task_group() as tasks:
            for start in range(10):
                tasks.start_soon(sinker, start)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], backend="asyncio")

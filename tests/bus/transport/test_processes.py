"""RedisStreams across real OS processes: a SIGKILLed worker's pending entries are taken over
(XAUTOCLAIM), trimming never drops what a group has not acknowledged, a Redis restart (AOF) loses
nothing acknowledged."""

from __future__ import annotations

import collections
import logging
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import redis.asyncio as redis

from bus import BusTerminal, MessageContext, MessageRegistry
from bus.transport import RedisStreams, TransportError
from tests.bus.transport.worker import Job
from tests.servers import RedisServer, running_redis

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]
#: the consumer group of the worker's handler (worker.py run as __main__)
GROUP = "__main__.build.<locals>.handle_job"
WAIT = 40.0


class Worker:
    """One worker process (tests/bus/transport/worker.py) and the lines it wrote."""

    def __init__(self, url: str, namespace: str, name: str, out: Path, *extra: str) -> None:
        self.name = name
        self.out = out
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.bus.transport.worker",
                url,
                namespace,
                name,
                str(out),
                *extra,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def wait_ready(self) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != b"ready":
            assert self.process.stderr is not None
            self.process.kill()
            raise AssertionError(
                f"worker {self.name} did not start: {line!r} {self.process.stderr.read()!r}"
            )

    def handled(self) -> list[tuple[str, int, int]]:
        if not self.out.exists():
            return []
        rows = []
        for line in self.out.read_text().splitlines():
            consumer, n, attempt = line.split()
            rows.append((consumer, int(n), int(attempt)))
        return rows

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


async def wait_for(check: collections.abc.Callable[[], bool], what: str) -> None:
    with anyio.move_on_after(WAIT):
        while True:
            if check():
                return
            await anyio.sleep(0.05)
    raise AssertionError(f"after {WAIT} s: {what}")


async def test_a_killed_workers_pending_entries_are_taken_over_and_every_event_is_handled(
    redis_server: RedisServer, tmp_path: Path, workers: list[Worker]
) -> None:
    namespace = f"kill-{secrets.token_hex(4)}"
    total = 600
    for name, delay in (("w1", "0.02"), ("w2", "0.004"), ("w3", "0.004")):
        # the victim is the slowest: it always holds a backlog it has not acknowledged
        workers.append(
            Worker(
                redis_server.url,
                namespace,
                name,
                tmp_path / f"{name}.log",
                "--delay",
                delay,
                "--claim-idle",
                "1.0",
                "--max-len",
                "100",
            )
        )
    for worker in workers:
        await anyio.to_thread.run_sync(worker.wait_ready)
    victim = workers[0]
    transport = RedisStreams(redis_server.url, namespace=namespace, max_len=100)
    client = redis.Redis.from_url(redis_server.url)

    async def victim_holds_entries() -> bool:
        pending = await client.xpending_range(
            f"{namespace}:events", GROUP, "-", "+", 1, consumername="w1"
        )
        return bool(pending) and len(victim.handled()) >= 5

    async def kill_the_victim_mid_stream() -> None:
        with anyio.fail_after(WAIT):
            while True:
                if await victim_holds_entries():
                    break
                await anyio.sleep(0.005)
        victim.process.send_signal(signal.SIGKILL)
        await anyio.to_thread.run_sync(victim.process.wait)

    try:
        async with (
            BusTerminal(MessageRegistry(), transport=transport) as producer,
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(kill_the_victim_mid_stream)
            for n in range(total):
                await producer.bus.emit(Job(n))
                if n % 20 == 19:
                    await anyio.sleep(0.01)  # a steady stream, while the victim is killed
    finally:
        await client.aclose()

    def everything_handled() -> bool:
        return {n for w in workers for _, n, _ in w.handled()} == set(range(total))

    await wait_for(everything_handled, "every event handled by some worker")
    for worker in workers[1:]:
        worker.stop()
    rows = [row for worker in workers for row in worker.handled()]
    by_event = collections.Counter(n for _, n, _ in rows)
    victims = {n for consumer, n, _ in rows if consumer == "w1"}
    duplicates = {n: count for n, count in by_event.items() if count > 1}
    # a duplicate is an entry the victim handled but had not acknowledged when it died
    assert set(duplicates) <= victims, duplicates
    assert all(count == 2 for count in duplicates.values())
    taken_over = [(consumer, n, attempt) for consumer, n, attempt in rows if attempt > 1]
    assert taken_over, "some of the victim's pending entries were claimed by a survivor"
    assert {consumer for consumer, _, _ in taken_over} <= {"w2", "w3"}
    # the victim held at most its prefetch (2 x batch of 10) unacknowledged
    assert len(duplicates) <= 20 + 10
    client = redis.Redis.from_url(redis_server.url)
    try:
        (group,) = await client.xinfo_groups(f"{namespace}:events")
        assert group["name"].decode() == GROUP
        assert group["pending"] == 0
        # trimmed towards max_len while never dropping what was pending
        assert await client.xlen(f"{namespace}:events") <= total
    finally:
        await client.aclose()
    logging.getLogger(__name__).info(
        "kill test: %d handled, %d duplicates, %d taken over",
        len(rows),
        len(duplicates),
        len(taken_over),
    )


async def test_trimming_keeps_every_entry_a_group_has_not_acknowledged(
    redis_server: RedisServer,
) -> None:
    namespace = f"trim-{secrets.token_hex(4)}"
    seen: list[int] = []
    registry = MessageRegistry()

    @registry
    async def slow_reader(job: Job) -> None:
        seen.append(job.n)

    # the group exists, then its only process goes away: everything after stays unacknowledged
    async with BusTerminal(registry, transport=RedisStreams(redis_server.url, namespace=namespace)):
        pass
    total = 500
    transport = RedisStreams(redis_server.url, namespace=namespace, max_len=20)
    async with BusTerminal(MessageRegistry(), transport=transport) as producer:
        for n in range(total):
            producer.bus.emit_nowait(Job(n))
        await producer.bus.emit(Job(total))
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert await client.xlen(transport.stream) == total + 1
        async with BusTerminal(
            registry, transport=RedisStreams(redis_server.url, namespace=namespace, max_len=20)
        ) as terminal:
            await wait_for(lambda: len(seen) == total + 1, "the backlog handled")
            assert seen == list(range(total + 1))
            # now acknowledged: the next writes trim down to about max_len
            for n in range(60):
                await terminal.bus.emit(Job(-n))
            await wait_for(lambda: len(seen) == total + 61, "the new ones handled")
            for n in range(40):
                await terminal.bus.emit(Job(-100 - n))
            length = await client.xlen(transport.stream)
        assert length < 120
    finally:
        await client.aclose()


async def test_a_redis_restart_loses_nothing_acknowledged(tmp_path: Path) -> None:
    namespace = f"restart-{secrets.token_hex(4)}"
    seen: collections.Counter[int] = collections.Counter()
    registry = MessageRegistry()

    @registry
    async def counting(job: Job, ctx: MessageContext) -> None:
        seen[job.n] += 1

    acknowledged: list[int] = []
    with running_redis(tmp_path / "redis") as server:
        transport = RedisStreams(
            server.url,
            namespace=namespace,
            connect_timeout=2.0,
            write_timeout=2.0,
            consumer="restart-test",
        )
        async with BusTerminal(registry, transport=transport) as terminal:
            for n in range(300):
                if n == 150:
                    await anyio.to_thread.run_sync(server.restart)
                for _ in range(200):  # the producer retries what Redis did not take
                    try:
                        await terminal.bus.emit(Job(n))
                    except TransportError:
                        await anyio.sleep(0.05)
                        continue
                    acknowledged.append(n)
                    break
            await wait_for(
                lambda: set(acknowledged) <= set(seen), "every acknowledged emit handled"
            )
        assert acknowledged == list(range(300))
        client = redis.Redis.from_url(server.url)
        try:
            groups = await client.xinfo_groups(transport.stream)
        finally:
            await client.aclose()
    assert groups[0]["pending"] == 0


async def test_worker_processes_lose_nothing_acknowledged_across_a_redis_restart(
    tmp_path: Path, workers: list[Worker]
) -> None:
    namespace = f"restart-{secrets.token_hex(4)}"
    total = 300
    with running_redis(tmp_path / "redis") as server:
        for name in ("r1", "r2"):
            workers.append(
                Worker(server.url, namespace, name, tmp_path / f"{name}.log", "--claim-idle", "2.0")
            )
        for worker in workers:
            await anyio.to_thread.run_sync(worker.wait_ready)
        acknowledged: list[int] = []
        transport = RedisStreams(
            server.url, namespace=namespace, connect_timeout=2.0, write_timeout=2.0
        )
        async with BusTerminal(MessageRegistry(), transport=transport) as producer:
            for n in range(total):
                if n == total // 2:
                    await anyio.to_thread.run_sync(server.restart)  # AOF, fsync always
                for _ in range(200):  # the producer retries what Redis did not take
                    try:
                        await producer.bus.emit(Job(n))
                    except TransportError:
                        await anyio.sleep(0.05)
                        continue
                    acknowledged.append(n)
                    break

        def all_handled() -> bool:
            return {n for w in workers for _, n, _ in w.handled()} >= set(acknowledged)

        await wait_for(all_handled, "every acknowledged emit handled by a worker")
        for worker in workers:
            worker.stop()
        assert acknowledged == list(range(total))
        assert all(worker.process.returncode == 0 for worker in workers)

"""Supervision cost: restarts per second of a crashing actor / handler; start and stop of 10,000 actors.

    python benchmarks/bench_supervision.py     # 20,000 crashes, 10,000 actors per run, 5 rounds
    BENCH_CRASHES=5000 BENCH_ACTORS=2000 python benchmarks/bench_supervision.py

- ``actor restarts``: an actor under ``open_supervisor(intensity=None)`` raises on every message
  (no redelivery, no backoff; the crashing message is dead-lettered). ``tell_nowait`` N messages and
  time until the N-th restarted incarnation is up: restarts/s.
- ``handler restarts``: a bus handler that raises on every event, ``retries=0``,
  ``max_restarts=10**9``; ``emit_nowait`` N events and ``await terminal.drain()`` (each delivery
  crashes the handler's actor once, becomes a ``DeadLetter`` event and the actor is restarted).
- ``start 10,000 actors`` / ``stop 10,000 actors``: one root supervisor with 10,000 static
  ``ChildSpec`` children (unbounded mailboxes); entering ``open_supervisor`` (every child started, in
  order) and leaving it (every child stopped, in reverse order), as actors/s.

There is no baseline here (Pykka has no supervisor); the figures are absolute.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from _harness import env_int, repeats, report, run_cases

from actors import Actor
from bus import BusTerminal, Event, MessageRegistry
from supervisor import ChildSpec, open_supervisor

CRASHES = env_int("BENCH_CRASHES", 20_000)
ACTORS = env_int("BENCH_ACTORS", 10_000)


class Boom(Event):
    n: int


class Crasher(Actor):
    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    async def on_start(self) -> None:
        state = self.state
        state["starts"] += 1
        if state["starts"] == state["target"]:
            state["done"].set()

    async def receive(self, message: Any) -> None:
        raise RuntimeError("boom")


class Idle(Actor):
    async def receive(self, message: Any) -> None:
        pass


def actor_restarts(n: int = CRASHES) -> tuple[int, float]:
    async def main() -> float:
        state: dict[str, Any] = {"starts": 0, "target": n + 1, "done": anyio.Event()}
        spec = ChildSpec("crasher", lambda: Crasher(state))
        async with open_supervisor([spec], intensity=None) as sup:
            ref = sup.ref("crasher")
            start = time.perf_counter()
            for i in range(n):
                ref.tell_nowait(i)
            await state["done"].wait()
            return time.perf_counter() - start

    return n, anyio.run(main)


def handler_restarts(n: int = CRASHES) -> tuple[int, float]:
    async def main() -> float:
        registry = MessageRegistry()

        async def explode(event: Boom) -> None:
            raise RuntimeError("boom")

        registry.register(explode, retries=0, max_restarts=10**9, mailbox_capacity=None)
        async with BusTerminal(registry) as terminal:
            emit = terminal.bus.emit_nowait
            start = time.perf_counter()
            for i in range(n):
                emit(Boom(i))
            await terminal.drain()
            elapsed = time.perf_counter() - start
            restarts = terminal.handler_ref(explode.__qualname__).statistics().incarnation - 1
            assert restarts >= n - 1, f"only {restarts} restarts for {n} crashes"
            return elapsed

    return n, anyio.run(main)


def start_stop(n: int = ACTORS) -> tuple[float, float]:
    """Seconds to start and to stop ``n`` actors under one root supervisor."""

    async def main() -> tuple[float, float]:
        specs = [ChildSpec(f"idle-{i}", Idle) for i in range(n)]
        t0 = time.perf_counter()
        async with open_supervisor(specs, intensity=None):
            t1 = time.perf_counter()
        return t1 - t0, time.perf_counter() - t1

    return anyio.run(main)


def main() -> None:
    rounds = repeats()
    print(f"supervision: {CRASHES:,} crashes, {ACTORS:,} actors, {rounds} rounds")
    lifecycle: dict[str, list[float]] = {
        f"start {ACTORS:,} actors": [],
        f"stop {ACTORS:,} actors": [],
    }

    def cycle() -> tuple[int, float]:
        started, stopped = start_stop()
        lifecycle[f"start {ACTORS:,} actors"].append(ACTORS / started)
        lifecycle[f"stop {ACTORS:,} actors"].append(ACTORS / stopped)
        return ACTORS, started + stopped

    rates = run_cases(
        [
            ("actor restarts", actor_restarts),
            ("handler restarts", handler_restarts),
            (f"start+stop {ACTORS:,} actors", cycle),
        ],
        rounds,
        label="supervision",
    )
    restarts = {k: v for k, v in rates.items() if "restarts" in k}
    seconds = {
        f"{name} (seconds, lower is better)": [ACTORS / r for r in values]
        for name, values in lifecycle.items()
    }
    report(
        "bench_supervision",
        [
            (f"restarts of a crashing child, {CRASHES:,} crashes", restarts, [], "restarts/s"),
            (f"start and stop {ACTORS:,} actors under one supervisor", lifecycle, [], "actors/s"),
            (f"start and stop {ACTORS:,} actors", seconds, [], "seconds"),
        ],
        extra={"crashes": CRASHES, "actors": ACTORS},
    )


if __name__ == "__main__":
    main()

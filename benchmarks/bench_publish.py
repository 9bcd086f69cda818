"""publish (awaited acknowledgement) to one and to five handlers vs a raw round trip and Pykka's ask.

    python benchmarks/bench_publish.py         # N=100,000 calls per run, 5 rounds
    BENCH_N=20000 BENCH_REPEATS=3 python benchmarks/bench_publish.py

Cases (interleaved):

- ``raw future round trip``: a server task waits on an ``asyncio.Queue``; the client makes a
  ``loop.create_future()`` per request, queues ``(request, future)`` and awaits the future, which the
  server completes. The floor of any task-to-task request/reply on asyncio.
- ``pykka ask``: ``ref.ask(message)`` (blocking) from the main thread to a ``ThreadingActor``
  (``BENCH_PYKKA_N`` calls, default N/5; rates are per call either way).
- ``publish x1``: ``await bus.publish(event)`` to one subscribed handler, N times.
- ``publish x5``: the same with five subscribed handlers (each call waits for all five in turn);
  calls/s, and the deliveries/s table below.
- ``publish x1 (trio)``: an extra row on the trio backend.
- ``... (uvloop)``: the raw round trip and ``publish x1`` on asyncio with uvloop's event loop
  (extra rows, when the ``uvloop`` extra is installed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import anyio
import pykka
from _harness import env_int, repeats, report, run_cases

from bus import BusTerminal, Event, MessageRegistry

N = env_int("BENCH_N", 100_000)
PYKKA_N = env_int("BENCH_PYKKA_N", max(1, N // 5))

try:
    import uvloop
except ImportError:
    uvloop = None


class Ping(Event):
    n: int


def raw_round_trip(n: int = N, backend: str = "asyncio") -> tuple[int, float]:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[int, asyncio.Future[int]] | None] = asyncio.Queue()

        async def server() -> None:
            get = queue.get
            while (item := await get()) is not None:
                request, future = item
                future.set_result(request)

        task = asyncio.create_task(server())
        start = time.perf_counter()
        put = queue.put_nowait
        new = loop.create_future
        for i in range(n):
            future = new()
            put((i, future))
            await future
        elapsed = time.perf_counter() - start
        put(None)
        await task
        return elapsed

    if backend == "uvloop":
        assert uvloop is not None
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return n, runner.run(main())
    return n, asyncio.run(main())


class Echo(pykka.ThreadingActor):
    def on_receive(self, message: object) -> object:
        return message


def pykka_ask(n: int = PYKKA_N) -> tuple[int, float]:
    ref = Echo.start()
    try:
        ask = ref.ask
        start = time.perf_counter()
        for i in range(n):
            ask(i)
        return n, time.perf_counter() - start
    finally:
        ref.stop()


def _registry(handlers: int) -> MessageRegistry:
    registry = MessageRegistry()
    for i in range(handlers):

        async def handler(event: Ping) -> None:
            pass

        handler.__qualname__ = handler.__name__ = f"publish_handler_{i}"
        registry.register(handler)
    return registry


def ours_publish(n: int = N, handlers: int = 1, backend: str = "asyncio") -> tuple[int, float]:
    async def main() -> float:
        async with BusTerminal(_registry(handlers)) as terminal:
            publish = terminal.bus.publish
            event = Ping(1)
            start = time.perf_counter()
            for _ in range(n):
                await publish(event)
            return time.perf_counter() - start

    if backend == "uvloop":
        return n, anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})
    return n, anyio.run(main, backend=backend)


def main() -> None:
    rounds = repeats()
    print(f"publish: N={N:,} (pykka N={PYKKA_N:,}), {rounds} rounds, asyncio backend unless noted")
    cases: list[tuple[str, Callable[[], tuple[int, float]]]] = [
        ("raw future round trip", raw_round_trip),
        ("publish x1", ours_publish),
        ("pykka ask", pykka_ask),
        ("publish x5", lambda: ours_publish(max(1, N // 5), handlers=5)),
        ("publish x1 (trio)", lambda: ours_publish(backend="trio")),
    ]
    if uvloop is not None:
        cases += [
            ("raw future round trip (uvloop)", lambda: raw_round_trip(backend="uvloop")),
            ("publish x1 (uvloop)", lambda: ours_publish(backend="uvloop")),
        ]
    rates = run_cases(cases, rounds, label="publish")
    deliveries = {"publish x5 (deliveries/s)": [r * 5 for r in rates["publish x5"]]}
    report(
        "bench_publish",
        [
            (
                f"publish, awaited, N={N:,}",
                rates,
                ["raw future round trip", "pykka ask"]
                + (["raw future round trip (uvloop)"] if uvloop is not None else []),
                "calls/s",
            ),
            ("publish to 5 handlers", deliveries, [], "handler deliveries/s"),
        ],
        extra={"n": N, "pykka_n": PYKKA_N, "uvloop": uvloop is not None},
    )


if __name__ == "__main__":
    main()

"""emit to one handler (and fan-out to 10) vs the in-process limits and Pykka's tell.

    python benchmarks/bench_emit.py            # N=500,000 events per run, 5 rounds
    BENCH_N=200000 BENCH_REPEATS=3 python benchmarks/bench_emit.py

Cases (interleaved, one round = each case once):

- ``anyio stream``: ``create_memory_object_stream(inf)``; the producer ``send_nowait``s N items, a
  consumer task drains with ``receive_nowait`` and awaits ``receive()`` only when empty. The
  in-process limit a mailbox is measured against.
- ``asyncio.Queue``: ``put_nowait`` N items, a consumer task ``await get()``s them.
- ``pykka tell``: a ``ThreadingActor``; time from the first ``tell`` until the actor processed all
  (``BENCH_PYKKA_N``, default N/5, since it is ~10x slower; rates are per message either way).
- ``emit_nowait``: ``bus.emit_nowait(event)`` N times to a handler registered with
  ``mailbox_capacity=None`` (unbounded), then ``await terminal.drain()``.
- ``await emit``: ``await bus.emit(event)`` N times to a handler with the default policy (mailbox of
  10,000 under backpressure: the emitter waits for room), then ``await terminal.drain()``.
- ``emit_nowait (trio)``: the first of ours on the trio backend (an extra row).
- ``emit_many`` / ``emit_many_nowait``: the same N events in batches of ``BENCH_BATCH`` (1,000) per
  call (one list, built before the clock starts), to a handler with an unbounded mailbox.
- ``... (uvloop)``: the same on asyncio with uvloop's event loop (extra rows; only when the
  ``uvloop`` extra is installed).

Scaling: emit fan-out to 1, 10, 100 and 10,000 handlers of one event type (``BENCH_SCALE_N``
deliveries in all, 200,000 by default), beside as many anyio streams with one consumer task each.

Fan-out: one event type, 10 handlers (unbounded mailboxes), N/10 events; deliveries/s and events/s,
against 10 anyio streams with one consumer task each.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import pykka
from _harness import env_int, repeats, report, run_cases

from bus import BusTerminal, Event, MessageRegistry

N = env_int("BENCH_N", 500_000)
PYKKA_N = env_int("BENCH_PYKKA_N", max(1, N // 5))
FANOUT = 10
BATCH = env_int("BENCH_BATCH", 1_000)
SCALE_N = env_int("BENCH_SCALE_N", 200_000)
SCALES = (1, 10, 100, 10_000)

try:
    import uvloop  # noqa: F401
except ImportError:
    HAVE_UVLOOP = False
else:
    HAVE_UVLOOP = True


class Small(Event):
    n: int


# -- baselines ------------------------------------------------------------------------------------


def anyio_stream(n: int = N, backend: str = "asyncio") -> tuple[int, float]:
    async def main() -> float:
        send, receive = anyio.create_memory_object_stream[int](math.inf)
        done = anyio.Event()

        async def consumer() -> None:
            count = 0
            while True:
                try:
                    receive.receive_nowait()
                except anyio.WouldBlock:
                    await receive.receive()
                count += 1
                if count == n:
                    done.set()
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            await anyio.lowlevel.checkpoint()
            start = time.perf_counter()
            for i in range(n):
                send.send_nowait(i)
            await done.wait()
            return time.perf_counter() - start

    return n, _run(main, backend)


def asyncio_queue(n: int = N) -> tuple[int, float]:
    async def main() -> float:
        queue: asyncio.Queue[int] = asyncio.Queue()
        done = asyncio.get_running_loop().create_future()

        async def consumer() -> None:
            get = queue.get
            for _ in range(n):
                await get()
            done.set_result(None)

        task = asyncio.create_task(consumer())
        await asyncio.sleep(0)
        start = time.perf_counter()
        put = queue.put_nowait
        for i in range(n):
            put(i)
        await done
        elapsed = time.perf_counter() - start
        await task
        return elapsed

    return n, asyncio.run(main())


class Counter(pykka.ThreadingActor):
    def __init__(self, n: int, done: threading.Event) -> None:
        super().__init__()
        self.n = n
        self.count = 0
        self.done = done

    def on_receive(self, message: object) -> None:
        self.count += 1
        if self.count == self.n:
            self.done.set()


def pykka_tell(n: int = PYKKA_N) -> tuple[int, float]:
    done = threading.Event()
    ref = Counter.start(n, done)
    try:
        tell = ref.tell
        start = time.perf_counter()
        for i in range(n):
            tell(i)
        done.wait()
        return n, time.perf_counter() - start
    finally:
        ref.stop()


# -- ours -----------------------------------------------------------------------------------------


def _registry(handlers: int, **policy: object) -> MessageRegistry:
    registry = MessageRegistry()
    for i in range(handlers):

        async def handler(event: Small) -> None:
            pass

        handler.__qualname__ = handler.__name__ = f"emit_handler_{i}"
        registry.register(handler, **policy)  # type: ignore[call-overload]
    return registry


def _run(main: Callable[[], Awaitable[float]], backend: str) -> float:
    if backend == "uvloop":
        return anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})
    return anyio.run(main, backend=backend)


def ours_emit_nowait(n: int = N, backend: str = "asyncio", handlers: int = 1) -> tuple[int, float]:
    events = max(1, n // handlers)

    async def main() -> float:
        async with BusTerminal(_registry(handlers, mailbox_capacity=None)) as terminal:
            bus = terminal.bus
            emit = bus.emit_nowait
            event = Small(1)
            start = time.perf_counter()
            for _ in range(events):
                emit(event)
            await terminal.drain()
            return time.perf_counter() - start

    return events * handlers, _run(main, backend)


def ours_emit_many(n: int = N, backend: str = "asyncio", *, nowait: bool = False) -> tuple[int, float]:
    calls = max(1, n // BATCH)

    async def main() -> float:
        async with BusTerminal(_registry(1, mailbox_capacity=None)) as terminal:
            bus = terminal.bus
            batch = [Small(i) for i in range(BATCH)]
            start = time.perf_counter()
            if nowait:
                emit_many_nowait = bus.emit_many_nowait
                for _ in range(calls):
                    emit_many_nowait(batch)
            else:
                emit_many = bus.emit_many
                for _ in range(calls):
                    await emit_many(batch)
            await terminal.drain()
            return time.perf_counter() - start

    return calls * BATCH, _run(main, backend)


def ours_emit_await(n: int = N, backend: str = "asyncio") -> tuple[int, float]:
    async def main() -> float:
        async with BusTerminal(_registry(1)) as terminal:
            emit = terminal.bus.emit
            event = Small(1)
            start = time.perf_counter()
            for _ in range(n):
                await emit(event)
            await terminal.drain()
            return time.perf_counter() - start

    return n, _run(main, backend)


def anyio_fanout(n: int = N, streams: int = FANOUT) -> tuple[int, float]:
    """``n // streams`` items sent to each of ``streams`` streams, one consumer task per stream."""
    events = max(1, n // streams)

    async def main() -> float:
        pairs = [anyio.create_memory_object_stream[int](math.inf) for _ in range(streams)]
        remaining = [streams]
        done = anyio.Event()

        async def consumer(receive: anyio.abc.ObjectReceiveStream[int]) -> None:
            for _ in range(events):
                try:
                    receive.receive_nowait()  # type: ignore[attr-defined]
                except anyio.WouldBlock:
                    await receive.receive()
            remaining[0] -= 1
            if not remaining[0]:
                done.set()

        async with anyio.create_task_group() as tg:
            for _, receive in pairs:
                tg.start_soon(consumer, receive)
            await anyio.lowlevel.checkpoint()
            senders = [send.send_nowait for send, _ in pairs]
            start = time.perf_counter()
            for i in range(events):
                for send in senders:
                    send(i)
            await done.wait()
            return time.perf_counter() - start

    return events * streams, anyio.run(main)


def main() -> None:
    rounds = repeats()
    print(f"emit: N={N:,} (pykka N={PYKKA_N:,}), {rounds} rounds, asyncio backend unless noted")
    cases: list[tuple[str, Callable[[], tuple[int, float]]]] = [
        ("anyio stream", anyio_stream),
        ("emit_nowait", ours_emit_nowait),
        ("asyncio.Queue", asyncio_queue),
        ("await emit", ours_emit_await),
        ("pykka tell", pykka_tell),
        (f"emit_many ({BATCH:,}/call)", ours_emit_many),
        (f"emit_many_nowait ({BATCH:,}/call)", lambda: ours_emit_many(nowait=True)),
        ("emit_nowait (trio)", lambda: ours_emit_nowait(backend="trio")),
        ("anyio stream (trio)", lambda: anyio_stream(backend="trio")),
        ("emit_many (trio)", lambda: ours_emit_many(backend="trio")),
    ]
    if HAVE_UVLOOP:
        cases += [
            ("anyio stream (uvloop)", lambda: anyio_stream(backend="uvloop")),
            ("emit_nowait (uvloop)", lambda: ours_emit_nowait(backend="uvloop")),
            ("await emit (uvloop)", lambda: ours_emit_await(backend="uvloop")),
            ("emit_many (uvloop)", lambda: ours_emit_many(backend="uvloop")),
        ]
    single = run_cases(cases, rounds, label="one handler")
    fanout = run_cases(
        [
            ("10 anyio streams", anyio_fanout),
            ("emit_nowait x10 handlers", lambda: ours_emit_nowait(handlers=FANOUT)),
        ],
        rounds,
        label="fan-out",
    )
    events = {
        f"{name} (events/s)": [rate / FANOUT for rate in rates] for name, rates in fanout.items()
    }
    scale_cases: list[tuple[str, Callable[[], tuple[int, float]]]] = []
    for count in SCALES:
        scale_cases.append(
            (f"{count:,} anyio streams", lambda count=count: anyio_fanout(SCALE_N, count))  # type: ignore[misc]
        )
        scale_cases.append(
            (
                f"emit_nowait x{count:,} handlers",
                lambda count=count: ours_emit_nowait(SCALE_N, handlers=count),  # type: ignore[misc]
            )
        )
    scaling = run_cases(scale_cases, rounds, label="scaling")
    report(
        "bench_emit",
        [
            (
                f"emit to one handler, N={N:,}",
                single,
                ["anyio stream", "pykka tell"],
                "messages/s",
            ),
            (
                f"emit fan-out to {FANOUT} handlers, {N // FANOUT:,} events",
                fanout,
                ["10 anyio streams"],
                "deliveries/s",
            ),
            (f"emit fan-out to {FANOUT} handlers", events, [], "events/s"),
            (
                f"emit fan-out scaling, {SCALE_N:,} deliveries per run",
                scaling,
                [f"{count:,} anyio streams" for count in SCALES],
                "deliveries/s",
            ),
        ],
        extra={"n": N, "pykka_n": PYKKA_N, "fanout": FANOUT, "batch": BATCH, "uvloop": HAVE_UVLOOP},
    )


if __name__ == "__main__":
    main()

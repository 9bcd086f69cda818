"""The actor layer alone (no bus): ``tell`` and ``ask`` on an ActorCell under ``open_supervisor``.

    python benchmarks/bench_actor.py           # N=1,000,000 tells / 100,000 asks per run, 5 rounds
    BENCH_N=200000 BENCH_ASK_N=20000 python benchmarks/bench_actor.py

tell (same baselines as bench_emit): ``ref.tell_nowait`` N times into an unbounded mailbox, then wait
until the actor processed all N (it completes a future at the N-th); ``await ref.tell`` likewise.
ask (same baselines as bench_publish): ``await ref.ask(i)`` N times, the actor returns the message.
wake (``BENCH_WAKE_N``, default 10,000): that many actors under one supervisor, idle from their start
(an actor with an empty mailbox holds no task), are each told one message; from the first ``tell_nowait``
until all of them processed it: each message costs one activation (a task spawned, the message taken,
the task parked). Baseline: as many bare ``start_soon`` tasks in one anyio task group, each doing the
same work (a call that counts down), from the first spawn until the last one ran.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from _harness import env_int, repeats, report, run_cases
from bench_emit import anyio_stream, asyncio_queue, pykka_tell
from bench_publish import pykka_ask, raw_round_trip

from actors import Actor, MailboxSpec
from supervisor import ChildSpec, open_supervisor

N = env_int("BENCH_N", 1_000_000)
ASK_N = env_int("BENCH_ASK_N", max(1, N // 10))
PYKKA_N = env_int("BENCH_PYKKA_N", max(1, N // 5))
PYKKA_ASK_N = max(1, ASK_N // 5)
WAKE_N = env_int("BENCH_WAKE_N", 10_000)


class Counter(Actor):
    def __init__(self, n: int, done: anyio.Event) -> None:
        self.n = n
        self.count = 0
        self.done = done

    async def receive(self, message: Any) -> None:
        self.count += 1
        if self.count == self.n:
            self.done.set()


class Countdown:
    def __init__(self, n: int) -> None:
        self.left = n
        self.done = anyio.Event()

    def count(self) -> None:
        self.left -= 1
        if not self.left:
            self.done.set()


class Waker(Actor):
    async def receive(self, message: Any) -> None:
        message.count()


def ours_wake(n: int = WAKE_N, backend: str = "asyncio") -> tuple[int, float]:
    async def main() -> float:
        countdown = Countdown(n)
        specs = [ChildSpec(f"w{i}", Waker) for i in range(n)]
        async with open_supervisor(specs, intensity=None) as sup:
            refs = [child.ref for child in sup.which_children() if child.ref is not None]
            start = time.perf_counter()
            for ref in refs:
                ref.tell_nowait(countdown)
            await countdown.done.wait()
            return time.perf_counter() - start

    return n, anyio.run(main, backend=backend)


def raw_spawn(n: int = WAKE_N, backend: str = "asyncio") -> tuple[int, float]:
    async def task(countdown: Countdown) -> None:
        countdown.count()

    async def main() -> float:
        countdown = Countdown(n)
        async with anyio.create_task_group() as tg:
            start = time.perf_counter()
            for _ in range(n):
                tg.start_soon(task, countdown)
            await countdown.done.wait()
            return time.perf_counter() - start

    return n, anyio.run(main, backend=backend)


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        return message


def ours_tell(n: int = N, *, awaited: bool = False, backend: str = "asyncio") -> tuple[int, float]:
    async def main() -> float:
        done = anyio.Event()
        spec = ChildSpec("counter", lambda: Counter(n, done), mailbox=MailboxSpec(None))
        async with open_supervisor([spec]) as sup:
            ref = sup.ref("counter")
            start = time.perf_counter()
            if awaited:
                tell = ref.tell
                for i in range(n):
                    await tell(i)
            else:
                tell_nowait = ref.tell_nowait
                for i in range(n):
                    tell_nowait(i)
            await done.wait()
            return time.perf_counter() - start

    return n, anyio.run(main, backend=backend)


def ours_ask(n: int = ASK_N, backend: str = "asyncio") -> tuple[int, float]:
    async def main() -> float:
        async with open_supervisor([ChildSpec("echo", Echo)]) as sup:
            ask = sup.ref("echo").ask
            start = time.perf_counter()
            for i in range(n):
                await ask(i)
            return time.perf_counter() - start

    return n, anyio.run(main, backend=backend)


def main() -> None:
    rounds = repeats()
    print(
        f"actor: tell N={N:,}, ask N={ASK_N:,} (pykka tell N={PYKKA_N:,}, ask N={PYKKA_ASK_N:,}), "
        f"{rounds} rounds"
    )
    tell = run_cases(
        [
            ("anyio stream", lambda: anyio_stream(N)),
            ("tell_nowait", ours_tell),
            ("asyncio.Queue", lambda: asyncio_queue(N)),
            ("await tell", lambda: ours_tell(awaited=True)),
            ("pykka tell", lambda: pykka_tell(PYKKA_N)),
            ("tell_nowait (trio)", lambda: ours_tell(backend="trio")),
        ],
        rounds,
        label="tell",
    )
    ask = run_cases(
        [
            ("raw future round trip", lambda: raw_round_trip(ASK_N)),
            ("ask", ours_ask),
            ("pykka ask", lambda: pykka_ask(PYKKA_ASK_N)),
            ("ask (trio)", lambda: ours_ask(backend="trio")),
        ],
        rounds,
        label="ask",
    )
    wake = run_cases(
        [
            ("anyio start_soon", raw_spawn),
            ("wake idle actors", ours_wake),
            ("anyio start_soon (trio)", lambda: raw_spawn(backend="trio")),
            ("wake idle actors (trio)", lambda: ours_wake(backend="trio")),
        ],
        rounds,
        label="wake",
    )
    report(
        "bench_actor",
        [
            (f"actor tell, N={N:,}", tell, ["anyio stream", "pykka tell"], "messages/s"),
            (f"actor ask, N={ASK_N:,}", ask, ["raw future round trip", "pykka ask"], "calls/s"),
            (f"wake idle actors, N={WAKE_N:,}", wake, ["anyio start_soon"], "activations/s"),
        ],
        extra={"n": N, "ask_n": ASK_N, "pykka_n": PYKKA_N, "pykka_ask_n": PYKKA_ASK_N, "wake_n": WAKE_N},
    )


if __name__ == "__main__":
    main()

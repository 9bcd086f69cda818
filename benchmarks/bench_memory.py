"""Idle actor memory: 100,000 idle actors under one supervisor, and 10,000 bus handler actors.

    python benchmarks/bench_memory.py          # 100,000 actors, 10,000 handlers, 1 round
    BENCH_ACTORS=20000 BENCH_HANDLERS=2000 BENCH_REPEATS=3 python benchmarks/bench_memory.py

"Idle" as DESIGN section 5 and issue 10 define it: every actor handled one message and then sat idle
for 3 s, past the supervisors' default linger (1 s), so that its task exited; the incarnation (the
``Actor`` instance, its state, the bus handler's dependencies) lives on. For the ``actors`` rows the
reading also waits until every actor reports ``statistics().idle`` (on a loaded machine retiring
100,000 tasks can outlast the 3 s; stderr says when) and then 0.5 s more, for the last tasks to finish
exiting (an actor is idle just before its task ends).

Each measurement runs in a fresh subprocess (so that one run's freed-but-kept arenas do not hide the
next one's growth), once with ``tracemalloc`` and once without it for RSS (tracemalloc's own traces
would inflate RSS):

- ``tracemalloc``: traced bytes once every actor is idle, minus traced bytes just before starting
  (the ``ChildSpec`` list, or the ``MessageRegistry`` with its parsed handlers, already exists then;
  it is reported on its own line), divided by the number of actors.
- ``RSS``: VmRSS from /proc/self/status, same before/after, divided by the number of actors. Coarser
  (pages, allocator arenas, and the peak of 100,000 tasks running at once, which the allocator keeps)
  but what the OS sees.

``actors``: ``open_supervisor`` with N static ``ChildSpec`` children (an ``Actor`` subclass with no
state, unbounded mailbox); each is told one message, and the reading is taken once all N processed
it and 3 s passed. ``handlers``: a ``MessageRegistry`` with N distinct handler functions (made by a
closure factory, distinct ``__qualname__``), each with its default policy, run by a ``BusTerminal``:
one supervised handler actor per function; one event is emitted to all of them, then the same wait.
The "just started" rows: the same actors right after the start, before any message (an actor with
an empty mailbox holds no task from its start on; before activation on demand each was parked in a
task of its own), for comparison.

The cyclic GC is disabled during the start (``gc.collect()`` runs before each reading), because
rescanning a heap of 100,000 growing actors makes the start take minutes; it does not change what is
measured. 1 round by default (the figures move by under 1% between runs: BENCH_REPEATS=3 for more).

A last table repeats the ``handlers`` tracemalloc reading for 1, 10, 100 and 10,000 handlers (one
round each): with few handlers the terminal's own tree dominates the per-handler figure.

Scaling (``actors``, tracemalloc, asyncio): the same measurement with 1, 10, 100, 10,000 actors
(``BENCH_SCALE``, comma-separated) beside the N-actor row, and the N-actor row on trio. With few actors
the supervisor's own objects (its task group, linger sweep, tables) are shared by few; with many, the
tables of tasks that ran at the wake-up peak (asyncio's and anyio's task registries, which keep their
size) are shared by many.

Target (issue 10, DESIGN section 5): at most 512 bytes per idle actor (tracemalloc).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import anyio
from _harness import env_int, repeats, report, rss_bytes

from actors import Actor
from bus import BusTerminal, Event, MessageRegistry
from supervisor import ChildSpec, open_supervisor

ACTORS = env_int("BENCH_ACTORS", 100_000)
SCALE = tuple(int(n) for n in os.environ.get("BENCH_SCALE", "1,10,100,10000").split(",") if n.strip())
HANDLERS = env_int("BENCH_HANDLERS", 10_000)
HANDLER_SCALE = (1, 10, 100, 10_000)
TARGET = 512
#: how long the actors sit idle before the reading: past the default linger (1 s) and its sweep
IDLE_SECONDS = 3.0
#: after the last actor went idle, for its task to finish exiting
SETTLE_SECONDS = 0.5


class Idle(Actor):
    async def receive(self, message: Any) -> None:
        if message is not None:
            message.count()


class Countdown:
    """Counts the messages processed and sets ``done`` at the N-th."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.done = anyio.Event()

    def count(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.set()


class Tick(Event):
    n: int


def _handler(i: int, countdown: list[Countdown]) -> Any:
    async def handler(event: Tick) -> None:
        countdown[0].count()

    handler.__qualname__ = handler.__name__ = f"idle_handler_{i}"
    return handler


def _measure(traced: bool) -> int:
    gc.collect()
    if traced:
        return tracemalloc.get_traced_memory()[0]
    return rss_bytes()


def measure(kind: str, traced: bool, count: int = 0, backend: str = "asyncio") -> dict[str, float]:
    """One measurement in this process: bytes per actor (and per registration, for handlers)."""
    if traced:
        tracemalloc.start()
    # the cyclic GC would rescan the growing heap over and over while 100,000 actors start (minutes);
    # it is off during the start and run explicitly before each reading, so nothing is left uncounted
    gc.disable()

    async def main() -> dict[str, float]:
        if kind == "actors":
            n = count or ACTORS
            setup_before = _measure(traced)
            specs = [ChildSpec(f"idle-{i}", Idle) for i in range(n)]
            countdown = Countdown(n)
            before = _measure(traced)
            async with open_supervisor(specs, intensity=None) as sup:
                parked = _measure(traced)
                for child in sup.which_children():
                    assert child.ref is not None
                    child.ref.tell_nowait(countdown)
                await countdown.done.wait()
                await anyio.sleep(IDLE_SECONDS)
                # on a loaded machine retiring 100,000 tasks can outlast the 3 s: the reading is of
                # idle actors, so wait (and say so) until the last one gave up its task
                waited = 0.0
                refs = [child.ref for child in sup.which_children() if child.ref is not None]
                while not all(ref.statistics().idle for ref in refs):
                    await anyio.sleep(0.1)
                    waited += 0.1
                del refs
                if waited:
                    print(f"waited {waited:.1f} s more for every actor to be idle", file=sys.stderr)
                # an actor is idle just before its task exits: let the last tasks (and the task group
                # of the activations, which closes with them) finish exiting
                await anyio.sleep(SETTLE_SECONDS)
                after = _measure(traced)
                assert len(sup.which_children()) == n
        else:
            n = count or HANDLERS
            setup_before = _measure(traced)
            counter = [Countdown(n)]
            registry = MessageRegistry()
            for i in range(n):
                registry.register(_handler(i, counter))
            before = _measure(traced)
            async with BusTerminal(registry) as terminal:
                parked = _measure(traced)
                await terminal.bus.emit(Tick(1))
                await counter[0].done.wait()
                await anyio.sleep(IDLE_SECONDS)
                after = _measure(traced)
                handlers = next(c for c in terminal.snapshot().children if c.id == "handlers")
                assert len(handlers.children) == n
        return {
            "per_actor": (after - before) / n,
            "parked_per_actor": (parked - before) / n,
            "setup_per_actor": (before - setup_before) / n,
        }

    return anyio.run(main, backend=backend)


def _subprocess(kind: str, traced: bool, count: int = 0, backend: str = "asyncio") -> dict[str, float]:
    mode = "traced" if traced else "rss"
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--one", kind, mode, str(count), backend],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--one":
        print(json.dumps(measure(sys.argv[2], sys.argv[3] == "traced", int(sys.argv[4]), sys.argv[5])))
        return
    rounds = repeats(1)
    print(f"memory: {ACTORS:,} idle actors, {HANDLERS:,} idle handler actors, {rounds} rounds")
    per_actor: dict[str, list[float]] = {}
    parked: dict[str, list[float]] = {}
    setup: dict[str, list[float]] = {}
    labels = {
        ("actors", True): f"{ACTORS:,} actors, tracemalloc",
        ("actors", False): f"{ACTORS:,} actors, RSS",
        ("handlers", True): f"{HANDLERS:,} bus handlers, tracemalloc",
        ("handlers", False): f"{HANDLERS:,} bus handlers, RSS",
    }
    setup_labels = {
        ("actors", True): "ChildSpec (before start), tracemalloc",
        ("handlers", True): "registered handler (before start), tracemalloc",
    }
    for r in range(rounds):
        for key, label in labels.items():
            result = _subprocess(*key)
            per_actor.setdefault(label, []).append(result["per_actor"])
            parked.setdefault(label, []).append(result["parked_per_actor"])
            if key in setup_labels:
                setup.setdefault(setup_labels[key], []).append(result["setup_per_actor"])
        print(f"  memory round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    # the actor row's scaling: fewer actors (asyncio), and the N-actor row on trio
    scaling: dict[str, list[float]] = {}
    for r in range(rounds):
        for n in SCALE:
            result = _subprocess("actors", True, n)
            scaling.setdefault(f"{n:,} actors, tracemalloc", []).append(result["per_actor"])
        scaling.setdefault(f"{ACTORS:,} actors, tracemalloc", []).extend(
            per_actor[labels[("actors", True)]][r : r + 1]
        )
        result = _subprocess("actors", True, ACTORS, "trio")
        scaling.setdefault(f"{ACTORS:,} actors, tracemalloc (trio)", []).append(result["per_actor"])
        print(f"  scaling round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    # the bus-handler reading for 1, 10, 100 and 10,000 handlers (what the terminal costs whatever
    # the number of handlers shows up in the small counts)
    handler_scaling: dict[str, list[float]] = {}
    for count in HANDLER_SCALE:
        result = _subprocess("handlers", True, count)
        handler_scaling[f"{count:,} bus handlers, tracemalloc"] = [result["per_actor"]]
        print(f"  scaling {count:,} handlers done", file=sys.stderr, flush=True)
    medians = {k: sorted(v)[len(v) // 2] for k, v in per_actor.items()}
    verdicts = {k: ("pass" if m <= TARGET else "miss") for k, m in medians.items()}
    report(
        "bench_memory",
        [
            (
                f"idle actor memory: handled 1 message, then idle {IDLE_SECONDS:g} s (minus before start)",
                per_actor,
                [],
                "bytes/actor",
            ),
            ("just started, no message yet (minus before start)", parked, [], "bytes/actor"),
            ("set-up memory, not counted above", setup, [], "bytes/item"),
            ("idle actor memory by number of actors (as the first table)", scaling, [], "bytes/actor"),
            ("idle bus handlers by number (1 round each)", handler_scaling, [], "bytes/handler"),
        ],
        extra={
            "actors": ACTORS,
            "handlers": HANDLERS,
            "scale": SCALE,
            "idle_seconds": IDLE_SECONDS,
            "target_bytes": TARGET,
            "verdicts": verdicts,
        },
    )
    print(f"\ntarget <= {TARGET} bytes per idle actor (median):")
    for label, median in medians.items():
        print(f"  {label:<40} {median:8.0f}  {verdicts[label]}")


if __name__ == "__main__":
    main()

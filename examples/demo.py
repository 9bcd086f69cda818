"""A small resilient order pipeline on actorbus, stored in the embedded SQLite sink.

    OrderPlaced --emit--> charge_payment --emit--> ship_order
                          (fails ~10% of the time,   (slow: sleeps 1 ms)
                           retried by its policy)
    every outcome (PaymentCaptured, OrderShipped, DeadLetter) --> await bus.sink(...) --> SQLite

The payment provider fails at random (a seeded RNG, so every run is the same); each failure crashes
the handler's actor, its supervisor restarts it and the bus delivers the message again, up to the
handler's ``retries``. A payment that fails on every attempt becomes a ``DeadLetter`` event, which a
third handler stores as well. At the end the demo prints the supervision tree and reconciles the
orders emitted against the rows read back from the SQLite file: every order must be shipped or
dead-lettered, none lost. The exit status is 1 if any order is unaccounted for.

Run it with ``make demo``; ``--orders N`` (or ``DEMO_ORDERS=N``) and ``--seed S`` change the run.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import anyio

from bus import BusTerminal, DeadLetter, Event, EventBus, MessageContext, MessageRegistry
from bus.sinks import SQLiteSink

FAILURE_RATE = 0.10  # how often the payment provider declines an attempt
SHIPPING_TIME = 0.001  # seconds the warehouse takes per order


# Stored events carry explicit type names: this file runs as a script (module __main__), and the
# rows must decode wherever the classes are imported from.
class OrderPlaced(Event):
    __type_name__ = "demo.OrderPlaced"

    order_id: int
    amount_cents: int


class PaymentCaptured(Event):
    __type_name__ = "demo.PaymentCaptured"

    order_id: int
    amount_cents: int
    attempt: int  # the delivery attempt that succeeded (1 = first try)


class OrderShipped(Event):
    __type_name__ = "demo.OrderShipped"

    order_id: int


class PaymentDeclinedError(Exception):
    """The (simulated) payment provider declined the charge; worth retrying."""


class Progress:
    """What the handlers have done so far, for the progress bar only (the reconciliation reads the
    database, not these counters)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.paid = 0
        self.shipped = 0
        self.dead = 0
        self.declines = 0

    @property
    def settled(self) -> int:
        return self.shipped + self.dead

    def bar(self, width: int = 30) -> str:
        done = self.settled * width // self.total if self.total else width
        return (
            f"[{'#' * done}{'.' * (width - done)}] {self.settled:>{len(str(self.total))}}/{self.total} "
            f"settled  paid={self.paid} shipped={self.shipped} declines={self.declines} "
            f"dead={self.dead}"
        )


class PaymentGateway:
    """A simulated payment provider that declines ``FAILURE_RATE`` of the charges, at random.

    One instance serves every incarnation of ``charge_payment`` (a restart gets a fresh
    dependency, but the provider returns this same gateway), and that handler processes one
    message at a time, so a given seed always makes the same attempts fail."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def charge(self, order: OrderPlaced) -> None:
        if self._random.random() < FAILURE_RATE:
            raise PaymentDeclinedError(f"order {order.order_id}: card declined")


async def charge_payment(
    order: OrderPlaced,
    ctx: MessageContext,
    bus: EventBus,
    gateway: PaymentGateway,
    progress: Progress,
) -> None:
    try:
        gateway.charge(order)
    except PaymentDeclinedError:
        progress.declines += 1
        raise  # the actor crashes; its supervisor restarts it and the bus delivers the order again
    captured = PaymentCaptured(order.order_id, order.amount_cents, ctx.attempt)
    await bus.sink(captured)  # returns once the row is committed
    progress.paid += 1
    await bus.emit(captured)


async def ship_order(
    payment: PaymentCaptured, ctx: MessageContext, bus: EventBus, progress: Progress
) -> None:
    await anyio.sleep(SHIPPING_TIME)
    await bus.sink(OrderShipped(payment.order_id))
    progress.shipped += 1


async def record_dead_letter(
    letter: DeadLetter, ctx: MessageContext, bus: EventBus, progress: Progress
) -> None:
    await bus.sink(letter)
    progress.dead += 1


def build_registry(gateway: PaymentGateway, progress: Progress) -> MessageRegistry:
    registry = MessageRegistry(event_base=Event)

    @registry.factory
    def payment_gateway() -> PaymentGateway:
        return gateway

    @registry.factory
    def progress_counters() -> Progress:
        return progress

    # 2 retries (3 attempts in all), 2 ms then 4 ms after the failure. Every decline crashes the
    # actor and counts against its restart intensity (default: 10 within 5 s), so it is raised to
    # allow the rate a 10% decline rate makes here (a hundred or two crashes a second).
    registry.register(
        charge_payment, retries=2, retry_backoff=0.002, max_restarts=500, restart_period=1.0
    )
    registry.register(ship_order, record_dead_letter)  # the default policy
    return registry


async def show_progress(progress: Progress) -> None:
    """Redraw a one-line progress bar on stderr ten times a second (only on a terminal)."""
    if not sys.stderr.isatty():
        return
    while True:
        print(f"\r{progress.bar()}", end="", file=sys.stderr, flush=True)
        await anyio.sleep(0.1)


async def run(orders: int, seed: int, db: Path) -> int:
    progress = Progress(orders)
    registry = build_registry(PaymentGateway(seed), progress)
    amounts = random.Random(seed + 1)
    sink = SQLiteSink(db)
    emitted = 0
    started = time.perf_counter()

    async with BusTerminal(registry, sinks=[sink]) as terminal, anyio.create_task_group() as tg:
        tg.start_soon(show_progress, progress)
        bus = terminal.bus
        for order_id in range(orders):
            await bus.emit(OrderPlaced(order_id, amounts.randrange(500, 20_000)))
            emitted += 1
        await terminal.drain()  # every mailbox empty, no handler running, nested emits included
        tg.cancel_scope.cancel()
        print(f"\r{progress.bar()}", file=sys.stderr, flush=True)
        tree = terminal.snapshot()
        stats = terminal.statistics()
    elapsed = time.perf_counter() - started  # the terminal has stopped and closed the sink

    # Reconcile from the database file alone, read through a fresh sink.
    async with SQLiteSink(db) as reader:
        rows = await reader.read()
    kinds = Counter(type(event).__name__ for event, _ in rows)
    paid: dict[int, PaymentCaptured] = {}
    shipped: set[int] = set()
    dead: dict[int, DeadLetter] = {}
    for event, _ in rows:
        if isinstance(event, PaymentCaptured):
            paid[event.order_id] = event
        elif isinstance(event, OrderShipped):
            shipped.add(event.order_id)
        elif isinstance(event, DeadLetter) and isinstance(
            event.event, OrderPlaced | PaymentCaptured
        ):
            dead[event.event.order_id] = event
    retried = sum(1 for payment in paid.values() if payment.attempt > 1)
    # an order is settled once shipped or dead-lettered; anything else emitted was lost
    lost = [
        order_id for order_id in range(emitted) if order_id not in shipped and order_id not in dead
    ]
    restarts = {node.id.rpartition(".")[2]: node.restarts for node in tree.walk()}
    reasons = Counter(letter.reason for letter in dead.values())

    print()
    print("supervision tree at the end of the run:")
    print(tree)
    print()
    print(f"reconciliation, read back from {db}:")
    print(f"  emitted:        {emitted:>6}  orders placed")
    print(
        f"  paid:           {len(paid):>6}  {len(paid) - retried} on the first attempt, {retried} after retries"
    )
    print(f"  shipped:        {len(shipped):>6}")
    print(
        f"  dead-lettered:  {len(dead):>6}  "
        + ", ".join(f"{reason}={n}" for reason, n in sorted(reasons.items()))
    )
    for order_id, letter in sorted(dead.items())[:5]:
        print(f"      order {order_id}: {letter.attempts} attempts, last error {letter.error}")
    print(
        f"  stored:         {len(rows):>6}  rows: "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    )
    print(f"  lost:           {len(lost):>6}")
    print(
        f"declines: {progress.declines}, restarts of charge_payment: {restarts.get('charge_payment', 0)}; "
        f"rows the sink acknowledged: {stats.sunk}"
    )
    print(f"wall time: {elapsed:.1f} s ({emitted / elapsed:,.0f} orders/s)")
    if lost:
        print(f"lost orders: {lost[:20]}{' ...' if len(lost) > 20 else ''}", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=int(os.environ.get("DEMO_ORDERS", "2000")))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--db", type=Path, help="SQLite file to write (default: a temporary directory)"
    )
    args = parser.parse_args()
    if args.db is not None:
        sys.exit(anyio.run(run, args.orders, args.seed, args.db))
    with tempfile.TemporaryDirectory(prefix="actorbus-demo-") as tmp:
        sys.exit(anyio.run(run, args.orders, args.seed, Path(tmp) / "demo.db"))


if __name__ == "__main__":
    main()

"""Supervision demo: a small tree with a nested supervisor and workers that crash on bad input.

    root (one-for-one)
    ├─ audit           an actor that counts the lines it is told about
    └─ pipeline        a nested supervisor (rest-for-one: the parser depends on totals)
       ├─ totals       keeps a running sum; crashes on a negative number
       └─ parser       parses lines and forwards the numbers to totals; crashes on anything else

What happens: "oops" crashes the parser twice (its first delivery and one redelivery) and becomes a
dead letter; totals and audit are not disturbed. "-5" crashes totals: rest-for-one restarts totals and
the parser started after it. Totals' sum starts over (a fresh instance) but its mailbox survives. The
program prints the tree before and after, with restart counts, and the dead letters.

Run it with ``python examples/supervision_demo.py`` (from the repository root).
"""

from __future__ import annotations

import asyncio
from typing import Any

from actors import Actor, DeadLetter, DeadLetters, Redelivery
from supervisor import (
    INFINITY,
    ChildSpec,
    Intensity,
    Strategy,
    Supervisor,
    SupervisorSpec,
    open_supervisor,
)


class Audit(Actor):
    """Counts the lines it is told about; answers "count?" with the count."""

    async def on_start(self) -> None:
        self.count = 0

    async def receive(self, message: Any) -> Any:
        if message == "count?":
            return self.count
        self.count += 1
        return None


class Totals(Actor):
    """Sums the numbers the parser forwards; its sum lives as long as one incarnation."""

    async def on_start(self) -> None:
        self.total = 0
        print(f"  totals: incarnation {self.context.incarnation} starts from 0")

    async def receive(self, message: Any) -> Any:
        if message == "total?":
            return self.total
        if message < 0:
            raise ValueError(f"negative amount {message}")
        self.total += message
        return None


class Parser(Actor):
    """Parses a line into a number and forwards it to its sibling, totals."""

    def __init__(self, pipeline: dict[str, Supervisor]) -> None:
        self.pipeline = pipeline

    async def receive(self, message: Any) -> Any:
        number = int(message)  # ValueError on bad input: this incarnation crashes
        await self.pipeline["supervisor"].ref("totals").tell(number)
        return number


async def main() -> None:
    letters: list[DeadLetter] = []
    dead_letters = DeadLetters()
    dead_letters.subscribe(letters.append)

    pipeline: dict[str, Supervisor] = {}  # filled once the tree runs: the parser finds totals there
    pipeline_spec = SupervisorSpec(
        [
            ChildSpec("totals", Totals),
            ChildSpec("parser", lambda: Parser(pipeline), redelivery=Redelivery(max_redeliveries=1)),
        ],
        strategy=Strategy.REST_FOR_ONE,
        intensity=Intensity(max_restarts=5, within=10.0),
    )
    children = [
        ChildSpec("audit", Audit),
        ChildSpec("pipeline", pipeline_spec, shutdown=INFINITY),
    ]
    print("starting the tree")
    async with open_supervisor(children, dead_letters=dead_letters) as root:
        pipeline["supervisor"] = root.supervisor("pipeline")
        parser = pipeline["supervisor"].ref("parser")
        totals = pipeline["supervisor"].ref("totals")
        audit = root.ref("audit")
        print("\nbefore:")
        print(root.snapshot())

        print("\nsending 1, 2, oops, 3")
        for line in ["1", "2", "oops", "3"]:
            audit.tell_nowait(line)
            await parser.tell(line)
        print(f"  the parser answers '4' with {await parser.ask('4')}")
        print(f"  totals holds {await totals.ask('total?')}")

        print("\nsending -5, then 10")
        await parser.tell("-5")
        print(f"  the parser answers '10' with {await parser.ask('10')}")
        print(f"  totals holds {await totals.ask('total?')} (counted since its restart)")
        print(f"  audit counted {await audit.ask('count?')} lines")

        print("\nafter:")
        print(root.snapshot())

    print("\ndead letters:")
    for letter in letters:
        print(f"  {letter.message!r} to {letter.recipient}: {letter.reason.value}, {letter.error!r}")
    print("\nstopped:")
    print(root.snapshot())


if __name__ == "__main__":
    asyncio.run(main())

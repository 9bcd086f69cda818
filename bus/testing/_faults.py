"""Fault plans: which deliveries of which handler raise or run slowly, applied by a `Recorder`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

import attrs

FaultKind = Literal["transient", "permanent", "slow"]
"""``transient``: the first ``times`` attempts raise; ``permanent``: every attempt raises;
``slow``: the first attempt waits ``delay`` seconds (on the event loop's clock) before running."""

FAULT_KINDS: tuple[FaultKind, ...] = ("transient", "permanent", "slow")


@attrs.frozen(slots=True)
class Fault:
    """A fault on the ``message``-th distinct message (from 1) that ``handler`` gets.

    ``handler`` is a handler's name (``module.qualname``, or its unique qualname or function name).
    A raising fault raises `InjectedFault` in place of the handler's run, as if it crashed on its
    first line; the handler's policy then retries (emit) or the publisher gets it (publish).
    """

    handler: str
    message: int
    kind: FaultKind = "transient"
    times: int = 1
    delay: float = 0.0

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.handler, str) or not self.handler:
            raise ValueError(f"Fault.handler must be a handler's name, got {self.handler!r}")
        if not isinstance(self.message, int) or self.message < 1:
            raise ValueError(f"Fault.message counts from 1, got {self.message!r}")
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"Fault.kind must be one of {FAULT_KINDS}, got {self.kind!r}")
        if not isinstance(self.times, int) or self.times < 1:
            raise ValueError(f"Fault.times must be >= 1, got {self.times!r}")
        if not self.delay >= 0:
            raise ValueError(f"Fault.delay must be >= 0 seconds, got {self.delay!r}")

    def raises_on(self, attempt: int) -> bool:
        """Whether attempt ``attempt`` (from 1) of the message raises."""
        if self.kind == "permanent":
            return True
        return self.kind == "transient" and attempt <= self.times

    def __str__(self) -> str:
        what = {
            "transient": f"raises on {self.times} attempt(s) of",
            "permanent": "raises on every attempt of",
            "slow": f"waits {self.delay} s before",
        }[self.kind]
        return f"{self.handler.rsplit('.', 1)[-1]} {what} its message {self.message}"


@attrs.define(slots=True)
class FaultPlan:
    """A set of `Fault` s, at most one per (handler, message); empty by default.

    Its ``repr`` lists the faults in a readable order, which is what Hypothesis prints for a
    failing example.
    """

    faults: dict[tuple[str, int], Fault] = attrs.field(factory=dict)

    @classmethod
    def of(cls, faults: Iterable[Fault]) -> FaultPlan:
        """A plan with ``faults`` (a later fault on the same delivery replaces an earlier one)."""
        plan = cls()
        for fault in faults:
            plan.add(fault)
        return plan

    def add(self, fault: Fault) -> None:
        """Add ``fault`` (replacing one on the same handler and message)."""
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {fault!r}")
        self.faults[fault.handler, fault.message] = fault

    def get(self, handler: str, message: int) -> Fault | None:
        """The fault on ``handler``'s ``message``-th message, if any."""
        return self.faults.get((handler, message))

    def __iter__(self) -> Iterator[Fault]:
        return iter(sorted(self.faults.values(), key=lambda f: (f.handler, f.message)))

    def __len__(self) -> int:
        return len(self.faults)

    def __repr__(self) -> str:
        return (
            f"FaultPlan.of([{', '.join(str(f) for f in self)}])" if self.faults else "FaultPlan()"
        )

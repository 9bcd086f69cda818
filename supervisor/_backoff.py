"""Exponential restart backoff with jitter, a maximum and a reset (Akka's restartWithBackoff)."""

from __future__ import annotations

import random

import attrs


@attrs.frozen
class Backoff:
    """Restart delays ``min * factor**n`` capped at ``max``, each stretched by up to ``jitter`` (a
    fraction: 0.2 adds 0-20%). ``n`` counts restarts since the child last ran ``reset_after`` seconds without
    crashing (``None``: never reset)."""

    min: float = 0.1
    max: float = 10.0
    factor: float = 2.0
    jitter: float = 0.2
    reset_after: float | None = None

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.min <= self.max:
            raise ValueError(f"backoff needs 0 <= min <= max, got min={self.min!r} max={self.max!r}")
        if self.factor < 1:
            raise ValueError(f"backoff factor must be >= 1, got {self.factor!r}")
        if self.jitter < 0:
            raise ValueError(f"backoff jitter must be >= 0, got {self.jitter!r}")

    def delay(self, restarts: int, rng: random.Random | None = None) -> float:
        """Delay before restart number ``restarts + 1`` (``restarts`` = 0 for the first)."""
        base = min(self.max, self.min * self.factor**restarts)
        spread = (rng or random).uniform(0, self.jitter) if self.jitter else 0.0
        return base * (1 + spread)

    def delay_for(self, child: str, restarts: int) -> float:
        """What a supervisor asks: the delay before restart number ``restarts + 1`` of its child
        ``child`` (an id). Returns ``delay(restarts)``; a subclass shared by several children can
        override it to keep its bookkeeping per child (one backoff object for many children)."""
        return self.delay(restarts)

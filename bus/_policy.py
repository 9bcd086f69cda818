"""Per-handler policy: retries and backoff, mailbox bounds, restart intensity, shutdown."""

from __future__ import annotations

import math
from typing import Final, Literal, TypedDict, get_args

import attrs

Overflow = Literal["backpressure", "drop_new", "drop_oldest", "fail"]
"""What a bounded mailbox does when it is full: wait for room, drop the new message, drop the
oldest queued message, or raise at the sender."""

OVERFLOW_POLICIES: Final[tuple[str, ...]] = get_args(Overflow)


class PolicyOptions(TypedDict, total=False):
    """The keyword arguments ``MessageRegistry.register`` accepts, one per `HandlerPolicy` field."""

    retries: int
    retry_backoff: float
    retry_backoff_factor: float
    retry_backoff_max: float
    mailbox_capacity: int | None
    overflow: Overflow
    max_restarts: int
    restart_period: float
    shutdown_timeout: float


@attrs.frozen(slots=True, kw_only=True)
class HandlerPolicy:
    """How the bus treats one handler's actor.

    Defaults:

    - ``retries=3``: an emitted message that fails is delivered again up to 3 more times (4 attempts
      in all) before it becomes a ``DeadLetter``. ``publish`` never retries: its caller gets the
      exception.
    - ``retry_backoff=0.1``, ``retry_backoff_factor=2.0``, ``retry_backoff_max=5.0``: the first
      retry waits 0.1 s, each further retry waits twice as long, never more than 5 s
      (see `retry_delay`).
    - ``mailbox_capacity=10_000``: messages the mailbox holds; ``None`` means unbounded.
    - ``overflow="backpressure"``: a full mailbox makes ``emit`` wait for room; ``"drop_new"`` and
      ``"drop_oldest"`` drop a message (it becomes a dead letter); ``"fail"`` raises at the sender.
    - ``max_restarts=10`` within ``restart_period=5.0`` seconds: more crashes than that and the
      handler's supervisor gives up on it (escalation). It must be at least ``retries + 1``, so that
      one poison message, which crashes the actor on every attempt, cannot exhaust it alone.
    - ``shutdown_timeout=5.0``: seconds the actor gets to finish its queued messages when the
      terminal stops, after which it is cancelled (``math.inf`` waits for ever).

    Invalid values raise ``ValueError`` (``TypeError`` for a value of the wrong type) naming the
    field.
    """

    retries: int = 3
    retry_backoff: float = 0.1
    retry_backoff_factor: float = 2.0
    retry_backoff_max: float = 5.0
    mailbox_capacity: int | None = 10_000
    overflow: Overflow = "backpressure"
    max_restarts: int = 10
    restart_period: float = 5.0
    shutdown_timeout: float = 5.0

    def __attrs_post_init__(self) -> None:
        _check_int("retries", self.retries, minimum=0)
        _check_float("retry_backoff", self.retry_backoff, positive=False, finite=True)
        _check_float("retry_backoff_factor", self.retry_backoff_factor, positive=True, finite=True)
        if self.retry_backoff_factor < 1:
            # Below 1, later retries would come sooner: never what backoff means.
            msg = f"retry_backoff_factor must be >= 1, got {self.retry_backoff_factor!r}"
            raise ValueError(msg)
        _check_float("retry_backoff_max", self.retry_backoff_max, positive=False, finite=True)
        if self.retry_backoff_max < self.retry_backoff:
            msg = (
                f"retry_backoff_max ({self.retry_backoff_max!r}) must be >= retry_backoff "
                f"({self.retry_backoff!r})"
            )
            raise ValueError(msg)
        if self.mailbox_capacity is not None:
            _check_int("mailbox_capacity", self.mailbox_capacity, minimum=1)
        if self.overflow not in OVERFLOW_POLICIES:
            msg = f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}; got {self.overflow!r}"
            raise ValueError(msg)
        _check_int("max_restarts", self.max_restarts, minimum=0)
        if self.max_restarts < self.retries + 1:
            msg = (
                f"max_restarts ({self.max_restarts}) must be >= retries + 1 ({self.retries + 1}): "
                "a message that fails on every attempt crashes the actor retries + 1 times, and "
                "that alone must not exhaust the restart intensity"
            )
            raise ValueError(msg)
        _check_float("restart_period", self.restart_period, positive=True, finite=True)
        _check_float("shutdown_timeout", self.shutdown_timeout, positive=False)

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait before delivery number ``attempt`` (1-based) of a message.

        The first delivery (``attempt=1``) does not wait; the first retry (``attempt=2``) waits
        ``retry_backoff``, and each later one ``retry_backoff_factor`` times longer, capped at
        ``retry_backoff_max``.
        """
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            msg = f"attempt must be an int >= 1, got {attempt!r}"
            raise ValueError(msg)
        if attempt == 1:
            return 0.0
        try:
            delay = self.retry_backoff * self.retry_backoff_factor ** (attempt - 2)
        except OverflowError:
            return float(self.retry_backoff_max)
        return float(min(delay, self.retry_backoff_max))


def policy_fields() -> tuple[str, ...]:
    """The names `HandlerPolicy` accepts as keyword arguments, in declaration order."""
    return tuple(field.name for field in attrs.fields(HandlerPolicy))


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{name} must be an int, got {value!r}"
        raise TypeError(msg)
    if value < minimum:
        msg = f"{name} must be >= {minimum}, got {value!r}"
        raise ValueError(msg)


def _check_float(name: str, value: object, *, positive: bool, finite: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{name} must be a number of seconds, got {value!r}"
        raise TypeError(msg)
    if math.isnan(value) or (finite and math.isinf(value)):
        msg = f"{name} must be a {'finite ' if finite else ''}number, got {value!r}"
        raise ValueError(msg)
    if positive and value <= 0:
        msg = f"{name} must be > 0, got {value!r}"
        raise ValueError(msg)
    if value < 0:
        msg = f"{name} must be >= 0, got {value!r}"
        raise ValueError(msg)

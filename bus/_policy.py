"""Per-handler policy: retries and backoff, mailbox bounds, restart backoff and limit, shutdown."""

from __future__ import annotations

import math
from typing import Final, Literal, TypedDict, get_args

import attrs

Overflow = Literal["backpressure", "drop_new", "drop_oldest", "fail"]
"""What a bounded mailbox does when it is full: wait for room, drop the new message, drop the
oldest queued message, or raise at the sender."""

OVERFLOW_POLICIES: Final[tuple[str, ...]] = get_args(Overflow)

#: the shortest pause between two restarts of a handler's actor, in seconds
MIN_RESTART_BACKOFF: Final = 0.01


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
    restart_backoff: float
    restart_backoff_factor: float
    restart_backoff_max: float
    restart_jitter: float
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
    - ``max_restarts=20``: the handler is stopped for good (a ``HandlerStopped`` notice) only on a
      true crash loop, when its actor crashed (or failed to start) more than ``max_restarts`` times
      in a row without making progress. Progress is a message handled successfully, or an
      incarnation that ran ``restart_period=5.0`` seconds without crashing. A poison message costs
      ``retries + 1`` crashes in a row at most, so ``max_restarts`` must be at least
      ``retries + 1``: poison messages interleaved with good ones never stop a handler, and with
      the defaults five poison messages in a row do not either.
    - ``restart_backoff=0.01``, ``restart_backoff_factor=2.0``, ``restart_backoff_max=2.0``,
      ``restart_jitter=0.2``: a crashed actor is restarted after ``restart_backoff`` seconds, and
      each further crash without progress doubles that, capped at ``restart_backoff_max``, each
      delay stretched by a random 0-20 %. Progress resets it to ``restart_backoff``. The minimum is
      0.01 s. With the defaults a handler whose dependency is down keeps trying for about 26 s
      (20 restarts) before it stops for good (see `restart_delay`).
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
    max_restarts: int = 20
    restart_period: float = 5.0
    restart_backoff: float = 0.01
    restart_backoff_factor: float = 2.0
    restart_backoff_max: float = 2.0
    restart_jitter: float = 0.2
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
        _check_float("restart_backoff", self.restart_backoff, positive=True, finite=True)
        if self.restart_backoff < MIN_RESTART_BACKOFF:
            # a crash loop without a pause would burn a core and flood the notices
            msg = f"restart_backoff must be >= {MIN_RESTART_BACKOFF} s, got {self.restart_backoff!r}"
            raise ValueError(msg)
        _check_float(
            "restart_backoff_factor", self.restart_backoff_factor, positive=True, finite=True
        )
        if self.restart_backoff_factor < 1:
            msg = f"restart_backoff_factor must be >= 1, got {self.restart_backoff_factor!r}"
            raise ValueError(msg)
        _check_float("restart_backoff_max", self.restart_backoff_max, positive=True, finite=True)
        if self.restart_backoff_max < self.restart_backoff:
            msg = (
                f"restart_backoff_max ({self.restart_backoff_max!r}) must be >= restart_backoff "
                f"({self.restart_backoff!r})"
            )
            raise ValueError(msg)
        _check_float("restart_jitter", self.restart_jitter, positive=False, finite=True)
        _check_float("shutdown_timeout", self.shutdown_timeout, positive=False)

    def restart_delay(self, streak: int) -> float:
        """Seconds before restarting after crash number ``streak`` (1-based) of a run of crashes
        without progress, before jitter: ``restart_backoff * restart_backoff_factor ** (streak - 1)``
        capped at ``restart_backoff_max``."""
        if isinstance(streak, bool) or not isinstance(streak, int) or streak < 1:
            msg = f"streak must be an int >= 1, got {streak!r}"
            raise ValueError(msg)
        try:
            delay = self.restart_backoff * self.restart_backoff_factor ** (streak - 1)
        except OverflowError:
            return float(self.restart_backoff_max)
        return float(min(delay, self.restart_backoff_max))

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

"""The one observable place where undeliverable messages are reported."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import attrs

from actors._cancellation import call_listener


class DeadLetterReason(enum.Enum):
    """Why a message could not be delivered."""

    #: dropped by a bounded mailbox's overflow policy (drop-new, drop-oldest)
    OVERFLOW = "overflow"
    #: its handler crashed on it and it has no redeliveries left
    CRASHED = "crashed"
    #: sent to, or still queued for, an actor that stopped for good
    STOPPED = "stopped"
    #: being processed when its actor was killed (brutal kill or shutdown timeout)
    KILLED = "killed"


@attrs.frozen
class DeadLetter:
    """A message that did not reach, or could not be processed by, its recipient."""

    message: Any
    recipient: str
    reason: DeadLetterReason
    error: BaseException | None = None
    attempts: int = 0


DeadLetterListener = Callable[[DeadLetter], None]


class DeadLetters:
    """Collects dead letters and hands each to every subscribed listener, synchronously.

    Listeners run inside the call that produced the dead letter (often a sender's ``tell_nowait``),
    so they must be quick and must not raise; an exception from a listener is counted, logged (logger
    ``actors``) and dropped rather than breaking the sender.
    """

    __slots__ = ("_count", "_listener_errors", "_listeners")

    def __init__(self) -> None:
        self._listeners: list[DeadLetterListener] = []
        self._count = 0
        self._listener_errors = 0

    def subscribe(self, listener: DeadLetterListener) -> Callable[[], None]:
        """Call ``listener`` for every dead letter from now on; returns a function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def report(self, letter: DeadLetter) -> None:
        """Record a dead letter and pass it to the listeners."""
        self._count += 1
        for listener in tuple(self._listeners):
            # a listener must never break the sender
            if not call_listener(listener, letter, "dead-letter listener raised on a letter for %r", letter.recipient):
                self._listener_errors += 1

    @property
    def count(self) -> int:
        """How many dead letters were reported so far."""
        return self._count

    @property
    def listener_errors(self) -> int:
        """How many times a listener raised (and was ignored)."""
        return self._listener_errors

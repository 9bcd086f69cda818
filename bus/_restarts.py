"""Restart backoff and the crash-loop rule of one handler: how long before its actor restarts,
and when it stops for good."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import attrs

from bus._policy import HandlerPolicy
from supervisor import Backoff


class CrashRecord:
    """One handler's crash bookkeeping, made at its first crash or failed start: most handlers never
    crash, and 10,000 of them may sit idle (one slot each for this rather than six)."""

    __slots__ = (
        "crashed_on_notice",
        "held",
        "last_error",
        "processed_mark",
        "started_at",
        "stop_reason",
        "streak",
    )

    def __init__(self) -> None:
        #: crashes (or failed starts) in a row without progress
        self.streak = 0
        #: the actor's processed count at the previous crash
        self.processed_mark = 0
        #: when the running incarnation started (None: it has not started since the last crash)
        self.started_at: float | None = None
        self.last_error: BaseException | None = None
        #: deliveries dead-lettered by a crash, kept in drain()'s count until the restart that follows
        self.held = 0
        #: why the handler stopped for good (its crash loop), once it did
        self.stop_reason: str | None = None
        #: the last crash happened on a notice (it is then not announced with another notice)
        self.crashed_on_notice = False


class CrashLoop:
    """Counts one handler's crashes in a row without progress, across its actor's incarnations.

    Progress is a message handled successfully (the actor's ``processed`` count moved) or an
    incarnation that ran ``policy.restart_period`` seconds before it crashed.

    A mixin of the bus's ``HandlerSlot``, which holds the ``CrashRecord`` (made at the first
    crash), where 10,000 handlers may sit idle. The record's fields read as attributes of the slot
    (defaults until the first crash; setting one makes the record). An incarnation's start time is
    kept only once the handler has crashed: the first crash makes the streak 1 whether or not the
    incarnation made progress, so before it the time is never needed.
    """

    if not TYPE_CHECKING:
        # no instance dict: the subclass's slots hold the state (declared below for the checker,
        # which would otherwise refuse assignments to names missing from an empty __slots__)
        __slots__ = ()

    #: the crash bookkeeping, None until the first crash
    crash: CrashRecord | None

    def crash_record(self) -> CrashRecord:
        """The crash bookkeeping, made on first use."""
        record = self.crash
        if record is None:
            self.crash = record = CrashRecord()
        return record

    @property
    def streak(self) -> int:
        """Crashes (or failed starts) in a row without progress."""
        record = self.crash
        return 0 if record is None else record.streak

    @property
    def last_error(self) -> BaseException | None:
        """The handler's last crash (or failed start)."""
        record = self.crash
        return None if record is None else record.last_error

    @last_error.setter
    def last_error(self, error: BaseException | None) -> None:
        self.crash_record().last_error = error

    @property
    def held(self) -> int:
        """Deliveries dead-lettered by a crash, kept in drain()'s count until the restart after it."""
        record = self.crash
        return 0 if record is None else record.held

    @held.setter
    def held(self, count: int) -> None:
        self.crash_record().held = count

    @property
    def stop_reason(self) -> str | None:
        """Why the handler stopped for good (its crash loop), once it did."""
        record = self.crash
        return None if record is None else record.stop_reason

    @stop_reason.setter
    def stop_reason(self, reason: str | None) -> None:
        self.crash_record().stop_reason = reason

    @property
    def crashed_on_notice(self) -> bool:
        """The last crash happened on a notice (it is then not announced with another notice)."""
        record = self.crash
        return record is not None and record.crashed_on_notice

    @crashed_on_notice.setter
    def crashed_on_notice(self, value: bool) -> None:
        self.crash_record().crashed_on_notice = value

    @property
    def policy(self) -> HandlerPolicy:
        """The handler's policy (its restart settings)."""
        raise NotImplementedError

    def processed(self) -> int:
        """How many messages the handler's actor processed, over all its incarnations."""
        raise NotImplementedError

    def on_crash(self, now: float) -> float:
        """Record a crash; return the delay before the restart (0 when it must stop instead)."""
        policy = self.policy
        record = self.crash_record()
        processed = self.processed()
        started = record.started_at
        ran_long = started is not None and now - started >= policy.restart_period
        progressed = processed != record.processed_mark or ran_long
        record.processed_mark = processed
        record.started_at = None
        record.streak = 1 if progressed else record.streak + 1
        if self.exhausted:
            return 0.0  # the next incarnation stops at once: no point waiting for it
        delay = policy.restart_delay(record.streak)
        jitter = policy.restart_jitter
        return delay * (1 + random.uniform(0, jitter)) if jitter else delay

    @property
    def exhausted(self) -> bool:
        """True once the crashes in a row exceed ``policy.max_restarts``: stop for good."""
        return self.streak > self.policy.max_restarts

    def started(self) -> None:
        """An incarnation started (its dependencies were built)."""
        record = self.crash
        if record is not None:  # before the first crash the start time is never read
            record.started_at = anyio.current_time()


@attrs.frozen(eq=False)
class HandlerBackoff(Backoff):
    """The supervisor's restart backoff for the handlers of one policy, driven by each one's
    `CrashLoop`.

    One object per policy, not per handler (10,000 handlers may sit idle): the supervisor names the
    child it restarts (``delay_for``) and ``loop_of`` finds that handler's crash loop. The delay comes
    from the handler's crash-loop count instead of the supervisor's restart counter, so that progress
    resets it.
    """

    loop_of: Callable[[str], CrashLoop] = attrs.field(kw_only=True)

    def delay_for(self, child: str, restarts: int) -> float:
        """The delay before handler ``child``'s next restart (``restarts`` is ignored, see the class)."""
        return self.loop_of(child).on_crash(anyio.current_time())

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


class CrashLoop:
    """Counts one handler's crashes in a row without progress, across its actor's incarnations.

    Progress is a message handled successfully (the actor's ``processed`` count moved) or an
    incarnation that ran ``policy.restart_period`` seconds before it crashed.

    A mixin of the bus's ``HandlerSlot``, which holds the state (``streak``, ``processed_mark``,
    ``started_at``): one object per handler fewer than a record of its own, where 10,000 handlers
    may sit idle.
    """

    if not TYPE_CHECKING:
        # no instance dict: the subclass's slots hold the state (declared below for the checker,
        # which would otherwise refuse assignments to names missing from an empty __slots__)
        __slots__ = ()

    #: crashes (or failed starts) in a row without progress
    streak: int
    #: the actor's processed count at the previous crash
    processed_mark: int
    #: when the running incarnation started (None: it has not started, or failed to)
    started_at: float | None

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
        processed = self.processed()
        started = self.started_at
        ran_long = started is not None and now - started >= policy.restart_period
        progressed = processed != self.processed_mark or ran_long
        self.processed_mark = processed
        self.started_at = None
        self.streak = 1 if progressed else self.streak + 1
        if self.exhausted:
            return 0.0  # the next incarnation stops at once: no point waiting for it
        delay = policy.restart_delay(self.streak)
        jitter = policy.restart_jitter
        return delay * (1 + random.uniform(0, jitter)) if jitter else delay

    @property
    def exhausted(self) -> bool:
        """True once the crashes in a row exceed ``policy.max_restarts``: stop for good."""
        return self.streak > self.policy.max_restarts

    def started(self) -> None:
        """An incarnation started (its dependencies were built)."""
        self.started_at = anyio.current_time()


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

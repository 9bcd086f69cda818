"""Child and supervisor specifications: what to start and how to treat its exits."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable
from typing import Final

import attrs

from actors import Actor, MailboxSpec, Redelivery, Terminated
from supervisor._backoff import Backoff


class Strategy(enum.Enum):
    """Which children restart when one of them must restart (OTP's strategies)."""

    #: only the child that exited
    ONE_FOR_ONE = "one_for_one"
    #: every child: the others are stopped in reverse start order, then all start again in order
    ONE_FOR_ALL = "one_for_all"
    #: the child and those started after it: stopped in reverse order, restarted in order
    REST_FOR_ONE = "rest_for_one"


class Restart(enum.Enum):
    """When a child that exited is restarted."""

    #: always, after a crash or a normal exit
    PERMANENT = "permanent"
    #: only after a crash; a normal exit ends it
    TRANSIENT = "transient"
    #: never; once it exits (or is stopped because a sibling's exit restarts its group) it is removed
    #: from the supervisor's children
    TEMPORARY = "temporary"


#: ``shutdown`` value: cancel the child at once, without a stop request (its ``on_stop`` does not run)
BRUTAL_KILL: Final = 0.0
#: ``shutdown`` value: wait for the child however long its stop takes (use for nested supervisors)
INFINITY: Final = math.inf


@attrs.frozen
class Intensity:
    """At most ``max_restarts`` restarts within any sliding window of ``within`` seconds."""

    max_restarts: int = 3
    within: float = 5.0

    def __attrs_post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {self.max_restarts!r}")
        if not self.within > 0:
            raise ValueError(f"within must be > 0 seconds, got {self.within!r}")


def _check_shutdown(_: object, __: object, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"shutdown must be >= 0 seconds, BRUTAL_KILL or INFINITY, got {value!r}")


@attrs.frozen(weakref_slot=False)  # no weakref slot: a tree may hold 100,000 specs
class ChildSpec:
    """One child of a supervisor: an actor (``start`` is a factory making a fresh ``Actor`` for every
    incarnation) or a nested supervisor (``start`` is a ``SupervisorSpec``).

    - ``restart``: permanent, transient or temporary.
    - ``shutdown``: seconds a stop request may take before the child is cancelled; ``BRUTAL_KILL`` cancels
      at once; ``INFINITY`` waits.
    - ``mailbox`` and ``redelivery``: for actors only; the mailbox survives restarts.
    - ``backoff``: delay restarts of this child exponentially (Akka's restartWithBackoff).
    - ``intensity``: an optional limit for this child alone (Akka's per-child limit): past it the child is
      stopped for good and its watchers notified, while the supervisor and its siblings carry on. Each of its
      restarts still counts toward the supervisor's own intensity.
    """

    id: str
    start: Callable[[], Actor] | SupervisorSpec
    restart: Restart = Restart.PERMANENT
    shutdown: float = attrs.field(default=5.0, validator=_check_shutdown)
    mailbox: MailboxSpec = MailboxSpec()
    redelivery: Redelivery = Redelivery()
    backoff: Backoff | None = None
    intensity: Intensity | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"child id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.start, SupervisorSpec) and not callable(self.start):
            raise TypeError(
                f"child {self.id!r}: start must be an Actor factory or a SupervisorSpec, got {self.start!r}"
            )

    @property
    def is_supervisor(self) -> bool:
        """True when this child is a nested supervisor."""
        return isinstance(self.start, SupervisorSpec)


def _as_children(children: Iterable[ChildSpec]) -> tuple[ChildSpec, ...]:
    return tuple(children)


#: default ``SupervisorSpec.linger``: seconds an actor's mailbox stays empty before its task exits
DEFAULT_LINGER: Final = 1.0


def _check_linger(_: object, __: object, value: float | None) -> None:
    if value is not None and not (isinstance(value, int | float) and 0 < value < math.inf):
        raise ValueError(f"linger must be a number of seconds > 0 (and finite), or None; got {value!r}")


def _check_listener(_: object, __: object, value: Callable[[Terminated], None] | None) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"on_child_stopped must be callable or None, got {value!r}")


@attrs.frozen
class SupervisorSpec:
    """A supervisor's static children (started in order, stopped in reverse), strategy and intensity.

    ``intensity=None`` never gives up (use with per-child intensities, as the bus does).
    ``linger``: an actor child whose mailbox stayed empty for ``linger`` to ``2 * linger`` seconds gives
    up its task (its incarnation, state and ``on_start`` resources live on) and gets a new one with its
    next message; ``None`` keeps a task per actor for as long as it runs.
    ``on_child_stopped``: called with the ``Terminated`` notice of any child (actor or supervisor,
    static or dynamic) that stops for good, after that child's own watchers: what a watch of every
    child would hear, with one callback for all of them rather than one watch each (a watch costs an
    idle actor ~160 B). Synchronous, quick; an exception from it is logged and ignored.
    """

    children: tuple[ChildSpec, ...] = attrs.field(default=(), converter=_as_children)
    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: Intensity | None = Intensity()
    linger: float | None = attrs.field(default=DEFAULT_LINGER, validator=_check_linger)
    on_child_stopped: Callable[[Terminated], None] | None = attrs.field(
        default=None, kw_only=True, validator=_check_listener
    )

    def __attrs_post_init__(self) -> None:
        seen: set[str] = set()
        for child in self.children:
            if not isinstance(child, ChildSpec):
                raise TypeError(f"supervisor children must be ChildSpec, got {child!r}")
            if child.id in seen:
                raise ValueError(f"duplicate child id {child.id!r}")
            seen.add(child.id)

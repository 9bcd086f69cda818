"""The dispatcher: routes event types to handler actors, counts what is in flight, and turns the
runtime's dead letters into ``DeadLetter`` events."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping, Sized
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, cast

import anyio
import attrs

from actors import (
    Actor,
    ActorRef,
    DeadLetter as RuntimeDeadLetter,
    DeadLetterReason,
    FutureFactory,
    Mailbox,
    OneShot,
    Overflow,
    Terminated,
)
from bus._dependencies import ProviderSpec
from bus._errors import BusClosedError
from bus._events import (
    NOTICE_EVENTS,
    DeadLetter,
    Emitted,
    Event,
    HandlerStopped,
    MessageContext,
    Stamp,
    SupervisorGaveUp,
    delivery_context,
    describe_error,
)
from bus._handlers import RegisteredHandler, code_target
from bus._log import logger, notices_logger
from bus._policy import HandlerPolicy
from bus._restarts import CrashLoop, CrashRecord
from bus._sink_actor import SinkSlot

if TYPE_CHECKING:
    from bus.sinks._base import Sink
    from bus.transport._base import Transport

#: the handler slots executing in the current task, innermost last (see ``must_run_inline``)
CURRENT_CHAIN: ContextVar[tuple[HandlerSlot, ...]] = ContextVar("actorbus_chain", default=())

_REASONS: Mapping[DeadLetterReason, str] = {
    DeadLetterReason.CRASHED: "retries_exhausted",
    DeadLetterReason.OVERFLOW: "mailbox_overflow",
    DeadLetterReason.STOPPED: "handler_stopped",
    DeadLetterReason.KILLED: "handler_killed",
}


#: overflow policies under which ``emit_nowait`` raises on a full mailbox rather than dropping
_RAISING_OVERFLOWS = frozenset({Overflow.BACKPRESSURE.value, Overflow.FAIL.value})


class InlineHandler(Protocol):
    """A handler's running incarnation, as a re-entrant ``publish`` calls it inline (the bus's
    ``HandlerActor``, which builds on this module)."""

    async def handle(self, event: Event, context: MessageContext | Stamp) -> None: ...


class Emitter(Protocol):
    """The terminal's root bus handle, as the dispatcher's users (transports) emit through it."""

    def emit_nowait(self, event: Any, *, headers: Mapping[str, str] | None = None) -> None: ...


@attrs.define(eq=False, weakref_slot=False)
class HandlerSlot(CrashLoop):
    """Everything the bus keeps about one handler across its actor's incarnations.

    Called, it makes the handler's next incarnation: the slot is its child spec's actor factory;
    it also counts the handler's crash loop (one object per handler fewer each, where 10,000
    handlers may sit idle; its crash bookkeeping is made at the first crash, see ``CrashLoop``)."""

    registered: RegisteredHandler
    dispatcher: Dispatcher
    ref: ActorRef | None = None
    mailbox: Mailbox | None = None
    #: the running incarnation, for re-entrant publishes
    actor: InlineHandler | None = None
    #: the handler slot this handler's task is blocked on in a publish (wait-for graph)
    waiting_on: HandlerSlot | None = None
    #: crash-loop state, start time, last error, held deliveries, stop reason: made at the first
    #: crash
    crash: CrashRecord | None = None

    @property
    def name(self) -> str:
        return self.registered.name

    @property
    def policy(self) -> HandlerPolicy:
        """The handler's policy."""
        return self.registered.policy

    def __call__(self) -> Actor:
        actor_type = self.dispatcher.actor_type
        assert actor_type is not None, "the terminal sets the actor type before starting"
        return actor_type(self)

    def processed(self) -> int:
        """How many messages the handler's actor processed, over all its incarnations."""
        return 0 if self.ref is None else self.ref.statistics().processed

    def on_terminated(self, notice: Terminated) -> None:
        """The handler's actor stopped for good; say why with ``HandlerStopped``."""
        dispatcher = self.dispatcher
        dispatcher.release(self)  # no restart will follow: drain() must not wait for one
        if dispatcher.closed:
            return
        if self.stop_reason is not None:
            reason = self.stop_reason
        elif notice.error is not None:
            reason = f"gave up after too many restarts: {describe_error(notice.error)}"
        else:
            return
        dispatcher.notify(HandlerStopped(self.name, reason), about=self.name)

    def full_under_backpressure(self) -> bool:
        """True when an ``emit_nowait`` could not queue here: the mailbox is full and its overflow
        policy would wait (``backpressure``) or raise (``fail``) rather than drop a message."""
        policy = self.registered.policy
        capacity = policy.mailbox_capacity
        return (
            capacity is not None
            and policy.overflow in _RAISING_OVERFLOWS
            and self.mailbox is not None
            and len(self.mailbox) >= capacity
        )


class Bounded(Protocol):
    """A bounded mailbox, as the emit hot path reads it: its queue and its (int) capacity."""

    @property
    def queue(self) -> Sized: ...

    @property
    def capacity(self) -> int: ...


def takes_event_only(registered: RegisteredHandler) -> bool:
    """Whether the handler is an ``async def handler(event)``: it can read no message context, so
    a publish to it sends the bare event (see ``Route.bare``)."""
    spec = registered.spec
    return spec.is_async and not spec.params and inspect.iscoroutinefunction(code_target(spec.func))


class Route:
    """Where events of one type go: the subscribed handlers in registration order, their mailboxes,
    and those whose bounded mailbox could refuse an ``emit_nowait`` (checked before queueing any)."""

    __slots__ = ("bare", "bare_mask", "mailboxes", "room_checks", "slots")

    def __init__(self, slots: tuple[HandlerSlot, ...]) -> None:
        self.slots = slots
        mask = sum(1 << i for i, slot in enumerate(slots) if takes_event_only(slot.registered))
        #: every handler takes the event alone: a publish sends each the bare event, with no
        #: context to build (none could read it; an emit still stamps each message, for its dead
        #: letter)
        self.bare = mask == (1 << len(slots)) - 1
        #: for a route that mixes such handlers with others, bit i is set when ``slots[i]`` takes
        #: the event alone (a publish sends it the bare event, the others the full payload); else 0
        self.bare_mask = 0 if self.bare else mask
        mailboxes = []
        for slot in slots:
            assert slot.mailbox is not None, "routes are built while the terminal runs"
            mailboxes.append(slot.mailbox)
        self.mailboxes = tuple(mailboxes)
        #: each guarded mailbox (its ``capacity`` is an int): the emit hot path checks room inline
        #: (read ``mailbox.queue`` each time: an idle mailbox swaps its deque for a shared empty one)
        self.room_checks: tuple[Bounded, ...] = tuple(
            cast("Bounded", mailbox) for _, mailbox in self.guarded
        )

    @property
    def guarded(self) -> tuple[tuple[HandlerSlot, Mailbox], ...]:
        """(slot, mailbox) of each handler whose bounded mailbox could refuse an ``emit_nowait``.

        Computed on each use, off the hot path (a full mailbox): a route of 10,000 handlers keeps no
        second table of pairs beside ``room_checks``."""
        return tuple(
            (slot, mailbox)
            for slot, mailbox in zip(self.slots, self.mailboxes, strict=True)
            if slot.registered.policy.mailbox_capacity is not None
            and slot.registered.policy.overflow in _RAISING_OVERFLOWS
        )

    def first_full(self) -> HandlerSlot | None:
        """A guarded handler whose mailbox has no room, if any."""
        for slot, mailbox in self.guarded:
            if not mailbox.has_room():
                return slot
        return None


def must_run_inline(target: HandlerSlot, chain: tuple[HandlerSlot, ...]) -> bool:
    """Whether asking ``target`` from this task would wait on ourselves: ``target`` executes up this
    task's stack, or is blocked (directly or through others) on a publish to a handler that does."""
    seen = 0
    slot: HandlerSlot | None = target
    while slot is not None and seen <= 64:
        if slot in chain:
            return True
        slot = slot.waiting_on
        seen += 1
    return False


class Dispatcher:
    """Routing table, in-flight accounting and statistics shared by every ``EventBus`` handle."""

    def __init__(
        self,
        handlers: tuple[RegisteredHandler, ...],
        providers: Mapping[type, ProviderSpec],
        event_bases: tuple[type[Event], ...],
        sinks: tuple[Sink, ...],
        new_future: FutureFactory,
        sync_limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        #: the actor class a handler slot makes (set by the terminal: the bus's ``HandlerActor``)
        self.actor_type: Callable[[HandlerSlot], Actor] | None = None
        self.slots = tuple(HandlerSlot(h, self) for h in handlers)
        self._slots_by_name = {slot.name: slot for slot in self.slots}
        #: the event loop's thread: emit_nowait from another (a sync handler's worker) hops over
        self.loop_thread = threading.get_ident()
        self.providers = providers
        self.event_bases = event_bases
        self.sinks = tuple(SinkSlot(sink, f"sink-{i}-{sink.name}") for i, sink in enumerate(sinks))
        self.new_future = new_future
        #: the worker threads of sync handlers: their own pool, so the bus's own thread work
        #: (sinks) never waits behind busy handlers
        self.sync_limiter = sync_limiter or anyio.CapacityLimiter(40)
        self.closed = True
        self.bus: Emitter | None = None
        #: where emit goes instead of the local mailboxes, when the terminal has a transport
        self.transport: Transport | None = None
        #: the route of each event type seen so far (see ``route``)
        self.routes: dict[type, Route] = {}
        self.drain_waiters: list[OneShot] = []
        self.pending = 0
        self.published = 0
        self.emitted = 0
        self.unrouted = 0
        self.dead_letters = 0
        self.sunk = 0

    def slot_named(self, name: str) -> HandlerSlot:
        """The slot of the handler named ``name`` (its child id under the handlers supervisor)."""
        return self._slots_by_name[name]

    def route(self, event: object) -> Route:
        """The route of ``event``'s type; raises TypeError for a non-event, BusClosedError when closed."""
        if self.closed:
            raise BusClosedError(
                "the bus is not running: use it inside `async with BusTerminal(...)`"
            )
        event_type = type(event)
        try:
            return self.routes[event_type]
        except KeyError:
            pass
        if not issubclass(event_type, self.event_bases):
            bases = " or ".join(base.__qualname__ for base in self.event_bases)
            if isinstance(event, type):
                name = event.__qualname__
                raise TypeError(
                    f"expected an instance of {bases}, got the class {name} itself: "
                    f"pass an instance, {name}(...)"
                )
            hint = ""
            if isinstance(event, (list, tuple)):
                hint = " (for several events at once, use emit_many / emit_many_nowait / sink_many)"
            raise TypeError(
                f"expected an instance of {bases}, got an instance of {event_type.__qualname__}{hint}"
            )
        # issubclass walks the MRO, so handlers of a base class get subclasses defined after
        # registration; a handler subscribed through several bases is still listed once
        if issubclass(event_type, NOTICE_EVENTS):
            # the bus's notices go only to handlers subscribed to a notice class itself, never
            # to a catch-all: one failing catch-all would otherwise crash on its own notices
            slots = tuple(s for s in self.slots if _subscribes_to_notice(s, event_type))
        else:
            slots = tuple(s for s in self.slots if s.registered.spec.accepts(event_type))
        route = Route(slots)
        self.routes[event_type] = route
        return route

    # -- in-flight accounting, for drain() --------------------------------------------------------

    def done_one(self) -> None:
        """An emitted delivery reached its end: processed, or dead-lettered."""
        self.pending -= 1
        if self.pending <= 0 and self.drain_waiters:
            self.wake_drainers()

    def release(self, slot: HandlerSlot) -> None:
        """The restart after a crash happened (or the handler stopped for good): what that crash
        dead-lettered no longer holds up drain()."""
        while slot.held:
            slot.held -= 1
            self.done_one()

    def wake_drainers(self) -> None:
        waiters, self.drain_waiters = self.drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def drained(self) -> None:
        while self.pending > 0:
            waiter = self.new_future()
            self.drain_waiters.append(waiter)
            await waiter

    def on_give_up(self, supervisor: str, error: BaseException) -> None:
        """A supervisor in the terminal's tree gave up: tell subscribers with ``SupervisorGaveUp``."""
        cause = error.__cause__
        text = describe_error(error) + (f" (last error: {describe_error(cause)})" if cause else "")
        logger.error(
            "supervisor %s gave up: %s", supervisor, text, extra={"supervisor": supervisor}
        )
        if self.closed:
            return
        self.notify(SupervisorGaveUp(supervisor, text))

    def notify(self, notice: Event, about: str | None = None) -> None:
        """Queue one of the bus's notices for every handler subscribed to its class, except the
        handler named ``about`` (a handler never hears about itself).

        Notices are never refused by a bound: they are queued even past a mailbox's capacity, so
        one subscriber with a small mailbox costs no other subscriber its notice. One that cannot
        be delivered at all (the bus is closed, the subscriber is stopped) is logged.
        """
        if self.closed:
            notices_logger.warning(
                "notice %r not delivered: the bus is closed", notice, extra={"handler": about}
            )
            return
        delivery = (notice, MessageContext.new())
        self.emitted += 1
        queued = 0
        for slot in self.route(notice).slots:
            if slot.name == about:
                continue
            mailbox = slot.mailbox
            assert mailbox is not None
            if mailbox.closed:
                notices_logger.warning(
                    "notice %r not delivered to handler %s: it is stopped",
                    notice,
                    slot.name,
                    extra={"handler": slot.name},
                )
                continue
            self.pending += 1
            queued += 1
            mailbox.put_over_capacity(delivery)
        if not queued:
            self.unrouted += 1

    def on_handler_terminated(self, notice: Terminated) -> None:
        """The handlers supervisor's ``on_child_stopped``: a handler's actor stopped for good."""
        slot = self._slots_by_name.get(notice.name)
        if slot is not None:
            slot.on_terminated(notice)

    # -- dead letters -----------------------------------------------------------------------------

    def on_dead_letter(self, letter: RuntimeDeadLetter) -> None:
        """Listener on the tree's dead letters: emitted deliveries become ``DeadLetter`` events."""
        message: Any = letter.message
        # an emitted delivery: a local emit, or (event, context) (a notice, headers); a publish's
        # payload (a 3-tuple or a bare event) is failed to its publisher, a transport's Delivery
        # goes to the transport
        if type(message) is Emitted or (type(message) is tuple and len(message) == 2):
            crashed = self._slots_by_name.get(letter.recipient)
            if letter.reason is DeadLetterReason.CRASHED and crashed is not None:
                # the actor restarts next (and says so with HandlerRestarted): drain() waits for it
                crashed.held += 1
            else:
                self.done_one()
            event = message.event if type(message) is Emitted else message[0]
            context = delivery_context(message)
            self.dead_letters += 1
            error = describe_error(letter.error) if letter.error is not None else ""
            reason = _REASONS[letter.reason]
            if isinstance(event, NOTICE_EVENTS) or self.closed:
                # a dead letter about a notice would loop: it is only logged
                notices_logger.warning(
                    "%s: %r to handler %s dead-lettered (%s) %s",
                    reason,
                    event,
                    letter.recipient,
                    error,
                    "" if not self.closed else "after the bus closed",
                    extra={
                        "handler": letter.recipient,
                        "message_id": context.message_id,
                        "attempt": letter.attempts,
                    },
                )
                return
            notice = DeadLetter(letter.recipient, event, context, error, letter.attempts, reason)
            self.notify(notice, about=letter.recipient)


def _subscribes_to_notice(slot: HandlerSlot, notice_type: type) -> bool:
    """Whether ``slot`` subscribes to ``notice_type`` through a notice class (not a base of all)."""
    return any(
        issubclass(notice_type, sub) and issubclass(sub, NOTICE_EVENTS)
        for sub in slot.registered.spec.subscriptions
    )

"""EventBus: the handle handlers and endpoints use to publish, emit and sink events."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from threading import get_ident
from typing import TYPE_CHECKING, Generic, TypeVar, final

import anyio

from actors import (
    ActorStoppedError,
    Mailbox,
    MailboxFullError as ActorMailboxFullError,
    RequestDroppedError,
)
from actors._mailbox import Request
from bus._codec import JSON
from bus._dispatch import CURRENT_CHAIN, HandlerSlot, must_run_inline
from bus._errors import (
    BusClosedError,
    BusError,
    HandlerStoppedError,
    MailboxFullError,
    SinkUnsetError,
)
from bus._events import Event, MessageContext, check_headers, new_contexts

if TYPE_CHECKING:
    from bus._dispatch import Dispatcher


E = TypeVar("E", bound=Event)


@final
class EventBus(Generic[E]):
    """Publish (awaited, in registration order), emit (fire-and-forget) and sink (durable) events.

    ``terminal.bus`` starts root messages; the bus a handler receives carries that handler's message
    context, so what it sends is causally linked (same ``correlation_id``, ``causation_id`` = the
    handled message's id). ``headers`` given to a call are added to the new message's context.

    Generic in the events it carries, as Lihil's is (``EventBus[Any]``, ``EventBus[TodoEvent]``);
    a handler parameter annotated ``EventBus`` or ``EventBus[...]`` receives the bus.

    A bus belongs to the event loop its terminal runs in: every method called from another thread
    or loop raises `BusError` saying what to use instead, except ``emit_nowait`` from a worker
    thread of that loop (a sync handler's), which hops over to the loop.
    """

    __slots__ = ("_context", "_dispatcher")

    def __init__(self, dispatcher: Dispatcher, context: MessageContext | None = None) -> None:
        self._dispatcher = dispatcher
        self._context = context

    @property
    def context(self) -> MessageContext | None:
        """The message this handle was given for (None for the terminal's root handle)."""
        return self._context

    def _new_context(
        self, headers: Mapping[str, str] | None, message_id: str | None = None
    ) -> MessageContext:
        parent = self._context
        if parent is None:
            return MessageContext.new(headers, message_id=message_id)
        return parent.caused(headers, message_id=message_id)

    async def publish(self, event: E, *, headers: Mapping[str, str] | None = None) -> None:
        """Deliver ``event`` to each subscribed handler in registration order, awaiting each one's
        completion before the next. The first handler exception is raised here as itself; later
        handlers do not get the event. No retries (that is ``emit``'s business)."""
        dispatcher = self._dispatcher
        if get_ident() != dispatcher.loop_thread:
            raise _foreign_thread("publish")
        route = dispatcher.route(event)
        if not route.slots:
            if headers is not None:
                check_headers(headers)  # refused whether anyone listens or not
            dispatcher.published += 1
            dispatcher.unrouted += 1
            return
        context = self._new_context(headers)  # bad headers raise here, before counting
        dispatcher.published += 1
        chain = CURRENT_CHAIN.get()
        if chain:
            await self._publish_nested(route.slots, event, context, chain)
            return
        payload = (event, context, None)
        new_future = dispatcher.new_future
        for slot in route.slots:
            await _ask(slot, Request(payload, new_future()))

    async def _publish_nested(
        self,
        slots: tuple[HandlerSlot, ...],
        event: Event,
        context: MessageContext,
        chain: tuple[HandlerSlot, ...],
    ) -> None:
        """``publish`` from inside a handler: a handler that is busy up this task's stack, or blocked
        (directly or through others) on a handler that is, runs inline here instead of deadlocking."""
        payload = (event, context, None)
        waiter = chain[0]
        for slot in slots:
            if must_run_inline(slot, chain):
                actor = slot.actor
                if actor is not None:
                    token = CURRENT_CHAIN.set((*chain, slot))
                    try:
                        await actor.handle(event, context)
                    finally:
                        CURRENT_CHAIN.reset(token)
                    continue
            waiter.waiting_on = slot
            try:
                await _ask(slot, Request(payload, self._dispatcher.new_future()))
            finally:
                waiter.waiting_on = None

    async def emit(self, event: E, *, headers: Mapping[str, str] | None = None) -> None:
        """Queue ``event`` for each subscribed handler and return before they run. Awaits only for
        room in a full bounded mailbox (backpressure). Failures never reach the emitter: the handler's
        policy retries the message in place, then dead-letters it as a ``DeadLetter`` event."""
        dispatcher = self._dispatcher
        if get_ident() != dispatcher.loop_thread:
            raise _foreign_thread("emit")
        route = dispatcher.route(event)
        transport = dispatcher.transport
        if transport is not None and transport.carries(event):
            # to the handlers of every process, this one's included, through the transport
            context = self._new_context(headers)  # bad headers raise here, before counting
            dispatcher.emitted += 1
            await transport.emit(event, context)
            return
        if not route.slots:
            if headers is not None:
                check_headers(headers)  # refused whether anyone listens or not
            dispatcher.emitted += 1
            dispatcher.unrouted += 1
            return
        delivery = (event, self._new_context(headers))  # bad headers raise here, before counting
        dispatcher.emitted += 1
        for guarded, capacity in route.room_checks:
            if len(guarded.queue) >= capacity:
                break
        else:
            # every mailbox has room (or drops rather than refuses): nothing here waits or raises
            dispatcher.pending += len(route.mailboxes)
            for mailbox_with_room in route.mailboxes:
                mailbox_with_room.put_nowait(delivery)
            return
        chain = CURRENT_CHAIN.get()
        for slot in route.slots:
            mailbox = slot.mailbox
            assert mailbox is not None
            dispatcher.pending += 1
            try:
                if chain and slot.full_under_backpressure() and must_run_inline(slot, chain):
                    # waiting for room would wait on ourselves (an emit to our own full mailbox,
                    # or to a handler blocked on us): queue it over capacity instead
                    mailbox.put_over_capacity(delivery)
                    continue
                await mailbox.put(delivery)
            except ActorMailboxFullError as exc:
                dispatcher.done_one()
                raise MailboxFullError(str(exc)) from None
            except BaseException:
                dispatcher.done_one()
                raise

    def emit_nowait(self, event: E, *, headers: Mapping[str, str] | None = None) -> None:
        """``emit`` without waiting: raises ``MailboxFullError`` (and queues nothing) when a
        subscribed handler's bounded mailbox is full under backpressure (or overflow ``fail``).

        Thread-safe from a sync (``def``) handler's worker thread: there it hops to the event loop
        and returns once the event is queued."""
        dispatcher = self._dispatcher
        if get_ident() != dispatcher.loop_thread:
            self._emit_from_thread(event, headers)
            return
        route = dispatcher.route(event)
        transport = dispatcher.transport
        if transport is not None and transport.carries(event):
            context = self._new_context(headers)  # bad headers raise here, before counting
            dispatcher.emitted += 1
            transport.emit_nowait(event, context)
            return
        for guarded, capacity in route.room_checks:
            if len(guarded.queue) >= capacity:
                full = route.first_full()
                assert full is not None
                raise MailboxFullError(f"mailbox of handler {full.name!r} is full")
        mailboxes = route.mailboxes
        if not mailboxes:
            if headers is not None:
                check_headers(headers)  # refused whether anyone listens or not
            dispatcher.emitted += 1
            dispatcher.unrouted += 1
            return
        delivery = (event, self._new_context(headers))  # bad headers raise here, before counting
        dispatcher.emitted += 1
        # every mailbox had room (or drops rather than refuses), so none of these raises
        dispatcher.pending += len(mailboxes)
        for mailbox in mailboxes:
            mailbox.put_nowait(delivery)

    def _emit_from_thread(self, event: E, headers: Mapping[str, str] | None) -> None:
        try:
            token = anyio.lowlevel.current_token()
        except Exception:  # noqa: BLE001 - no event loop runs in this thread: the expected case
            token = None
        if token is not None:
            raise BusError(
                "emit_nowait was called from another event loop than the bus's: a bus belongs "
                "to the loop its BusTerminal runs in; hand the event over with "
                "anyio.from_thread.run_sync(bus.emit_nowait, event) from a worker thread of "
                "that loop, or run your code in it"
            )
        try:
            anyio.from_thread.run_sync(functools.partial(self.emit_nowait, event, headers=headers))
        except RuntimeError as exc:
            if "worker thread" not in str(exc) and "event loop" not in str(exc):
                raise
            raise BusError(
                "emit_nowait was called from a thread the bus does not know: call it from the "
                "event loop, or from a sync handler (which runs in an AnyIO worker thread)"
            ) from exc

    async def sink(
        self,
        event: E,
        *,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> MessageContext:
        """Hand ``event`` to every configured sink and return its context once each stored it
        durably.

        ``message_id`` is the caller's idempotency key: a call made again with the same id (say
        after a timeout, or a crash, lost the acknowledgement) is stored once, also across
        restarts. By default the message gets a fresh id; the context returned carries it.

        The event is checked at the call: one that would not read back equal from storage (see
        `Codec.check_round_trip`) raises `TypeError` here and is not stored. Concurrent calls are
        written together (group commit); should the storage refuse this event alone, its error
        is raised here while the others are stored. Raises ``SinkUnsetError`` when the terminal
        has no sink, ``BusClosedError`` when it is not running (or stopped before the event was
        stored: it may or may not be stored; call again with the same ``message_id``)."""
        dispatcher = self._dispatcher
        if get_ident() != dispatcher.loop_thread:
            raise _foreign_thread("sink")
        dispatcher.route(event)
        sinks = dispatcher.sinks
        if not sinks:
            raise SinkUnsetError("no sink is configured: pass sinks=[...] to BusTerminal")
        context = self._new_context(headers, message_id)
        JSON.check_round_trip(event)
        pair = (event, context)
        if len(sinks) == 1:
            # the hot path: one future, resolved by the batch's commit
            batch = sinks[0].submit_one(pair)
            waiter = dispatcher.new_future()
            batch.waiters.append(waiter)
            await waiter
            if batch.errors or batch.closed is not None:
                batch.check([context.message_id])
        else:
            for batch in [slot.submit([pair]) for slot in sinks]:
                await batch.outcome([context.message_id], dispatcher.new_future)
        dispatcher.sunk += 1
        return context

    async def sink_many(
        self,
        events: Iterable[E],
        *,
        message_ids: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[MessageContext]:
        """``sink`` for several events at once: they join one batch (one transaction per sink,
        up to the batch limit), and their contexts (sharing the call's timestamp) are returned in
        order once all are stored.

        Every event is checked before any is accepted: a bad one raises `TypeError` naming its
        index and nothing is stored. ``message_ids``, if given, holds one idempotency key per
        event. If the storage refuses some of them on their own, the others are stored and the
        first refused one's error is raised."""
        dispatcher = self._dispatcher
        if get_ident() != dispatcher.loop_thread:
            raise _foreign_thread("sink_many")
        if dispatcher.closed:
            raise BusClosedError("the bus is not running: use it inside `async with BusTerminal(...)`")
        sinks = dispatcher.sinks
        if not sinks:
            raise SinkUnsetError("no sink is configured: pass sinks=[...] to BusTerminal")
        events = list(events)
        if message_ids is not None:
            message_ids = list(message_ids)
            if len(message_ids) != len(events):
                msg = f"got {len(message_ids)} message_ids for {len(events)} events"
                raise ValueError(msg)
        route = dispatcher.route
        for index, event in enumerate(events):
            try:
                route(event)
            except TypeError as error:
                raise TypeError(f"events[{index}]: {error}") from error
        contexts = new_contexts(self._context, len(events), headers, message_ids)
        JSON.check_round_trip_many(events)
        pairs: list[tuple[Event, MessageContext]] = list(zip(events, contexts, strict=True))
        if not pairs:
            return []
        ids = [context.message_id for _, context in pairs]
        for batch in [slot.submit(pairs) for slot in sinks]:
            await batch.outcome(ids, dispatcher.new_future)
        dispatcher.sunk += len(pairs)
        return contexts

    def __repr__(self) -> str:
        return f"<EventBus context={self._context!r}>"


async def _ask(slot: HandlerSlot, request: Request) -> None:
    """Send a publish request to ``slot``'s actor and await its completion."""
    mailbox = slot.mailbox
    assert mailbox is not None
    try:
        if mailbox.has_room():
            mailbox.put_nowait(request)
        else:
            await mailbox.put(request)
    except ActorMailboxFullError as exc:
        raise MailboxFullError(str(exc)) from None
    try:
        await request.reply
    except ActorStoppedError as exc:
        if exc is slot.last_error:
            raise  # the handler's own exception, raised as itself
        if mailbox.closed:
            raise HandlerStoppedError(f"handler {slot.name!r} is stopped for good") from exc
        raise HandlerStoppedError(
            f"handler {slot.name!r} was stopped while it processed the event"
        ) from exc
    except RequestDroppedError as exc:
        raise MailboxFullError(str(exc)) from None
    except BaseException:
        # the caller gave up (cancelled, timed out): a request still queued is withdrawn, so it
        # never runs after its caller was told it failed; one already running completes
        _withdraw(mailbox, request)
        raise


def _withdraw(mailbox: Mailbox, request: Request) -> None:
    queue = mailbox.queue
    for index, item in enumerate(queue):
        if item is request:
            del queue[index]
            mailbox.took_one()  # a sender waiting for room may have it now
            return


def _foreign_thread(method: str) -> BusError:
    return BusError(
        f"bus.{method} was called from a thread that is not the bus's event loop: a bus belongs "
        "to the loop its BusTerminal runs in. From a sync handler or another worker thread of "
        f"that loop use anyio.from_thread.run(bus.{method}, event) (or bus.emit_nowait(event)); "
        "from another thread or event loop, hand the event to the bus's loop yourself"
    )

"""EventBus: the handle handlers and endpoints use to publish, emit and sink events."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import groupby, repeat
from threading import get_ident
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, final

import anyio

from actors import (
    ActorStoppedError,
    Mailbox,
    MailboxFullError as ActorMailboxFullError,
    Request,
    RequestDroppedError,
)
from bus import _events
from bus._codec import JSON
from bus._dispatch import CURRENT_CHAIN, Bounded, HandlerSlot, Route, must_run_inline
from bus._errors import (
    BusClosedError,
    BusError,
    HandlerStoppedError,
    MailboxFullError,
    SinkUnsetError,
)
from bus._events import (
    Emitted,
    Event,
    MessageContext,
    Stamp,
    _now_ns,
    check_headers,
    new_contexts,
)
from bus._handlers import BusHandle

if TYPE_CHECKING:
    from bus._dispatch import Dispatcher


E = TypeVar("E", bound=Event)


@final
class EventBus(BusHandle, Generic[E]):
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
        route = dispatcher.routes.get(type(event))  # as in emit_nowait
        if route is None or dispatcher.closed:
            route = dispatcher.route(event)
        if not route.slots:
            if headers is not None:
                check_headers(headers)  # refused whether anyone listens or not
            dispatcher.published += 1
            dispatcher.unrouted += 1
            return
        # bad headers raise here, before counting; the stamp is built inline (see bus._events.Stamp)
        context: MessageContext | Stamp | None
        if headers is not None:
            context = self._new_context(headers)
        elif route.bare:
            context = None  # only handlers that take the event alone: none can read a context
        else:
            context = (next(_events._counter), _now_ns(), self._context)
        dispatcher.published += 1
        chain = CURRENT_CHAIN.get()
        if chain:
            await self._publish_nested(route, event, context, chain)
            return
        # handlers that take the event alone get it bare (their actor awaits handler(event) as is)
        payload = event if route.bare else (event, context, None)
        new_future = dispatcher.new_future
        mask = route.bare_mask  # nonzero only for a route that mixes the two kinds
        for slot in route.slots:
            if mask:
                request = Request(event if mask & 1 else payload, new_future())
                mask >>= 1
            else:
                request = Request(payload, new_future())
            mailbox = slot.mailbox
            if mailbox is None or not mailbox.offer(request):
                await _ask(slot, request)
                continue
            # _ask inlined for the common case (room in the mailbox): one coroutine layer less
            try:
                await request.reply
            except BaseException as exc:
                _reply_failed(slot, mailbox, request, exc)
                raise

    async def _publish_nested(
        self,
        route: Route,
        event: Event,
        context: MessageContext | Stamp | None,
        chain: tuple[HandlerSlot, ...],
    ) -> None:
        """``publish`` from inside a handler: a handler that is busy up this task's stack, or blocked
        (directly or through others) on a handler that is, runs inline here instead of deadlocking."""
        if context is None:  # a bare publish (see publish): stamped all the same, off the hot path
            context = (next(_events._counter), _now_ns(), self._context)
        payload = (event, context, None)
        waiter = chain[0]
        for index, slot in enumerate(route.slots):
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
                bare = route.bare or route.bare_mask >> index & 1  # as in publish
                request = Request(event if bare else payload, self._dispatcher.new_future())
                await _ask(slot, request)
            finally:
                waiter.waiting_on = None

    async def emit(self, event: E, *, headers: Mapping[str, str] | None = None) -> None:
        """Queue ``event`` for each subscribed handler and return before they run. Awaits only for
        room in a full bounded mailbox (backpressure). Failures never reach the emitter: the handler's
        policy retries the message in place, then dead-letters it as a ``DeadLetter`` event."""
        dispatcher = self._dispatcher
        if get_ident() != dispatcher.loop_thread:
            raise _foreign_thread("emit")
        route = dispatcher.routes.get(type(event))  # as in emit_nowait
        if route is None or dispatcher.closed:
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
        # bad headers raise here, before counting
        delivery: Emitted | tuple[Event, MessageContext]
        if headers is None:  # as in emit_nowait
            delivery = Emitted(event, next(_events._counter), _now_ns(), self._context)
        else:
            delivery = (event, self._new_context(headers))
        dispatcher.emitted += 1
        for guarded in route.room_checks:
            if len(guarded.queue) >= guarded.capacity:
                break
        else:
            # every mailbox has room (or drops rather than refuses): nothing here waits or raises
            dispatcher.pending += len(route.mailboxes)
            for mailbox_with_room in route.mailboxes:
                mailbox_with_room.put_nowait(delivery)
            return
        await self._emit_waiting(route, delivery)

    async def emit_many(
        self, events: Iterable[E], *, headers: Mapping[str, str] | None = None
    ) -> None:
        """``emit`` each of ``events`` in order: the same as awaiting ``emit`` for each in turn
        (per-handler order, backpressure, retries and dead letters alike), at a lower cost per event.

        Every item is checked before any is queued: one that is not an event raises `TypeError`
        and queues nothing. Each event is its own message (its own id and timestamp); ``headers``
        go with every one of them. Should a mailbox with overflow ``fail`` refuse one, the
        `MailboxFullError` is raised and the events before it stay queued.
        """
        dispatcher = self._dispatcher
        if get_ident() != dispatcher.loop_thread:
            raise _foreign_thread("emit_many")
        batch, routes = self._routes_of(events)
        if headers is not None:
            check_headers(headers)  # refused before anything is queued or counted
        dispatcher.emitted += len(batch)
        transport = dispatcher.transport
        parent = self._context
        start = 0
        # runs of consecutive events of one type (one route), queued a run at a time: order per
        # handler is the batch's, as if each event were emitted in turn
        for route, group in groupby(routes):
            end = start + len(list(group))
            run = batch[start:end]
            start = end
            mailboxes = route.mailboxes
            room = 0
            if transport is None and headers is None and mailboxes:
                room = len(run)
                for guarded in route.room_checks:
                    room = min(room, guarded.capacity - len(guarded.queue))
                if room > 0:
                    # the events that fit now: each its own message, queued together
                    deliveries = _stamped(run if room == len(run) else run[:room], parent)
                    dispatcher.pending += len(mailboxes) * len(deliveries)
                    for mailbox in mailboxes:
                        mailbox.put_many(deliveries)
                    if room == len(run):
                        continue
            for event in run[max(room, 0) :]:
                await self._emit_one(event, route, headers)
        # let the handlers run before the caller queues its next batch: their mailboxes stay short
        # (and warm in the cache); shielded, so a batch that was queued is never reported cancelled
        await anyio.lowlevel.cancel_shielded_checkpoint()

    async def _emit_one(self, event: E, route: Route, headers: Mapping[str, str] | None) -> None:
        """One event of ``emit_many`` that did not go with its run (a transport, headers, or no room
        in a mailbox): exactly what ``emit`` does with it, after the call's checks and counts."""
        dispatcher = self._dispatcher
        transport = dispatcher.transport
        if transport is not None and transport.carries(event):
            await transport.emit(event, self._new_context(headers))
            return
        mailboxes = route.mailboxes
        if not mailboxes:
            dispatcher.unrouted += 1
            return
        delivery: Emitted | tuple[Event, MessageContext]
        if headers is None:
            delivery = Emitted(event, next(_events._counter), _now_ns(), self._context)
        else:
            delivery = (event, self._new_context(headers))
        for guarded in route.room_checks:
            if len(guarded.queue) >= guarded.capacity:
                await self._emit_waiting(route, delivery)
                return
        dispatcher.pending += len(mailboxes)
        for mailbox in mailboxes:
            mailbox.put_nowait(delivery)

    def _routes_of(self, events: Iterable[E]) -> tuple[Sequence[E], list[Route]]:
        """The events of a batch call, with their routes: raises before anything is queued."""
        batch = events if isinstance(events, list | tuple) else list(events)
        dispatcher = self._dispatcher
        route = dispatcher.route
        if dispatcher.closed:
            return batch, [route(event) for event in batch]
        # the cached route of each type (looked up in C), else route() (which raises for a non-event)
        routes: list[Route | None] = list(map(dispatcher.routes.get, map(type, batch)))
        if None in routes:
            routes = [found or route(event) for found, event in zip(routes, batch, strict=True)]
        return batch, routes  # type: ignore[return-value]  # no None left

    async def _emit_waiting(
        self, route: Route, delivery: Emitted | tuple[Event, MessageContext]
    ) -> None:
        """The slow path of ``emit``: some mailbox is full, so wait for room in each in turn."""
        dispatcher = self._dispatcher
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
        # the route cached for this type, looked up here rather than through route() (one call
        # less per event); route() raises for a closed bus or a non-event
        route = dispatcher.routes.get(type(event))
        if route is None or dispatcher.closed:
            route = dispatcher.route(event)
        transport = dispatcher.transport
        if transport is not None and transport.carries(event):
            context = self._new_context(headers)  # bad headers raise here, before counting
            dispatcher.emitted += 1
            transport.emit_nowait(event, context)
            return
        for guarded in route.room_checks:
            if len(guarded.queue) >= guarded.capacity:
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
        # bad headers raise here, before counting
        delivery: Emitted | tuple[Event, MessageContext]
        if headers is None:
            # the hot path of every emit_nowait: an Emitted, which the cyclic GC does not track
            delivery = Emitted(event, next(_events._counter), _now_ns(), self._context)
        else:
            delivery = (event, self._new_context(headers))
        dispatcher.emitted += 1
        # every mailbox had room (or drops rather than refuses), so none of these raises
        dispatcher.pending += len(mailboxes)
        for mailbox in mailboxes:
            mailbox.put_nowait(delivery)

    def emit_many_nowait(
        self, events: Iterable[E], *, headers: Mapping[str, str] | None = None
    ) -> None:
        """``emit_nowait`` each of ``events`` in order, all or nothing: when the batch does not
        fit in a subscribed handler's bounded mailbox under backpressure (or overflow ``fail``),
        raises ``MailboxFullError`` and queues none of them; an item that is not an event raises
        `TypeError` and queues nothing. Each event is its own message (its own id and timestamp).

        Thread-safe from a sync (``def``) handler's worker thread, as ``emit_nowait`` is."""
        dispatcher = self._dispatcher
        if get_ident() != dispatcher.loop_thread:
            self._from_thread(
                "emit_many_nowait",
                functools.partial(self.emit_many_nowait, list(events), headers=headers),
            )
            return
        batch, routes = self._routes_of(events)
        if headers is not None:
            check_headers(headers)  # refused before anything is queued or counted
        transport = dispatcher.transport
        # runs of consecutive events of one route, as in emit_many
        runs = [(route, len(list(group))) for route, group in groupby(routes)]
        added: dict[Bounded, int] = {}
        start = 0
        for route, count in runs:
            first, start = start, start + count
            room_checks = route.room_checks
            if not room_checks:
                continue
            taken = count
            if transport is not None:
                # a transport carries some events elsewhere: only the others take room here
                taken = sum(1 for event in batch[first:start] if not transport.carries(event))
            for guarded in room_checks:
                total = added.get(guarded, 0) + taken
                if len(guarded.queue) + total > guarded.capacity:
                    name = next(
                        slot.name for slot, mailbox in route.guarded if cast(object, mailbox) is guarded
                    )
                    raise MailboxFullError(
                        f"mailbox of handler {name!r} has no room for the {len(batch)} events"
                    )
                added[guarded] = total
        dispatcher.emitted += len(batch)
        parent = self._context
        start = 0
        for route, count in runs:
            end = start + count
            run = batch[start:end]
            start = end
            mailboxes = route.mailboxes
            if not mailboxes and transport is None:
                dispatcher.unrouted += len(run)
                continue
            if transport is None and headers is None:
                # the batch fits (or the mailboxes drop rather than refuse), so none of these raises
                deliveries = _stamped(run, parent)
                dispatcher.pending += len(mailboxes) * len(deliveries)
                for mailbox in mailboxes:
                    mailbox.put_many(deliveries)
                continue
            for event in run:
                if transport is not None and transport.carries(event):
                    transport.emit_nowait(event, self._new_context(headers))
                    continue
                if not mailboxes:
                    dispatcher.unrouted += 1
                    continue
                delivery = (
                    Emitted(event, next(_events._counter), _now_ns(), parent)
                    if headers is None
                    else (event, self._new_context(headers))
                )
                dispatcher.pending += len(mailboxes)
                for mailbox in mailboxes:
                    mailbox.put_nowait(delivery)

    def _emit_from_thread(self, event: E, headers: Mapping[str, str] | None) -> None:
        self._from_thread("emit_nowait", functools.partial(self.emit_nowait, event, headers=headers))

    @staticmethod
    def _from_thread(method: str, call: Callable[[], None]) -> None:
        """Run ``call`` (a ``*_nowait`` method) in the bus's loop from one of its worker threads."""
        try:
            token = anyio.lowlevel.current_token()
        except Exception:  # noqa: BLE001 - no event loop runs in this thread: the expected case
            token = None
        if token is not None:
            raise BusError(
                f"{method} was called from another event loop than the bus's: a bus belongs "
                "to the loop its BusTerminal runs in; hand the events over with "
                f"anyio.from_thread.run_sync(bus.{method}, ...) from a worker thread of "
                "that loop, or run your code in it"
            )
        try:
            anyio.from_thread.run_sync(call)
        except RuntimeError as exc:
            if "worker thread" not in str(exc) and "event loop" not in str(exc):
                raise
            raise BusError(
                f"{method} was called from a thread the bus does not know: call it from the "
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


def _stamped(events: Sequence[Any], parent: MessageContext | None) -> list[Emitted]:
    """The local deliveries of ``events``, each its own message: an `Emitted` as ``emit`` builds
    it, stamps drawn in order, built in C."""
    return list(map(Emitted, events, _events._counter, iter(_now_ns, None), repeat(parent)))


async def _ask(slot: HandlerSlot, request: Request) -> None:
    """Send a publish request to ``slot``'s actor and await its completion."""
    mailbox = slot.mailbox
    assert mailbox is not None
    try:
        if not mailbox.offer(request):
            await mailbox.put(request)
    except ActorMailboxFullError as exc:
        raise MailboxFullError(str(exc)) from None
    try:
        await request.reply
    except BaseException as exc:
        _reply_failed(slot, mailbox, request, exc)
        raise


def _reply_failed(slot: HandlerSlot, mailbox: Mailbox, request: Request, exc: BaseException) -> None:
    """A publish request's reply failed with ``exc`` (called in its ``except`` block): raise what
    ``publish`` raises instead, or return for ``exc`` to be raised as itself."""
    if isinstance(exc, ActorStoppedError):
        if exc is slot.last_error:
            return  # the handler's own exception, raised as itself
        if mailbox.closed:
            raise HandlerStoppedError(f"handler {slot.name!r} is stopped for good") from exc
        raise HandlerStoppedError(
            f"handler {slot.name!r} was stopped while it processed the event"
        ) from exc
    if isinstance(exc, RequestDroppedError):
        raise MailboxFullError(str(exc)) from None
    # the caller gave up (cancelled, timed out): a request still queued is withdrawn, so it
    # never runs after its caller was told it failed; one already running completes
    _withdraw(mailbox, request)


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

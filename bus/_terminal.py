"""BusTerminal: builds the supervision tree from the registries and runs it for an ``async with``."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Generic, Self, TypeVar

import anyio
import attrs

from actors import ActorRef, MailboxSpec, Overflow, Redelivery, current_future_factory
from bus._bus import EventBus
from bus._dependencies import check_resolvable
from bus._dispatch import CURRENT_CHAIN, Dispatcher, HandlerSlot
from bus._errors import BusClosedError, BusError
from bus._events import NOTICE_EVENTS, Event
from bus._handler_actor import HandlerActor
from bus._policy import HandlerPolicy
from bus._registry import MessageRegistry, merge_registries
from bus._restarts import HandlerBackoff
from bus._sink_actor import SinkActor
from bus.sinks._base import Sink
from bus.transport._base import Transport
from supervisor import (
    INFINITY,
    Backoff,
    ChildNotFoundError,
    ChildSpec,
    ChildStartError,
    Intensity,
    Restart,
    Supervisor,
    SupervisorSpec,
    TreeSnapshot,
    open_supervisor,
)

E = TypeVar("E", bound=Event)

#: restart backoff of a failing sink: quick first retry, capped, reset after a quiet minute
SINK_BACKOFF = Backoff(min=0.05, max=5.0, factor=2.0, jitter=0.2, reset_after=60.0)


@attrs.frozen
class BusStatistics:
    """A snapshot of the bus's counters. ``sunk`` counts the events ``sink``/``sink_many``
    acknowledged (stored by every configured sink), once per event whatever the number of sinks.

    ``published`` and ``emitted`` count events, once per call's event (``emit_many`` counts each),
    when the call gets past its checks: one refused at the call (a bad event or headers, a closed
    bus, ``emit_nowait`` on a full mailbox) is not counted, while an ``emit`` cancelled as it
    waited for room in a full mailbox is (it may have reached some of its handlers already).
    ``unrouted`` counts those of them nobody subscribed to; ``in_flight`` the emitted deliveries
    (one per subscribed handler) not yet processed or dead-lettered, what ``drain`` waits for;
    ``dead_letters`` the deliveries dead-lettered, whatever the reason."""

    published: int
    emitted: int
    unrouted: int
    in_flight: int
    dead_letters: int
    sunk: int


class BusTerminal(Generic[E]):
    """Runs the bus: one supervised actor per handler, sink actors, and your own children.

    The tree::

        bus (one_for_one; children start in this order and stop in reverse)
        ├─ sinks    (one_for_one, restart with backoff, never gives up)
        ├─ handlers (one_for_one; each handler restarts with backoff, stops on a crash loop)
        ├─ your children (``children=[ChildSpec(...)]``)
        └─ transport (with ``transport=``: its writer and one consumer per handler, restarted with
           backoff; started last and stopped first)

    With ``transport=`` (e.g. ``bus.transport.RedisStreams``), ``emit`` and ``emit_nowait`` go
    through it to the handlers of every process; ``publish`` and ``sink`` stay in this process.

    Leaving the block drains what is queued (at most ``shutdown_timeout`` seconds), then stops the tree
    in reverse order. Start-up errors (an unresolvable dependency, a provider that raises, an unwritable
    sink) are raised from ``__aenter__`` as themselves.

    Generic in the event base of its registries, as Lihil's is (``BusTerminal[TodoEvent]``).
    ``sync_handler_threads`` (default 40) bounds how many sync (``def``) handlers run at once, each
    in a worker thread of the terminal's own pool, apart from the threads the bus's own I/O (sinks)
    uses, so busy sync handlers never starve it.
    """

    def __init__(
        self,
        *registries: MessageRegistry[E],
        sinks: Iterable[Sink] = (),
        children: Sequence[ChildSpec] = (),
        shutdown_timeout: float = 10.0,
        name: str = "bus",
        sync_handler_threads: int = 40,
        transport: Transport | None = None,
    ) -> None:
        if not registries:
            registries = (MessageRegistry(),)  # type: ignore[assignment]
        for registry in registries:
            if not isinstance(registry, MessageRegistry):
                raise TypeError(f"BusTerminal takes MessageRegistry instances, got {registry!r}")
        self._registries = registries
        self._sinks = tuple(sinks)
        for sink in self._sinks:
            if not isinstance(sink, Sink):
                raise TypeError(f"sinks must be bus.sinks.Sink instances, got {sink!r}")
        self._children = tuple(children)
        if transport is not None and not isinstance(transport, Transport):
            raise TypeError(f"transport must be a bus.transport.Transport, got {transport!r}")
        self._transport = transport
        if not shutdown_timeout >= 0:
            raise ValueError(f"shutdown_timeout must be >= 0 seconds, got {shutdown_timeout!r}")
        self._shutdown_timeout = shutdown_timeout
        if isinstance(sync_handler_threads, bool) or not isinstance(sync_handler_threads, int):
            raise TypeError(f"sync_handler_threads must be an int, got {sync_handler_threads!r}")
        if sync_handler_threads < 1:
            raise ValueError(f"sync_handler_threads must be >= 1, got {sync_handler_threads!r}")
        self._sync_handler_threads = sync_handler_threads
        self._name = name
        self._dispatcher: Dispatcher | None = None
        self._bus: EventBus[E] | None = None
        self._root: Supervisor | None = None
        self._last_root: Supervisor | None = None
        self._stack: AsyncExitStack | None = None
        #: set while ``__aenter__`` runs: a second task entering meanwhile must be refused too
        self._starting = False

    # -- the running terminal ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between a successful ``__aenter__`` and the start of ``__aexit__``."""
        return self._bus is not None

    @property
    def has_run(self) -> bool:
        """True once the terminal has been started (whether or not it still runs)."""
        return self._last_root is not None

    @property
    def bus(self) -> EventBus[E]:
        """The root ``EventBus`` handle (its messages start new conversations)."""
        if self._bus is None:
            raise BusClosedError("the terminal is not running: use `async with BusTerminal(...)`")
        return self._bus

    @property
    def supervisor(self) -> Supervisor:
        """The root supervisor: add your own actors with ``await terminal.supervisor.start_child()``."""
        if self._root is None:
            raise BusClosedError("the terminal is not running")
        return self._root

    def handler_ref(self, name: str) -> ActorRef:
        """The actor ref of handler ``name`` (its qualified name or its short name)."""
        slot = self._slot(name)
        assert slot.ref is not None
        return slot.ref

    async def drain(self) -> None:
        """Return when every emitted message has been processed or dead-lettered, nested emits
        included: every handler mailbox empty and no handler running.

        Called from inside a handler (or a task it started) it raises `BusError` at once: it would
        wait for that handler, which waits for it."""
        chain = CURRENT_CHAIN.get()
        if chain:
            msg = (
                f"drain() called from inside handler {chain[-1].name!r}: drain waits until no "
                "handler is running, this one included, so it would wait for itself. Drain "
                "from outside the handlers, or publish (which waits for the handlers it reaches)"
            )
            raise BusError(msg)
        dispatcher = self._dispatcher
        if dispatcher is None:
            return
        if threading.get_ident() != dispatcher.loop_thread:
            msg = (
                "terminal.drain was called from a thread that is not the terminal's event loop: "
                "from a worker thread of that loop use anyio.from_thread.run(terminal.drain)"
            )
            raise BusError(msg)
        await dispatcher.drained()

    def snapshot(self) -> TreeSnapshot:
        """The whole supervision tree with restart counts, mailbox depths and processed/failed counts
        (after the terminal stopped: the tree as it was left, every node stopped)."""
        root = self._root or self._last_root
        if root is None:
            raise BusClosedError("the terminal has not run yet")
        return root.snapshot()

    def statistics(self) -> BusStatistics:
        """Counters: published, emitted, unrouted (nobody subscribed), in flight, dead letters, sunk."""
        d = self._dispatcher
        if d is None:
            return BusStatistics(0, 0, 0, 0, 0, 0)
        return BusStatistics(d.published, d.emitted, d.unrouted, d.pending, d.dead_letters, d.sunk)

    # -- lifecycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._stack is not None or self._starting:
            msg = (
                "this BusTerminal is already running (or starting): one terminal serves one "
                "`async with` block at a time; share its bus, or make another BusTerminal"
            )
            raise BusError(msg)
        self._starting = True
        try:
            return await self._start()
        finally:
            self._starting = False

    async def _start(self) -> Self:
        handlers, providers = merge_registries(*self._registries)
        check_resolvable(handlers, providers)
        # the bus's own notices (DeadLetter, ...) are deliverable whatever the event_base
        bases: tuple[type[Event], ...] = tuple(
            dict.fromkeys((*(r.event_base for r in self._registries), *NOTICE_EVENTS))
        )
        dispatcher = Dispatcher(
            handlers,
            providers,
            bases,
            self._sinks,
            current_future_factory(),
            anyio.CapacityLimiter(self._sync_handler_threads),
        )
        bus: EventBus[E] = EventBus(dispatcher)
        dispatcher.bus = bus
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            # a running terminal does not see later registrations: refuse them instead
            for registry in self._registries:
                registry._acquire()
                stack.callback(registry._release)
            for sink in self._sinks:
                # registered before opening: an open cancelled half-way is closed too
                stack.push_async_callback(_close_sink, sink)
                await sink.open()
            if self._transport is not None:
                # before the tree: an unreachable server fails the start as itself
                await self._transport.open()
                stack.push_async_callback(self._transport.close)
            # sinks start first and stop last: handlers may sink until they stop. Supervisors wait
            # for their children, each of which is bounded by its own shutdown timeout.
            children = (
                ChildSpec(
                    "sinks",
                    SupervisorSpec(self._sink_specs(dispatcher), intensity=None),
                    shutdown=INFINITY,
                ),
                ChildSpec(
                    "handlers",
                    SupervisorSpec(
                        self._handler_specs(dispatcher),
                        intensity=None,
                        # one callback for every handler that stops for good, not a watch each
                        on_child_stopped=dispatcher.on_handler_terminated,
                    ),
                    shutdown=INFINITY,
                ),
                *self._children,
            )
            start_error: BaseException | None = None
            try:
                root = await stack.enter_async_context(
                    open_supervisor(
                        children,
                        name=self._name,
                        intensity=Intensity(3, 5.0),
                        on_give_up=dispatcher.on_give_up,
                    )
                )
            except ChildStartError as exc:
                start_error = _start_cause(exc)
            if start_error is not None:
                # raised outside the except block, so that it keeps its own __cause__/__context__
                raise start_error
            stack.push_async_callback(self._close, dispatcher, root)
            handlers_sup = root.supervisor("handlers")
            for slot in dispatcher.slots:
                slot.ref = handlers_sup.ref(slot.name)
                slot.mailbox = slot.ref._mailbox
            sinks_sup = root.supervisor("sinks")
            for sink_slot in dispatcher.sinks:
                sink_slot.ref = sinks_sup.ref(sink_slot.name)
            root.dead_letters.subscribe(dispatcher.on_dead_letter)
            if self._transport is not None:
                await self._start_transport(self._transport, dispatcher, root)
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        dispatcher.closed = False
        self._dispatcher, self._bus, self._root, self._stack = dispatcher, bus, root, stack
        self._last_root = root
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        if stack is None:
            return None
        try:
            return await stack.__aexit__(exc_type, exc, tb)
        finally:
            self._bus = None
            self._root = None

    async def _start_transport(
        self, transport: Transport, dispatcher: Dispatcher, root: Supervisor
    ) -> None:
        # Started last, as a dynamic child, so it stops first: consumers find the handlers'
        # mailboxes in place, and stop feeding them before the handlers stop.
        root.dead_letters.subscribe(transport.on_dead_letter)
        spec = SupervisorSpec(transport.child_specs(dispatcher), intensity=None)
        start_error: BaseException | None = None
        try:
            await root.start_child(ChildSpec("transport", spec, shutdown=INFINITY))
        except ChildStartError as exc:
            start_error = _start_cause(exc)
        if start_error is not None:
            raise start_error  # as itself, with its own __cause__/__context__
        dispatcher.transport = transport

    async def _close(self, dispatcher: Dispatcher, root: Supervisor) -> None:
        timeout = self._shutdown_timeout
        deadline = anyio.current_time() + timeout
        try:
            with anyio.move_on_after(timeout):
                if dispatcher.transport is not None:
                    # no new entries while the handlers finish what they hold
                    await dispatcher.transport.quiesce()
                await dispatcher.drained()
                if dispatcher.transport is not None:
                    await dispatcher.transport.flush()
            # The transport and your children, then the handlers, stop now, while the bus and the
            # sinks run on: what they publish, emit or sink on their way out is accepted. Sinks
            # stop last.
            for info in reversed(root.which_children()):
                if info.id != "sinks":
                    with contextlib.suppress(ChildNotFoundError):
                        await root.terminate_child(info.id)
            dispatcher.closed = True
            # every `sink` call accepted is stored (retrying while the storage fails) until the
            # deadline; those still waiting then get BusClosedError below
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                for slot in dispatcher.sinks:
                    await slot.flushed()
        finally:
            # also when the exit is cancelled: the bus must not outlive the block, and no caller
            # may wait for ever on a sink that is about to stop
            dispatcher.closed = True
            for slot in dispatcher.sinks:
                slot.close("the terminal stopped before the sink stored the event")

    # -- building the tree ------------------------------------------------------------------------

    def _handler_specs(self, dispatcher: Dispatcher) -> list[ChildSpec]:
        specs = []
        # handlers of one policy share its mailbox and redelivery specs and its backoff (which
        # finds each handler's crash loop by the child id the supervisor gives it)
        shared: dict[HandlerPolicy, tuple[MailboxSpec, Redelivery, HandlerBackoff]] = {}
        dispatcher.actor_type = HandlerActor
        for slot in dispatcher.slots:
            policy = slot.registered.policy
            per_policy = shared.get(policy)
            if per_policy is None:
                per_policy = shared[policy] = (
                    MailboxSpec(policy.mailbox_capacity, Overflow(policy.overflow)),
                    Redelivery(policy.retries, policy.retry_delay),
                    HandlerBackoff(
                        min=policy.restart_backoff,
                        max=policy.restart_backoff_max,
                        factor=policy.restart_backoff_factor,
                        jitter=policy.restart_jitter,
                        loop_of=dispatcher.slot_named,
                    ),
                )
            mailbox, redelivery, backoff = per_policy
            specs.append(
                ChildSpec(
                    slot.name,
                    slot,
                    # transient: a handler that stops itself after a crash loop stays stopped
                    restart=Restart.TRANSIENT,
                    shutdown=policy.shutdown_timeout,
                    mailbox=mailbox,
                    redelivery=redelivery,
                    backoff=backoff,
                )
            )
        return specs

    def _sink_specs(self, dispatcher: Dispatcher) -> list[ChildSpec]:
        return [
            ChildSpec(slot.name, functools.partial(SinkActor, slot), backoff=SINK_BACKOFF)
            for slot in dispatcher.sinks
        ]

    def _slot(self, name: str) -> HandlerSlot:
        if self._dispatcher is None:
            raise BusClosedError("the terminal is not running")
        for slot in self._dispatcher.slots:
            if name in (slot.name, slot.registered.spec.qualname):
                return slot
        raise KeyError(f"no handler named {name!r}")


async def _close_sink(sink: Sink) -> None:
    """Close ``sink`` whatever happens around: a cancelled exit must not leak a file or connection."""
    with anyio.CancelScope(shield=True):
        await sink.close()


def _start_cause(error: BaseException) -> BaseException:
    """The original error behind nested ``ChildStartError``s (a provider's, a sink's)."""
    while isinstance(error, ChildStartError) and error.__cause__ is not None:
        error = error.__cause__
    return error

"""`Recorder`: wraps a registry's handlers to record every delivery and apply fault plans."""

from __future__ import annotations

import functools
import inspect
import operator
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.from_thread
import attrs

from bus import (
    BusTerminal,
    DeadLetter,
    Event,
    EventBus,
    HandlerRestarted,
    HandlerStopped,
    MessageContext,
    MessageRegistry,
    RegisteredHandler,
)
from bus.testing._faults import Fault, FaultKind, FaultPlan
from bus.testing._records import (
    SENDER_HEADER,
    SEQ_HEADER,
    VIA_HEADER,
    Delivery,
    Entry,
    InjectedFault,
    Notice,
    Send,
    Via,
)

#: the positional parameters of a wrapper (names no handler parameter can clash with: the handler's
#: own injected parameters follow them, keyword-only, under their own names)
_EVENT_PARAM = "_bus_testing_event"
_CONTEXT_PARAM = "_bus_testing_context"
_notice_handlers = 0


class Recorder:
    """Records every delivery to the handlers of ``registries``, and applies a `FaultPlan`.

    The recorder builds wrapped copies of the registries (`registries`): each handler is replaced
    by a wrapper with the same name, subscriptions, policy and injected parameters, which records
    the start and outcome of each attempt and raises or sleeps where the fault plan says. The
    wrapped registries also hold a handler of the bus's notices (`DeadLetter`, `HandlerRestarted`,
    `HandlerStopped`). Your handlers stay as they are.

    Send through `sender` (``recorder.sender("alice").emit(...)``) so that the record knows who
    sent what, in which order and how (publish or emit): the sender adds three headers
    (``bus-testing-*``) to each message. A handler's injected `EventBus` is wrapped likewise, with
    the handler's name as the sender. Messages sent another way are recorded when delivered, but
    the assertions that need the sender or the send skip them.

    The record is one timeline (`entries`), in the order things happened in this run. On trio with
    a `MockClock` (see `run`) inside a Hypothesis example, which seeds trio's scheduler, the same
    inputs give the same record; elsewhere concurrent handlers may interleave differently.
    """

    def __init__(
        self, *registries: MessageRegistry[Any], faults: FaultPlan | Iterable[Fault] = ()
    ) -> None:
        """Wrap the handlers of ``registries`` (at least one); ``faults`` is applied to them."""
        if not registries:
            raise TypeError("Recorder needs at least one MessageRegistry")
        self._lock = threading.Lock()
        self._entries: list[Entry] = []
        self._handlers: list[RegisteredHandler] = []
        self._messages: dict[str, dict[str, int]] = {}  # handler -> message id -> number
        self._attempts: dict[tuple[str, str], int] = {}  # (handler, message id) -> attempts
        self._seqs: dict[str, int] = {}
        self._allowed: tuple[type[BaseException], ...] = (InjectedFault,)
        self._terminal: BusTerminal[Any] | None = None
        wrapped = [self._wrap_registry(registry) for registry in registries]
        wrapped[0].register(self._notice_handler())
        self._registries = tuple(wrapped)
        self._faults = FaultPlan()
        plan = faults.faults.values() if isinstance(faults, FaultPlan) else faults
        for fault in plan:
            self.add_fault(fault)

    # -- set-up -----------------------------------------------------------------------------------

    @property
    def registries(self) -> tuple[MessageRegistry[Any], ...]:
        """The wrapped registries: build the `BusTerminal` from these (or use `open`)."""
        return self._registries

    @property
    def handler_names(self) -> tuple[str, ...]:
        """The recorded handlers' names, in registration order."""
        return tuple(h.name for h in self._handlers)

    @property
    def handlers(self) -> tuple[RegisteredHandler, ...]:
        """The original handlers with their policies, in registration order."""
        return tuple(self._handlers)

    @property
    def faults(self) -> FaultPlan:
        """The fault plan in force (handler names resolved)."""
        return self._faults

    def handler_name(self, handler: str | Callable[..., object]) -> str:
        """The full name of a recorded handler given as its function, full name, qualname or
        function name; `ValueError` naming the candidates when there is no single match."""
        names = self.handler_names
        if not isinstance(handler, str):
            for registered in self._handlers:
                if registered.spec.func == handler:
                    return registered.name
            raise ValueError(f"{handler!r} is not a handler of this recorder's registries")
        if handler in names:
            return handler
        matches = [n for n in names if n.endswith("." + handler)]
        if len(matches) == 1:
            return matches[0]
        why = "matches several handlers: " if matches else "names no handler; the handlers are: "
        raise ValueError(f"{handler!r} {why}{', '.join(matches or names)}")

    def add_fault(self, fault: Fault) -> None:
        """Add ``fault`` to the plan (its handler given by any name `handler_name` accepts)."""
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {fault!r}")
        self._faults.add(attrs.evolve(fault, handler=self.handler_name(fault.handler)))

    def inject(
        self,
        handler: str | Callable[..., object],
        kind: FaultKind = "transient",
        *,
        times: int = 1,
        delay: float = 0.0,
    ) -> Fault:
        """Put a fault on the next message ``handler`` has not got yet, and return it."""
        name = self.handler_name(handler)
        with self._lock:
            number = len(self._messages.get(name, {})) + 1
            while self._faults.get(name, number) is not None:
                number += 1
        fault = Fault(name, number, kind, times, delay)
        self._faults.add(fault)
        return fault

    def allow_errors(self, *errors: type[BaseException]) -> None:
        """Count handler exceptions of these types as expected (`unexpected_errors` skips them)."""
        self._allowed = (*self._allowed, *errors)

    # -- running ----------------------------------------------------------------------------------

    @asynccontextmanager
    async def open(self, **options: Any) -> AsyncIterator[BusTerminal[Any]]:
        """``async with recorder.open() as terminal``: a `BusTerminal` over the wrapped registries
        (``options`` go to `BusTerminal`), attached to this recorder."""
        async with BusTerminal(*self._registries, **options) as terminal:
            self.attach(terminal)
            try:
                yield terminal
            finally:
                self._terminal = None

    def attach(self, terminal: BusTerminal[Any]) -> None:
        """Use ``terminal`` (built from `registries`) for `sender`."""
        self._terminal = terminal

    @property
    def terminal(self) -> BusTerminal[Any]:
        """The attached terminal; `RuntimeError` when none is."""
        if self._terminal is None:
            raise RuntimeError("no terminal: use `async with recorder.open()` or recorder.attach()")
        return self._terminal

    def sender(self, name: str = "main") -> SendingBus:
        """A bus that sends as ``name``: the record knows each message's sender and order."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a sender's name is a non-empty str, got {name!r}")
        return SendingBus(self.terminal.bus, self, name)

    # -- the record -------------------------------------------------------------------------------

    @property
    def entries(self) -> tuple[Entry, ...]:
        """Everything recorded, in order: `Send`, `Delivery` and `Notice` entries."""
        with self._lock:
            return tuple(self._entries)

    def deliveries(
        self,
        handler: str | Callable[..., object] | None = None,
        *,
        event_type: type[Event] | None = None,
    ) -> list[Delivery]:
        """The deliveries (every attempt), in start order; of one handler and/or event type."""
        name = None if handler is None else self.handler_name(handler)
        return [
            e
            for e in self.entries
            if isinstance(e, Delivery)
            and (name is None or e.handler == name)
            and (event_type is None or isinstance(e.event, event_type))
        ]

    def handled(self, handler: str | Callable[..., object]) -> list[Event]:
        """The events ``handler`` handled successfully, in the order it finished them."""
        name = self.handler_name(handler)
        done = [e for e in self.entries if isinstance(e, Delivery) and e.handler == name]
        return [d.event for d in done if d.outcome == "ok"]

    def sends(self, sender: str | None = None) -> list[Send]:
        """The sends through `sender` buses, of one sender or all, in order."""
        return [e for e in self.entries if isinstance(e, Send) and sender in (None, e.sender)]

    def notices(self, kind: str | None = None) -> list[Notice]:
        """The bus's notices (``"dead_letter"``, ``"restarted"``, ``"stopped"``), in order."""
        return [e for e in self.entries if isinstance(e, Notice) and kind in (None, e.kind)]

    def with_entries(self, entries: Iterable[Entry]) -> Recorder:
        """A copy of this recorder (same handlers, no terminal) whose record is ``entries``,
        renumbered in the given order: to check an edited record, or your own assertions."""
        copy = object.__new__(Recorder)
        copy.__dict__.update(self.__dict__)
        copy._lock = threading.Lock()
        copy._terminal = None
        copy._entries = [attrs.evolve(entry, index=i) for i, entry in enumerate(entries)]
        return copy

    def unexpected_errors(self) -> list[Delivery]:
        """Deliveries that raised something neither injected nor allowed (`allow_errors`)."""
        return [
            d
            for d in self.deliveries()
            if d.error is not None and not isinstance(d.error, self._allowed)
        ]

    # -- recording (called by wrappers and senders) ---------------------------------------------

    def _append(self, make: Callable[[int], Entry]) -> Any:
        with self._lock:
            entry = make(len(self._entries))
            self._entries.append(entry)
        return entry

    def _next_seq(self, sender: str) -> int:
        with self._lock:
            seq = self._seqs.get(sender, 0)
            self._seqs[sender] = seq + 1
        return seq

    def _start(
        self, name: str, event: Event, context: MessageContext
    ) -> tuple[Delivery, Fault | None]:
        headers = context.headers
        sender = headers.get(SENDER_HEADER, "")
        seq = int(headers.get(SEQ_HEADER, "-1")) if sender else -1
        via: Any = headers.get(VIA_HEADER, "unknown") if sender else "unknown"
        with self._lock:
            numbers = self._messages.setdefault(name, {})
            number = numbers.setdefault(context.message_id, len(numbers) + 1)
            key = (name, context.message_id)
            attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempt
            delivery = Delivery(
                len(self._entries), name, event, context, context.attempt, number, sender, seq, via
            )
            self._entries.append(delivery)
        fault = self._faults.get(name, number)
        return delivery, (
            fault
            if fault is not None
            and ((fault.kind == "slow" and attempt == 1) or fault.raises_on(attempt))
            else None
        )

    def _finish(self, delivery: Delivery, error: BaseException | None) -> None:
        with self._lock:
            delivery.outcome = "ok" if error is None else "raised"
            delivery.error = error
            delivery.injected = isinstance(error, InjectedFault)

    def _mark_dead_lettered(self, handler: str, message_id: str) -> None:
        with self._lock:
            for entry in reversed(self._entries):
                if (
                    isinstance(entry, Delivery)
                    and entry.handler == handler
                    and entry.message_id == message_id
                ):
                    if entry.outcome == "raised":
                        entry.outcome = "dead_lettered"
                    return

    # -- wrapping ---------------------------------------------------------------------------------

    def _wrap_registry(self, registry: MessageRegistry[Any]) -> MessageRegistry[Any]:
        if not isinstance(registry, MessageRegistry):
            raise TypeError(f"Recorder takes MessageRegistry instances, got {registry!r}")
        wrapped = MessageRegistry(event_base=registry.event_base)
        for registered in registry.handlers:
            self._handlers.append(registered)
            wrapped.register(self._wrap(registered), **attrs.asdict(registered.policy))
        for provider in registry.providers.values():
            wrapped.factory(provider.func)
        return wrapped

    def _wrap(self, registered: RegisteredHandler) -> Callable[..., object]:
        spec = registered.spec
        name = spec.name
        func: Any = spec.func
        positional_context = spec.takes_context
        bus_params = tuple(p.name for p in spec.params if p.kind == "bus")
        recorder = self

        def call_args(
            event: Event, context: MessageContext, kwargs: dict[str, Any]
        ) -> tuple[Any, ...]:
            for param in bus_params:
                kwargs[param] = SendingBus(kwargs[param], recorder, name)
            return (event, context) if positional_context else (event,)

        wrapper: Any
        if spec.is_async:

            async def wrapper(event: Event, context: MessageContext, /, **kwargs: Any) -> None:
                delivery, fault = recorder._start(name, event, context)
                try:
                    if fault is not None:
                        if fault.kind == "slow":
                            await anyio.sleep(fault.delay)
                        else:
                            raise InjectedFault(str(fault))
                    await func(*call_args(event, context, kwargs), **kwargs)
                except BaseException as exc:
                    recorder._finish(delivery, exc)
                    raise
                recorder._finish(delivery, None)

        else:

            def wrapper(event: Event, context: MessageContext, /, **kwargs: Any) -> None:
                delivery, fault = recorder._start(name, event, context)
                try:
                    if fault is not None:
                        if fault.kind == "slow":
                            anyio.from_thread.run(anyio.sleep, fault.delay)
                        else:
                            raise InjectedFault(str(fault))
                    func(*call_args(event, context, kwargs), **kwargs)
                except BaseException as exc:
                    recorder._finish(delivery, exc)
                    raise
                recorder._finish(delivery, None)

        subscription = functools.reduce(operator.or_, spec.subscriptions)
        parameters = [
            inspect.Parameter(_EVENT_PARAM, inspect.Parameter.POSITIONAL_ONLY),
            inspect.Parameter(_CONTEXT_PARAM, inspect.Parameter.POSITIONAL_ONLY),
        ]
        annotations: dict[str, Any] = {_EVENT_PARAM: subscription, _CONTEXT_PARAM: MessageContext}
        injected = spec.params[1:] if positional_context else spec.params
        for param in injected:
            parameters.append(
                inspect.Parameter(
                    param.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=param.default,
                    annotation=param.annotation,
                )
            )
            annotations[param.name] = param.annotation
        module, _, _ = name.rpartition("." + spec.qualname)
        wrapper.__signature__ = inspect.Signature(parameters)
        wrapper.__annotations__ = annotations
        wrapper.__module__ = module
        wrapper.__qualname__ = spec.qualname
        wrapper.__name__ = spec.qualname.rsplit(".", 1)[-1]
        wrapper.__doc__ = getattr(func, "__doc__", None)
        return wrapper  # type: ignore[no-any-return]

    def _notice_handler(self) -> Callable[..., object]:
        global _notice_handlers
        _notice_handlers += 1
        recorder = self

        async def record_notice(notice: DeadLetter | HandlerRestarted | HandlerStopped) -> None:
            if isinstance(notice, DeadLetter):
                context = notice.context
                recorder._mark_dead_lettered(notice.handler, context.message_id)
                recorder._append(
                    lambda i: Notice(
                        i, "dead_letter", notice.handler, notice, context.message_id, notice.reason
                    )
                )
            elif isinstance(notice, HandlerStopped):
                recorder._append(
                    lambda i: Notice(i, "stopped", notice.handler, notice, "", notice.reason)
                )
            else:
                recorder._append(
                    lambda i: Notice(i, "restarted", notice.handler, notice, "", notice.error)
                )

        record_notice.__module__ = "bus.testing"
        record_notice.__qualname__ = record_notice.__name__ = f"recorder_{_notice_handlers}_notices"
        return record_notice


class SendingBus:
    """An `EventBus` look-alike that sends as one sender and records each send in a `Recorder`.

    ``publish``, ``emit`` and ``emit_nowait`` add the ``bus-testing-*`` headers and record a
    `Send`; ``sink`` and ``context`` are passed through.
    """

    __slots__ = ("_bus", "_name", "_recorder")

    def __init__(self, bus: EventBus[Any], recorder: Recorder, name: str) -> None:
        """Send through ``bus`` as ``name``, recording in ``recorder``."""
        self._bus = bus
        self._recorder = recorder
        self._name = name

    @property
    def name(self) -> str:
        """The sender's name."""
        return self._name

    @property
    def context(self) -> MessageContext | None:
        """The wrapped bus's context (see `EventBus.context`)."""
        return self._bus.context

    def _headers(self, via: Via, headers: Mapping[str, str] | None) -> tuple[int, dict[str, str]]:
        seq = self._recorder._next_seq(self._name)
        own = {SENDER_HEADER: self._name, SEQ_HEADER: str(seq), VIA_HEADER: via}
        return seq, {**headers, **own} if headers else own

    def _record(self, seq: int, via: Via, event: Event) -> Send:
        send: Send = self._recorder._append(lambda i: Send(i, self._name, seq, via, event))
        return send

    async def publish(self, event: Event, *, headers: Mapping[str, str] | None = None) -> None:
        """`EventBus.publish`, recorded."""
        seq, all_headers = self._headers("publish", headers)
        send = self._record(seq, "publish", event)
        try:
            await self._bus.publish(event, headers=all_headers)
        except BaseException as exc:
            send.error = exc
            raise
        finally:
            send.done = True

    async def emit(self, event: Event, *, headers: Mapping[str, str] | None = None) -> None:
        """`EventBus.emit`, recorded."""
        seq, all_headers = self._headers("emit", headers)
        send = self._record(seq, "emit", event)
        try:
            await self._bus.emit(event, headers=all_headers)
        except BaseException as exc:
            send.error = exc
            raise
        finally:
            send.done = True

    def emit_nowait(self, event: Event, *, headers: Mapping[str, str] | None = None) -> None:
        """`EventBus.emit_nowait`, recorded."""
        seq, all_headers = self._headers("emit", headers)
        send = self._record(seq, "emit", event)
        try:
            self._bus.emit_nowait(event, headers=all_headers)
        except BaseException as exc:
            send.error = exc
            raise
        finally:
            send.done = True

    async def sink(self, event: Event, *, headers: Mapping[str, str] | None = None) -> None:
        """`EventBus.sink`, unchanged."""
        await self._bus.sink(event, headers=headers)

    def __repr__(self) -> str:
        return f"<SendingBus {self._name!r} over {self._bus!r}>"

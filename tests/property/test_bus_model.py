"""A stateful model of the bus: publishes, emits, crashes (events flagged to fail once in some
handlers) and drains, checked against what each handler must have seen, in order.

The async bus runs in a blocking portal's event loop thread; the state machine drives it from the
test thread. The model: a handler's mailbox is FIFO and a failing emitted message is retried in
place, so each handler handles its events in the order they were sent to it; a failing publish
stops at the failing handler, which does not retry it.
"""

from __future__ import annotations

from contextlib import ExitStack

import anyio
from anyio.from_thread import start_blocking_portal
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bus import BusTerminal, MessageContext, MessageRegistry
from bus._policy import PolicyOptions
from tests.strategies import BUS_SUBSCRIPTIONS, BusBase, BusLeft, BusRight, bus_event_classes

#: the handler set under test, in registration order: (name, subscription kind)
KINDS = ("base", "left", "left_or_right", "right")

POLICY: PolicyOptions = {"retries": 2, "retry_backoff": 0.0, "max_restarts": 10_000}


class FlaggedFailure(Exception):
    """Raised by a handler the first time it gets an event flagged to fail in it."""


class BusModel(RuleBasedStateMachine):
    backend = "asyncio"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[int]] = [[] for _ in KINDS]  # what each handler handled
        self.fail_once: dict[int, set[int]] = {}  # key -> handlers that fail on it (once)
        self.model: list[list[int]] = [[] for _ in KINDS]  # what each handler must handle
        self.next_key = 0
        self.emitted_since_drain = False
        registry = MessageRegistry()
        for index, kind in enumerate(KINDS):
            registry.register(self._handler(index, kind), **POLICY)
        self._stack = ExitStack()
        try:
            self.portal = self._stack.enter_context(start_blocking_portal(self.backend))
            self.terminal = self._stack.enter_context(
                self.portal.wrap_async_context_manager(BusTerminal(registry))
            )
        except BaseException:
            self._stack.close()
            raise

    def _handler(self, index: int, kind: str):  # type: ignore[no-untyped-def]
        seen = self.seen[index]
        fail_once = self.fail_once

        def record(event: BusBase, ctx: MessageContext) -> None:
            failing = fail_once.get(event.key)
            if failing is not None and index in failing:
                failing.discard(index)
                raise FlaggedFailure(f"handler {index} fails once on {event.key}")
            seen.append(event.key)

        if kind == "base":

            async def handler(event: BusBase, ctx: MessageContext) -> None:
                record(event, ctx)

        elif kind == "left":

            async def handler(event: BusLeft, ctx: MessageContext) -> None:  # type: ignore[misc]
                record(event, ctx)

        elif kind == "right":

            async def handler(event: BusRight, ctx: MessageContext) -> None:  # type: ignore[misc]
                record(event, ctx)

        else:

            async def handler(event: BusLeft | BusRight, ctx: MessageContext) -> None:  # type: ignore[misc]
                record(event, ctx)

        handler.__name__ = handler.__qualname__ = f"model_handler_{index}_{kind}"
        return handler

    def _new_event(self, event_class: type[BusBase], failing: frozenset[int]) -> BusBase:
        key = self.next_key
        self.next_key += 1
        if failing:
            self.fail_once[key] = set(failing)
        return event_class(key)

    def _subscribed(self, event_class: type[BusBase]) -> list[int]:
        return [i for i, kind in enumerate(KINDS) if event_class in BUS_SUBSCRIPTIONS[kind]]

    @rule(
        event_class=bus_event_classes(),
        failing=st.frozensets(st.integers(0, len(KINDS) - 1), max_size=2),
    )
    def publish(self, event_class: type[BusBase], failing: frozenset[int]) -> None:
        event = self._new_event(event_class, failing)
        subscribed = self._subscribed(event_class)
        first_failing = next((i for i in subscribed if i in failing), None)

        async def run() -> BaseException | None:
            with anyio.fail_after(20):
                try:
                    await self.terminal.bus.publish(event)
                except FlaggedFailure as exc:
                    return exc
            return None

        error = self.portal.call(run)
        if first_failing is None:
            assert error is None
            reached = subscribed
        else:
            assert isinstance(error, FlaggedFailure)
            assert str(error) == f"handler {first_failing} fails once on {event.key}"
            reached = subscribed[: subscribed.index(first_failing)]
        for index in reached:
            self.model[index].append(event.key)
        # a publish returns once its handlers ran, behind whatever was emitted to them before
        for index in reached:
            assert self.seen[index] == self.model[index]

    @rule(
        event_class=bus_event_classes(),
        failing=st.frozensets(st.integers(0, len(KINDS) - 1), max_size=2),
        nowait=st.booleans(),
    )
    def emit(self, event_class: type[BusBase], failing: frozenset[int], nowait: bool) -> None:
        event = self._new_event(event_class, failing)
        if nowait:
            self.portal.call(self._emit_nowait, event)
        else:
            self.portal.call(self.terminal.bus.emit, event)
        for index in self._subscribed(event_class):
            self.model[index].append(event.key)  # a failure is retried: handled all the same
        self.emitted_since_drain = True

    async def _emit_nowait(self, event: BusBase) -> None:
        self.terminal.bus.emit_nowait(event)

    @precondition(lambda self: self.emitted_since_drain)
    @rule()
    def drain(self) -> None:
        async def run() -> None:
            with anyio.fail_after(20):
                await self.terminal.drain()

        self.portal.call(run)
        self.emitted_since_drain = False
        assert self.seen == self.model
        assert self.terminal.statistics().in_flight == 0
        assert self.terminal.statistics().dead_letters == 0

    @invariant()
    def handled_in_model_order(self) -> None:
        seen = self.portal.call(self._snapshot_seen)
        for index, handled in enumerate(seen):
            assert handled == self.model[index][: len(handled)], f"handler {index}"

    async def _snapshot_seen(self) -> list[list[int]]:
        return [list(s) for s in self.seen]

    def teardown(self) -> None:
        try:
            self.portal.call(self.terminal.drain)
            assert self.seen == self.model
            stats = self.terminal.statistics()
            assert stats.dead_letters == 0
            for index, kind in enumerate(KINDS):
                assert self.terminal.handler_ref(f"model_handler_{index}_{kind}").alive
        finally:
            self._stack.close()


class BusModelTrio(BusModel):
    backend = "trio"


MODEL_SETTINGS = settings(max_examples=20, stateful_step_count=25)

TestBusModelAsyncio = BusModel.TestCase
TestBusModelAsyncio.settings = MODEL_SETTINGS
TestBusModelTrio = BusModelTrio.TestCase
TestBusModelTrio.settings = MODEL_SETTINGS

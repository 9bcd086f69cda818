"""Dogfood: `bus.testing.BusStateMachine` drives the bus's own dispatch samples (a base class, two
subclasses and a grandchild; handlers of each subscription kind, one that emits what it causes,
one that takes dead letters) with publishes, emits, drains and injected transient and permanent
crashes, and checks every delivery guarantee after each step, in virtual time and on asyncio."""

from __future__ import annotations

from typing import ClassVar

from hypothesis import settings, strategies as st
from hypothesis.stateful import precondition, rule

from bus import DeadLetter, Event, EventBus, MessageContext, MessageRegistry
from bus._policy import PolicyOptions
from bus.testing import BusStateMachine, events
from bus.testing._faults import FaultKind
from tests.strategies import BUS_EVENT_CLASSES, BusBase, BusLeft, BusRight


class Echoed(Event):
    """What the echoing handler emits for each ``BusRight`` it handles."""

    key: int


def sample_registry(backoff: float) -> MessageRegistry:
    registry = MessageRegistry()
    policy: PolicyOptions = {"retries": 2, "retry_backoff": backoff, "max_restarts": 10_000}

    @registry.register(**policy)
    async def on_base(event: BusBase, ctx: MessageContext) -> None:
        pass

    @registry.register(**policy)
    async def on_left(event: BusLeft) -> None:
        pass

    @registry.register(**policy)
    async def on_left_or_right(event: BusLeft | BusRight, ctx: MessageContext) -> None:
        pass

    @registry.register(**policy)
    async def echo(event: BusRight, ctx: MessageContext, bus: EventBus) -> None:
        await bus.emit(Echoed(event.key))

    @registry.register(**policy)
    async def on_echoed(event: Echoed | BusRight) -> None:
        pass

    @registry.register
    async def on_dead_letter(letter: DeadLetter) -> None:
        pass

    return registry


def sample_events() -> st.SearchStrategy[Event]:
    return st.sampled_from(BUS_EVENT_CLASSES).flatmap(
        lambda cls: events(cls, key=st.integers(0, 100))
    )


class SampleMachine(BusStateMachine):
    """Publishes of ``BusRight`` would let ``echo``'s emit overtake the publish at ``on_echoed``
    (see docs/testing.md): the machine only publishes the other classes."""

    fault_kinds: ClassVar[tuple[FaultKind, ...]] = ("transient", "permanent")
    max_injected: ClassVar[int] = 4

    def make_registries(self) -> MessageRegistry:
        return sample_registry(backoff=0.5)

    def event_strategy(self) -> st.SearchStrategy[Event]:
        return sample_events().filter(lambda e: not isinstance(e, BusRight))


class EmittingMachine(SampleMachine):
    """Every class, ``BusRight`` included, but only emitted: ``echo``'s effects are queued behind
    their causes everywhere."""

    def event_strategy(self) -> st.SearchStrategy[Event]:
        return sample_events()

    @precondition(lambda self: False)
    @rule()
    def publish(self) -> None:  # type: ignore[override]
        """Disabled: see the class docstring."""


class SampleMachineAsyncio(SampleMachine):
    backend: ClassVar[str] = "asyncio"

    def make_registries(self) -> MessageRegistry:
        return sample_registry(backoff=0.001)


MACHINE_SETTINGS = settings(max_examples=15, stateful_step_count=20, deadline=None)

TestSampleMachineVirtualTime = SampleMachine.TestCase
TestSampleMachineVirtualTime.settings = MACHINE_SETTINGS
TestEmittingMachineVirtualTime = EmittingMachine.TestCase
TestEmittingMachineVirtualTime.settings = MACHINE_SETTINGS
TestSampleMachineAsyncio = SampleMachineAsyncio.TestCase
TestSampleMachineAsyncio.settings = MACHINE_SETTINGS

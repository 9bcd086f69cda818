"""Handler shapes beyond the seed example: keyword-only dependencies, and a bus in the context's place."""

from __future__ import annotations

import pytest

from bus import BusTerminal, Event, EventBus, MessageContext, MessageRegistry, RegistrationError

pytestmark = pytest.mark.anyio


class Noted(Event):
    text: str


def test_a_bus_in_the_second_position_is_rejected_naming_handler_and_parameter() -> None:
    async def note(event: Noted, bus: EventBus) -> None: ...

    registry = MessageRegistry()
    with pytest.raises(RegistrationError, match=r"note.*parameter 'bus'.*MessageContext"):
        registry.register(note)
    assert registry.handlers == ()


async def test_keyword_only_parameters_are_injected_without_a_context() -> None:
    seen: list[tuple[str, bool, bool]] = []

    async def note(event: Noted, *, bus: EventBus, ctx: MessageContext) -> None:
        seen.append((event.text, isinstance(bus, EventBus), isinstance(ctx, MessageContext)))

    registry = MessageRegistry()
    registry.register(note)
    async with BusTerminal(registry) as terminal:
        await terminal.bus.publish(Noted("published"))
        await terminal.bus.emit(Noted("emitted"))
        await terminal.drain()
    assert seen == [("published", True, True), ("emitted", True, True)]


async def test_a_handler_taking_only_the_event_gets_it_under_publish_and_emit() -> None:
    seen: list[str] = []

    async def note(event: Noted) -> None:
        seen.append(event.text)

    registry = MessageRegistry()
    registry.register(note)
    async with BusTerminal(registry) as terminal:
        await terminal.bus.publish(Noted("a"))
        terminal.bus.emit_nowait(Noted("b"))
        await terminal.drain()
    assert seen == ["a", "b"]

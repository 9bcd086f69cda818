"""The seed example of DESIGN.md section 2 works as written."""

from __future__ import annotations

import anyio
import pytest

from bus import BusTerminal, Event, EventBus, MessageContext, MessageRegistry

pytestmark = pytest.mark.anyio


class TodoCreated(Event):
    name: str
    content: str


async def test_seed_example_publish_emit_drain() -> None:
    seen: list[tuple[str, TodoCreated]] = []

    async def listen_create(created: TodoCreated, ctx):  # type: ignore[no-untyped-def]
        assert isinstance(ctx, MessageContext)
        seen.append(("create", created))

    async def listen_twice(created: TodoCreated, ctx: MessageContext, bus: EventBus) -> None:
        assert isinstance(bus, EventBus)
        seen.append(("twice", created))

    registry = MessageRegistry(event_base=Event)
    registry.register(listen_create, listen_twice)

    with anyio.fail_after(10):
        async with BusTerminal(registry) as terminal:
            bus = terminal.bus
            await bus.publish(TodoCreated("a", "b"))
            assert seen == [("create", TodoCreated("a", "b")), ("twice", TodoCreated("a", "b"))]
            await bus.emit(TodoCreated("c", "d"))
            await terminal.drain()
            # emitted: each handler's actor runs it on its own, in no particular order
            assert sorted(seen[2:]) == [
                ("create", TodoCreated("c", "d")),
                ("twice", TodoCreated("c", "d")),
            ]
            assert terminal.statistics().in_flight == 0


async def test_seed_example_decorator_form() -> None:
    seen: list[str] = []
    registry = MessageRegistry(event_base=Event)

    @registry
    async def listen_create(created: TodoCreated, ctx):  # type: ignore[no-untyped-def]
        seen.append(created.name)

    with anyio.fail_after(10):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.publish(TodoCreated("a", "b"))
    assert seen == ["a"]

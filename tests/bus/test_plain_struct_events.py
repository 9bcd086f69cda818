"""Lihil-style events: a registry whose ``event_base`` is a plain ``msgspec.Struct`` subclass.

Lihil's own bus accepts any Struct as the event base, so code written for it (and Lihil's tests)
registers handlers for plain Structs. The bus delivers them in this process like any event;
storing them or sending them to other processes needs `bus.Event`'s stable type names, and
refuses them saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from bus import BusTerminal, EventBus, MessageContext, MessageRegistry, RegistrationError
from bus.sinks import JSONLinesSink

pytestmark = pytest.mark.anyio


class LihilEvent(msgspec.Struct):
    pass


class TodoCreated(LihilEvent):
    name: str
    content: str


class NotAnEvent(msgspec.Struct):
    name: str


async def test_a_registry_with_a_plain_struct_event_base_publishes_and_emits_to_its_handlers() -> None:
    registry = MessageRegistry(event_base=LihilEvent)
    seen: list[tuple[str, Any]] = []

    @registry
    async def listen_create(created: TodoCreated, ctx: Any, bus: EventBus[Any]) -> None:
        assert isinstance(ctx, MessageContext)
        assert isinstance(bus, EventBus)
        seen.append(("async", created.name))

    @registry
    def listen_all(event: LihilEvent) -> None:
        seen.append(("sync", event))

    async with BusTerminal(registry) as terminal:
        await terminal.bus.publish(TodoCreated("a", "1"))
        assert seen == [("async", "a"), ("sync", TodoCreated("a", "1"))]
        await terminal.bus.emit(TodoCreated("b", "2"))
        terminal.bus.emit_nowait(TodoCreated("c", "3"))
        await terminal.drain()
    assert [name for kind, name in seen if kind == "async"] == ["a", "b", "c"]
    assert [event for kind, event in seen if kind == "sync"] == [
        TodoCreated("a", "1"),
        TodoCreated("b", "2"),
        TodoCreated("c", "3"),
    ]


async def test_publishing_a_struct_outside_the_plain_event_base_raises_type_error_naming_the_base() -> None:
    registry = MessageRegistry(event_base=LihilEvent)
    async with BusTerminal(registry) as terminal:
        with pytest.raises(TypeError, match=r"expected an instance of LihilEvent.*got an instance of NotAnEvent"):
            await terminal.bus.publish(NotAnEvent("x"))  # type: ignore[arg-type]


def test_a_handler_for_a_struct_outside_the_plain_event_base_is_refused_at_registration() -> None:
    registry = MessageRegistry(event_base=LihilEvent)

    async def listen(event: NotAnEvent) -> None: ...

    with pytest.raises(RegistrationError, match="not a subclass of LihilEvent"):
        registry.register(listen)


async def test_sinking_a_plain_struct_event_raises_type_error_saying_to_derive_from_bus_event(
    tmp_path: Path,
) -> None:
    registry = MessageRegistry(event_base=LihilEvent)
    path = tmp_path / "events.jsonl"
    async with BusTerminal(registry, sinks=[JSONLinesSink(path)]) as terminal:
        with pytest.raises(TypeError, match=r"derive from bus\.Event.*class TodoCreated\(bus\.Event\)"):
            await terminal.bus.sink(TodoCreated("a", "1"))
        with pytest.raises(TypeError, match=r"derive from bus\.Event"):
            await terminal.bus.sink_many([TodoCreated("a", "1")])
        assert terminal.statistics().sunk == 0
    async with JSONLinesSink(path) as sink:
        assert await sink.read() == []


async def test_passing_a_list_of_events_to_a_single_event_call_points_to_the_batch_calls() -> None:
    registry = MessageRegistry(event_base=LihilEvent)
    events = [TodoCreated("a", "1"), TodoCreated("b", "2")]
    async with BusTerminal(registry) as terminal:
        for call in (terminal.bus.publish, terminal.bus.emit, terminal.bus.sink):
            with pytest.raises(TypeError, match=r"got an instance of list \(for several events at once, use emit_many"):
                await call(events)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"use emit_many / emit_many_nowait / sink_many"):
            terminal.bus.emit_nowait(events)  # type: ignore[arg-type]
        assert terminal.statistics().emitted == 0

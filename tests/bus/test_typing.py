"""Lihil-style generic annotations type-check under mypy --strict (issue 7, item 13)."""

from __future__ import annotations

from pathlib import Path

from mypy import api

SNIPPET = '''
from typing import Any

from bus import BusTerminal, Event, EventBus, MessageRegistry
from bus.lihil import BusPlugin, PEventBus


class TodoEvent(Event):
    name: str


class Other(Event):
    pass


registry: MessageRegistry[TodoEvent] = MessageRegistry(event_base=TodoEvent)
default: MessageRegistry[Event] = MessageRegistry()
terminal: BusTerminal[TodoEvent] = BusTerminal(registry)
plugin = BusPlugin(busterm=terminal)


async def endpoint(bus: PEventBus) -> None:
    await bus.publish(TodoEvent("x"))


async def typed(bus: EventBus[TodoEvent], any_bus: EventBus[Any]) -> None:
    await bus.publish(TodoEvent("x"))
    await any_bus.emit(Other())
    await bus.publish(Other())  # the one error: not a TodoEvent
'''


def test_generic_bus_annotations_type_check_and_catch_a_wrong_event(tmp_path: Path) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET, encoding="utf-8")
    out, err, status = api.run(
        ["--strict", "--cache-dir", str(tmp_path / "cache"), "--no-error-summary", str(source)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1, (out, err)
    assert len(errors) == 1, out
    assert 'incompatible type "Other"; expected "TodoEvent"' in errors[0]
    assert f"snippet.py:{SNIPPET.count(chr(10), 0, SNIPPET.index('bus.publish(Other())')) + 1}:" in errors[0]

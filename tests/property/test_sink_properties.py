"""Sinks under generated input: whatever ``bus.sink`` acknowledges reads back equal, from both
built-in sinks; whatever it refuses raises ``TypeError`` at the call and stores nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings, strategies as st

from bus import BusTerminal, Event, MessageContext
from bus.sinks import JSONLinesSink, SQLiteSink
from tests.strategies import storable_candidates

pytestmark = pytest.mark.anyio


@settings(max_examples=25)
@given(events=st.lists(storable_candidates(), max_size=6))
async def test_whatever_sink_acknowledges_reads_back_equal_from_both_sinks(
    events: list[Event],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SQLiteSink(Path(tmp) / "e.db")
        jsonl = JSONLinesSink(Path(tmp) / "e.jsonl")
        accepted: list[tuple[Event, MessageContext]] = []
        with anyio.fail_after(30):
            async with BusTerminal(sinks=[sqlite, jsonl]) as terminal:
                for event in events:
                    try:
                        context = await terminal.bus.sink(event)
                    except TypeError:
                        continue
                    accepted.append((event, context))
            async with SQLiteSink(Path(tmp) / "e.db") as reader:
                from_sqlite = await reader.read()
            async with JSONLinesSink(Path(tmp) / "e.jsonl") as reader:
                from_jsonl = await reader.read()
    assert from_sqlite == accepted
    assert from_jsonl == accepted

"""JSONLinesSink: one envelope per line, torn tails cut off, duplicates read once."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from bus._codec import decode_json, encode_json
from bus._errors import SinkError
from bus._events import Event, MessageContext, event_type_name
from bus.sinks import JSONLinesSink
from tests.strategies import SampleCreated

pytestmark = pytest.mark.anyio


def messages(*names: str) -> list[tuple[Event, MessageContext]]:
    """One SampleCreated per name, each with a fresh root context."""
    return [(SampleCreated(name, "content"), MessageContext.new()) for name in names]


async def test_each_message_is_one_json_envelope_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    batch = messages("a", "b")
    async with JSONLinesSink(path) as sink:
        await sink.write(batch)
    lines = path.read_bytes().splitlines()
    assert [decode_json(line) for line in lines] == batch
    envelope = msgspec.json.decode(lines[0])
    assert list(envelope) == ["type", "event", "context"]
    assert envelope["type"] == event_type_name(SampleCreated)


async def test_a_batch_written_again_in_one_session_is_not_appended_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    batch = messages("a", "b")
    async with JSONLinesSink(path) as sink:
        await sink.write(batch)
        size = path.stat().st_size
        await sink.write(batch)
        assert path.stat().st_size == size


async def test_lines_repeated_by_a_retry_in_another_session_are_read_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    batch = messages("a", "b")
    for _ in range(2):
        async with JSONLinesSink(path) as sink:
            await sink.write(batch)
    assert len(path.read_bytes().splitlines()) == 4
    async with JSONLinesSink(path) as sink:
        assert await sink.read() == batch


async def test_an_incomplete_last_line_left_by_a_torn_write_is_cut_off_at_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    kept, torn, later = messages("kept", "torn", "later")
    path.write_bytes(encode_json(*kept) + b"\n" + encode_json(*torn)[:25])
    async with JSONLinesSink(path) as sink:
        await sink.write([later])
        assert await sink.read() == [kept, later]


async def test_a_file_that_is_only_a_torn_line_is_emptied_at_open(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"type":"half')
    async with JSONLinesSink(path) as sink:
        assert await sink.read() == []
    assert path.read_bytes() == b""


async def test_a_corrupt_line_fails_the_read_with_sink_error_naming_the_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    first, second = messages("a", "b")
    path.write_bytes(encode_json(*first) + b"\nnot json\n" + encode_json(*second) + b"\n")
    async with JSONLinesSink(path) as sink:
        with pytest.raises(SinkError, match=r"events\.jsonl:2:"):
            await sink.read()


async def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    [message] = messages("a")
    path.write_bytes(b"\n" + encode_json(*message) + b"\n\n")
    async with JSONLinesSink(path) as sink:
        assert await sink.read() == [message]

"""JSONLinesSink: a header line marks its own files, one envelope per line, torn tails moved aside,
an index of stored ids rebuilt at open, bad lines named by file and line."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import anyio
import msgspec
import pytest

from bus._codec import decode_json, encode_json
from bus._errors import SinkError
from bus._events import Event, MessageContext, event_type_name
from bus.sinks import JSONLinesSink
from bus.sinks._jsonl import HEADER
from tests.strategies import SampleCreated

pytestmark = pytest.mark.anyio


def messages(*names: str) -> list[tuple[Event, MessageContext]]:
    """One SampleCreated per name, each with a fresh root context."""
    return [(SampleCreated(name, "content"), MessageContext.new()) for name in names]


def line(message: tuple[Event, MessageContext]) -> bytes:
    return encode_json(*message) + b"\n"


async def test_a_new_file_starts_with_the_header_then_one_json_envelope_per_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    batch = messages("a", "b")
    async with JSONLinesSink(path) as sink:
        await sink.write(batch)
    header, *lines = path.read_bytes().splitlines(keepends=True)
    assert header == HEADER
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


async def test_ids_stored_by_an_earlier_session_are_not_appended_again_whatever_their_number(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    old = [(SampleCreated(str(n), "c"), MessageContext.new()) for n in range(2_000)]
    async with JSONLinesSink(path) as sink:
        await sink.write(old)
    size = path.stat().st_size
    async with JSONLinesSink(path) as sink:  # a restart: the index is rebuilt from the file
        await sink.write([old[0], old[-1], *old[500:1500]])
    assert path.stat().st_size == size


async def test_lines_repeated_in_the_file_are_read_once(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first, second = messages("a", "b")
    # as a process that died between its write and its fsync's return could leave it
    path.write_bytes(HEADER + line(first) + line(second) + line(first))
    async with JSONLinesSink(path) as sink:
        assert await sink.read() == [first, second]


async def test_an_incomplete_last_line_is_moved_aside_to_a_torn_file_at_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    kept, torn, later = messages("kept", "torn", "later")
    tail = encode_json(*torn)[:25]
    path.write_bytes(HEADER + line(kept) + tail)
    async with JSONLinesSink(path) as sink:
        await sink.write([later])
        assert await sink.read() == [kept, later]
    assert (tmp_path / "events.jsonl.torn-1").read_bytes() == tail
    path.write_bytes(path.read_bytes() + b"{half")
    async with JSONLinesSink(path) as sink:
        assert await sink.read() == [kept, later]
    assert (tmp_path / "events.jsonl.torn-2").read_bytes() == b"{half"


async def test_an_empty_file_or_a_torn_header_becomes_a_new_sink_file(tmp_path: Path) -> None:
    for content in (b"", HEADER[:10]):
        path = tmp_path / "events.jsonl"
        path.write_bytes(content)
        batch = messages("a")
        async with JSONLinesSink(path) as sink:
            await sink.write(batch)
            assert await sink.read() == batch
        assert path.read_bytes().startswith(HEADER)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"my notes\nsecond line without newline", id="notes"),
        pytest.param(b"", id="sqlite-database"),
        pytest.param(b'{"type":"x","event":{},"context":{}}\n{"torn', id="foreign-json-lines"),
        pytest.param(b"\x00\x01binary", id="binary"),
    ],
)
async def test_a_file_that_is_not_the_sinks_own_is_refused_at_open_and_left_unchanged(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "events.jsonl"
    if content:
        path.write_bytes(content)
    else:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE t (x)")
            db.execute("INSERT INTO t VALUES ('precious')")
        db.close()
    before = path.read_bytes()
    sink = JSONLinesSink(path)
    with pytest.raises(SinkError, match="not a JSON Lines sink file") as caught:
        await sink.open()
    assert str(path) in str(caught.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["events.jsonl"]


async def test_a_corrupt_line_fails_the_read_with_sink_error_naming_the_file_and_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    first, second = messages("a", "b")
    path.write_bytes(HEADER + line(first) + b"not json\n" + line(second))
    async with JSONLinesSink(path) as sink:
        with pytest.raises(SinkError, match=r"events\.jsonl:3:") as caught:
            await sink.read()
    assert isinstance(caught.value.__cause__, msgspec.DecodeError)


async def test_an_unknown_type_fails_the_read_naming_the_file_line_and_what_to_do(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    [message] = messages("a")
    unknown = line(message).replace(
        event_type_name(SampleCreated).encode(), b"__main__.GoneAway"
    )
    path.write_bytes(HEADER + line(message) + unknown)
    async with JSONLinesSink(path) as sink:
        with pytest.raises(SinkError, match=r"events\.jsonl:3: .*__type_name__ = '__main__.GoneAway'"):
            await sink.read()


async def test_read_with_on_error_skip_returns_the_good_lines_and_logs_the_bad(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.jsonl"
    first, second = messages("a", "b")
    path.write_bytes(HEADER + line(first) + b"garbage\n" + line(second))
    async with JSONLinesSink(path) as sink:
        assert await sink.read(on_error="skip") == [first, second]
    assert any("events.jsonl:3:" in record.getMessage() for record in caplog.records)


async def test_read_with_an_on_error_callable_gets_each_bad_lines_error(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first, second = messages("a", "b")
    path.write_bytes(HEADER + b"garbage\n" + line(first) + b'{"type": 1}\n' + line(second))
    errors: list[SinkError] = []
    async with JSONLinesSink(path) as sink:
        assert await sink.read(on_error=errors.append) == [first, second]
        with pytest.raises(ValueError, match="on_error"):
            await sink.read(on_error="ignore")  # type: ignore[arg-type]
    assert [str(e).split(": ")[0] for e in errors] == [f"{path}:2", f"{path}:4"]


async def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    [message] = messages("a")
    path.write_bytes(HEADER + b"\n" + line(message) + b"\n")
    async with JSONLinesSink(path) as sink:
        assert await sink.read() == [message]


def test_an_empty_path_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="path is empty"):
        JSONLinesSink("")


async def test_two_sinks_on_one_file_take_turns_and_never_glue_or_repeat_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    batch = messages(*(str(n) for n in range(6)))
    async with JSONLinesSink(path) as first, JSONLinesSink(path) as second:
        await first.write(batch[:2])
        await second.write(batch[:4])  # it sees what the first appended: only 2 and 3 are new
        with open(path, "ab") as crashed:  # noqa: ASYNC230 - a writer that died mid-line
            crashed.write(b'{"type":"torn')
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.write, batch[3:])
            tg.start_soon(second.write, batch[4:])
        stored = await first.read()
    assert sorted(context.message_id for _, context in stored) == sorted(
        context.message_id for _, context in batch
    )
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 1 + len(batch)  # the header, then each message once
    assert all(line.endswith(b"}\n") for line in lines)
    assert (tmp_path / "events.jsonl.torn-1").read_bytes() == b'{"type":"torn'

"""SQLiteSink: WAL, one transaction per batch, a table other tools can read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from bus._errors import SinkError
from bus._events import Event, MessageContext, event_type_name
from bus.sinks import SQLiteSink
from tests.strategies import SampleCreated

pytestmark = pytest.mark.anyio


def messages(*names: str) -> list[tuple[Event, MessageContext]]:
    """One SampleCreated per name, each with a fresh root context."""
    return [(SampleCreated(name, "content"), MessageContext.new()) for name in names]


async def test_the_database_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteSink(path):
        with sqlite3.connect(path) as reader:
            assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_failing_row_in_the_middle_of_a_batch_leaves_nothing_of_that_batch(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    before, batch = messages("before"), messages("first", "poison", "last")
    poison_id = batch[1][1].message_id
    async with SQLiteSink(path) as sink:
        await sink.write(before)
        with sqlite3.connect(path) as admin:
            admin.execute(
                "CREATE TRIGGER poison BEFORE INSERT ON events "
                f"WHEN NEW.message_id = '{poison_id}' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
            )
        with pytest.raises(sqlite3.IntegrityError, match="poisoned"):
            await sink.write(batch)
        assert await sink.read() == before
        # The connection is usable again: no transaction was left open.
        await sink.write([batch[0], batch[2]])
        assert await sink.read() == [*before, batch[0], batch[2]]


async def test_rows_are_plain_json_that_other_tools_can_query(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    [(event, context)] = messages("a")
    async with SQLiteSink(path) as sink:
        await sink.write([(event, context)])
    with sqlite3.connect(path) as reader:
        row = reader.execute(
            "SELECT message_id, type, json_extract(event, '$.name'), "
            "json_extract(context, '$.correlation_id'), typeof(context), stored_at FROM events"
        ).fetchone()
    message_id, type_name, name, correlation_id, storage, stored_at = row
    assert (message_id, type_name, name) == (
        context.message_id,
        event_type_name(SampleCreated),
        "a",
    )
    assert correlation_id == context.correlation_id
    assert storage == "text"
    assert stored_at >= context.timestamp


async def test_a_sink_writes_to_the_table_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    batch = messages("a", "b")
    async with SQLiteSink(path, table="audit_log", synchronous="NORMAL") as sink:
        await sink.write(batch)
        assert await sink.read() == batch
    with sqlite3.connect(path) as reader:
        assert reader.execute("SELECT count(*) FROM audit_log").fetchone() == (2,)


@pytest.mark.parametrize(
    ("option", "value"),
    [("table", "events; DROP TABLE x"), ("synchronous", "OFF")],
)
def test_invalid_options_raise_value_error_at_construction(option: str, value: str) -> None:
    with pytest.raises(ValueError, match=option):
        SQLiteSink(":memory:", **{option: value})  # type: ignore[arg-type]


async def test_an_in_memory_database_works_for_tests() -> None:
    batch = messages("a")
    async with SQLiteSink(":memory:") as sink:
        await sink.write(batch)
        assert await sink.read() == batch


async def test_a_row_that_does_not_decode_fails_the_read_with_sink_error_naming_the_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    async with SQLiteSink(path) as sink:
        await sink.write(messages("a"))
        with sqlite3.connect(path) as admin:
            admin.execute("UPDATE events SET event = '{\"name\": 1}'")
        with pytest.raises(SinkError, match="row") as caught:
            await sink.read()
    assert isinstance(caught.value.__cause__, msgspec.ValidationError)


def test_an_empty_path_is_refused_at_construction_saying_so() -> None:
    with pytest.raises(ValueError, match="path is empty"):
        SQLiteSink("")


async def test_a_bad_row_is_named_by_table_rowid_and_message_id_and_can_be_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.db"
    batch = messages("a", "b", "c")
    async with SQLiteSink(path) as sink:
        await sink.write(batch)
        with sqlite3.connect(path) as admin:
            admin.execute("UPDATE events SET event = 'not json' WHERE rowid = 1")
            admin.execute("UPDATE events SET type = '__main__.Gone' WHERE rowid = 3")
        admin.close()
        with pytest.raises(SinkError, match=r"table events, rowid 1 \(message_id '") as caught:
            await sink.read()
        assert batch[0][1].message_id in str(caught.value)
        assert await sink.read(on_error="skip") == [batch[1]]
        errors: list[SinkError] = []
        assert await sink.read(on_error=errors.append) == [batch[1]]
    assert [("rowid 1" in str(e), "rowid 3" in str(e)) for e in errors] == [
        (True, False),
        (False, True),
    ]
    assert "__type_name__ = '__main__.Gone'" in str(errors[1])
    assert sum("rowid" in record.getMessage() for record in caplog.records) == 2


async def test_a_file_that_is_not_a_database_is_refused_at_open_and_left_unchanged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"my notes\n" * 100)
    sink = SQLiteSink(path)
    with pytest.raises(SinkError, match="notes.txt"):
        await sink.open()
    assert path.read_bytes() == b"my notes\n" * 100


async def test_rows_stored_as_blobs_read_back_and_other_column_types_are_bad_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    batch = messages("a", "b")
    async with SQLiteSink(path) as sink:
        await sink.write(batch)
        with sqlite3.connect(path) as admin:
            admin.execute("UPDATE events SET event = CAST(event AS BLOB) WHERE rowid = 1")
            admin.execute("UPDATE events SET context = 42 WHERE rowid = 2")
        admin.close()
        errors: list[SinkError] = []
        assert await sink.read(on_error=errors.append) == [batch[0]]
    assert len(errors) == 1
    assert "rowid 2" in str(errors[0])


def test_report_bad_record_refuses_an_on_error_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="on_error"):
        SQLiteSink.report_bad_record("ignore", SinkError("bad"))  # type: ignore[arg-type]


async def test_a_table_of_that_name_made_for_something_else_is_refused_and_left_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, title TEXT)")
        db.execute("INSERT INTO events (title) VALUES ('launch')")
    db.close()
    sink = SQLiteSink(path)
    with pytest.raises(SinkError, match="table 'events' exists with other columns"):
        await sink.open()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT title FROM events").fetchall() == [("launch",)]
    db.close()
    async with SQLiteSink(path, table="bus_events") as other:  # another table is fine
        await other.write(messages("a"))


def test_errors_of_the_database_as_a_whole_are_outages_and_an_items_refusal_is_not(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "e.db")
    assert sink.is_outage(sqlite3.OperationalError("database or disk is full"))
    assert sink.is_outage(sqlite3.OperationalError("database is locked"))
    assert sink.is_outage(OSError(27, "File too large"))
    assert not sink.is_outage(sqlite3.IntegrityError("thirteen is refused"))
    assert not sink.is_outage(sqlite3.DataError("string or blob too big"))
    assert not sink.is_outage(ValueError("anything else"))

"""The `Sink` contract, checked on every built-in sink: store, read back, idempotence, errors."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from bus._errors import SinkError
from bus._events import DeadLetter, Event, MessageContext
from bus.sinks import JSONLinesSink, Sink, SQLiteSink
from tests.strategies import (
    SampleCreated,
    SampleMeasured,
    SampleRow,
    SampleTagged,
    SampleWrapper,
)

pytestmark = pytest.mark.anyio

SinkFactory = Callable[[Path], Sink]


@pytest.fixture(
    params=[
        pytest.param(SQLiteSink, id="sqlite"),
        pytest.param(JSONLinesSink, id="jsonl"),
    ]
)
def make_sink(request: pytest.FixtureRequest) -> SinkFactory:
    """Builds a sink of one kind for a path."""
    factory: SinkFactory = request.param
    return factory


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Where the sink under test keeps its data."""
    return tmp_path / "events.store"


def sample_batch() -> list[tuple[Event, MessageContext]]:
    """One message of each sample shape, dead letter and nesting included."""
    root = MessageContext.new({"tenant": "acme"})
    created = SampleCreated("a", "b")
    events: list[Event] = [
        created,
        SampleMeasured(1.5, -3, "kg"),
        SampleTagged(["x", "y"], {"n": 2}, b"\x00\xff"),
        SampleRow(7, "row"),
        SampleWrapper(SampleRow(1, "inner"), SampleCreated("c", "d"), "note"),
        DeadLetter("listen", created, root, "ValueError: boom", 4, "retries_exhausted"),
    ]
    return [(event, root.caused()) for event in events]


async def test_a_sink_reads_back_events_as_their_original_classes_in_store_order(
    make_sink: SinkFactory, store: Path
) -> None:
    first, second = sample_batch(), sample_batch()
    async with make_sink(store) as sink:
        await sink.write(first)
        await sink.write(second)
        stored = await sink.read()
    assert stored == first + second
    assert [type(event) for event, _ in stored] == [type(event) for event, _ in first + second]


async def test_a_sink_keeps_its_events_across_instances(
    make_sink: SinkFactory, store: Path
) -> None:
    batch = sample_batch()
    async with make_sink(store) as sink:
        await sink.write(batch)
    async with make_sink(store) as sink:
        assert await sink.read() == batch


async def test_writing_a_batch_again_stores_nothing_twice(
    make_sink: SinkFactory, store: Path
) -> None:
    batch = sample_batch()
    async with make_sink(store) as sink:
        await sink.write(batch)
        await sink.write(batch)
        await sink.write([*batch[:2], (SampleCreated("new", "one"), MessageContext.new())])
        stored = await sink.read()
    assert stored[: len(batch)] == batch
    assert len(stored) == len(batch) + 1


async def test_a_batch_written_again_by_a_new_instance_stores_nothing_twice(
    make_sink: SinkFactory, store: Path
) -> None:
    batch = sample_batch()
    async with make_sink(store) as sink:
        await sink.write(batch)
    async with make_sink(store) as sink:
        await sink.write(batch)
        assert await sink.read() == batch


async def test_a_message_twice_in_one_batch_is_stored_once(
    make_sink: SinkFactory, store: Path
) -> None:
    message = (SampleCreated("a", "b"), MessageContext.new())
    async with make_sink(store) as sink:
        await sink.write([message, message])
        assert await sink.read() == [message]


async def test_an_empty_batch_stores_nothing(make_sink: SinkFactory, store: Path) -> None:
    async with make_sink(store) as sink:
        await sink.write([])
        assert await sink.read() == []


async def test_concurrent_writes_from_several_tasks_are_all_stored(
    make_sink: SinkFactory, store: Path
) -> None:
    batches = [sample_batch() for _ in range(5)]
    async with make_sink(store) as sink:
        async with anyio.create_task_group() as tasks:
            for batch in batches:
                tasks.start_soon(sink.write, batch)
        stored = await sink.read()
    assert sorted(context.message_id for _, context in stored) == sorted(
        context.message_id for batch in batches for _, context in batch
    )


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(lambda tmp: tmp / "missing" / "events.store", id="missing-directory"),
        pytest.param(lambda tmp: tmp, id="a-directory"),
        pytest.param(lambda tmp: tmp / "plain-file" / "events.store", id="under-a-file"),
    ],
)
async def test_an_unwritable_path_raises_sink_error_naming_it_at_open(
    make_sink: SinkFactory, tmp_path: Path, where: Callable[[Path], Path]
) -> None:
    (tmp_path / "plain-file").write_text("not a directory")
    path = where(tmp_path)
    sink = make_sink(path)
    with pytest.raises(SinkError) as caught:
        await sink.open()
    assert os.fspath(path) in str(caught.value)
    with pytest.raises(SinkError, match="not open"):
        await sink.write(sample_batch())


async def test_a_sink_that_is_not_open_refuses_to_write_and_read(
    make_sink: SinkFactory, store: Path
) -> None:
    sink = make_sink(store)
    with pytest.raises(SinkError, match="not open"):
        await sink.write(sample_batch())
    with pytest.raises(SinkError, match="not open"):
        await sink.read()


async def test_a_closed_sink_closes_again_quietly_and_opens_again(
    make_sink: SinkFactory, store: Path
) -> None:
    batch = sample_batch()
    sink = make_sink(store)
    await sink.open()
    await sink.open()
    await sink.write(batch)
    await sink.close()
    await sink.close()
    with pytest.raises(SinkError, match="not open"):
        await sink.read()
    await sink.open()
    try:
        assert await sink.read() == batch
    finally:
        await sink.close()


async def test_a_sink_is_named_by_its_kind_and_path(make_sink: SinkFactory, store: Path) -> None:
    sink = make_sink(store)
    kind, _, where = sink.name.partition(":")
    assert kind in {"sqlite", "jsonl"}
    assert where == os.fspath(store)
    assert sink.name in repr(sink)


async def test_a_batch_of_something_other_than_events_raises_type_error(
    make_sink: SinkFactory, store: Path
) -> None:
    async with make_sink(store) as sink:
        with pytest.raises(TypeError):
            await sink.write([(object(), MessageContext.new())])  # type: ignore[list-item]
        assert await sink.read() == []


async def test_a_store_with_one_bad_record_reads_the_good_ones_with_on_error_skip(
    make_sink: SinkFactory, store: Path
) -> None:
    batch = sample_batch()
    async with make_sink(store) as sink:
        await sink.write(batch)
        assert await sink.read(on_error="skip") == batch
        reported: list[SinkError] = []
        assert await sink.read(on_error=reported.append) == batch
        assert reported == []
        with pytest.raises(ValueError, match="on_error"):
            await sink.read(on_error="ignore")  # type: ignore[arg-type]


async def test_a_message_id_stored_by_one_instance_is_not_stored_again_by_the_next(
    make_sink: SinkFactory, store: Path
) -> None:
    event = SampleCreated("paid", "order-7")
    first = MessageContext.new(message_id="order-7")
    async with make_sink(store) as sink:
        await sink.write([(event, first)])
    resent = MessageContext.new(message_id="order-7")  # a resend: same id, a new context
    async with make_sink(store) as sink:
        await sink.write([(SampleCreated("paid", "again"), resent)])
        assert await sink.read() == [(event, first)]

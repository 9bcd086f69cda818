"""``bus.sink(event)``: no sink configured, durable storage through the built-in sinks, group
commit across concurrent callers, and a storage that fails (nothing lost, nothing duplicated)."""

from __future__ import annotations

import functools
import importlib
import subprocess
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from bus import (
    BusClosedError,
    BusTerminal,
    Event,
    EventBus,
    MessageContext,
    MessageRegistry,
    SinkUnsetError,
)
from bus.sinks import JSONLinesSink, Sink, SQLiteSink

pytestmark = pytest.mark.anyio

LIMIT = 30


class Stored(Event):
    n: int
    note: str = ""


class OtherStored(Event):
    label: str


class CountingSink(Sink):
    """Wraps a real sink; counts ``write`` calls and batch sizes, and fails the first ``fail`` ones."""

    def __init__(self, inner: Sink, fail: int = 0) -> None:
        self.inner = inner
        self.fail = fail
        self.writes = 0
        self.batch_sizes: list[int] = []
        self.failed_batches: list[list[str]] = []

    @property
    def name(self) -> str:
        return f"counting:{self.inner.name}"

    async def open(self) -> None:
        await self.inner.open()

    async def write(self, batch: Sequence[tuple[Event, MessageContext]]) -> None:
        self.writes += 1
        if self.fail > 0:
            self.fail -= 1
            self.failed_batches.append([context.message_id for _, context in batch])
            raise OSError("storage unavailable")
        self.batch_sizes.append(len(batch))
        await self.inner.write(batch)

    async def read(self) -> list[tuple[Event, MessageContext]]:
        return await self.inner.read()

    async def close(self) -> None:
        await self.inner.close()


SinkFactory = Callable[[Path], Sink]


@pytest.fixture(
    params=[
        pytest.param(lambda p: SQLiteSink(p / "e.db"), id="sqlite"),
        pytest.param(lambda p: JSONLinesSink(p / "e.jsonl"), id="jsonl"),
    ]
)
def make_sink(request: pytest.FixtureRequest) -> SinkFactory:
    factory: SinkFactory = request.param
    return factory


async def test_sink_without_a_configured_sink_raises_sink_unset() -> None:
    with anyio.fail_after(LIMIT):
        async with BusTerminal(MessageRegistry()) as terminal:
            with pytest.raises(SinkUnsetError):
                await terminal.bus.sink(Stored(1))
            # the bus is fine afterwards
            await terminal.bus.publish(Stored(2))
            assert terminal.statistics().sunk == 0


async def test_sink_rejects_a_non_event(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "e.db")
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal:
            with pytest.raises(TypeError):
                await terminal.bus.sink("x")  # type: ignore[arg-type]
            await terminal.bus.sink(Stored(1))
            assert [event for event, _ in await sink.read()] == [Stored(1)]


async def test_sink_returns_once_stored_with_classes_and_contexts(
    tmp_path: Path, make_sink: SinkFactory
) -> None:
    sink = make_sink(tmp_path)
    contexts: list[MessageContext] = []

    async def handler(event: OtherStored, ctx: MessageContext, bus: EventBus) -> None:
        contexts.append(ctx)
        await bus.sink(Stored(3, "from a handler"))

    registry = MessageRegistry()
    registry.register(handler)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry, sinks=[sink]) as terminal:
            await terminal.bus.sink(Stored(1, "one"), headers={"h": "v"})
            stored = await sink.read()
            assert [event for event, _ in stored] == [Stored(1, "one")]
            await terminal.bus.sink(OtherStored("two"))
            await terminal.bus.publish(OtherStored("three"))
            stored = await sink.read()
            assert terminal.statistics().sunk == 3
    events = [event for event, _ in stored]
    assert events == [Stored(1, "one"), OtherStored("two"), Stored(3, "from a handler")]
    assert [type(e) for e in events] == [Stored, OtherStored, Stored]
    first_context = stored[0][1]
    assert isinstance(first_context, MessageContext)
    assert first_context.headers == {"h": "v"}
    assert first_context.causation_id is None
    nested_context = stored[2][1]
    assert nested_context.causation_id == contexts[0].message_id
    assert nested_context.correlation_id == contexts[0].correlation_id
    assert len({context.message_id for _, context in stored}) == 3


async def test_sink_writes_to_every_configured_sink(tmp_path: Path) -> None:
    sqlite = SQLiteSink(tmp_path / "e.db")
    jsonl = JSONLinesSink(tmp_path / "e.jsonl")
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sqlite, jsonl]) as terminal:
            await terminal.bus.sink(Stored(1))
            from_sqlite = await sqlite.read()
            from_jsonl = await jsonl.read()
    assert from_sqlite == from_jsonl
    assert [event for event, _ in from_sqlite] == [Stored(1)]


async def test_concurrent_sink_calls_are_group_committed(
    tmp_path: Path, make_sink: SinkFactory
) -> None:
    sink = CountingSink(make_sink(tmp_path))
    returned: list[int] = []

    async def sink_one(bus: EventBus, n: int) -> None:
        await bus.sink(Stored(n))
        returned.append(n)

    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal:
            async with anyio.create_task_group() as tg:
                for n in range(100):
                    tg.start_soon(sink_one, terminal.bus, n)
            stored = await sink.read()
    assert sorted(returned) == list(range(100))
    assert sorted(event.n for event, _ in stored) == list(range(100))  # type: ignore[attr-defined]
    assert sum(sink.batch_sizes) == 100
    assert sink.writes < 100
    assert max(sink.batch_sizes) > 1


@pytest.mark.parametrize("failures", [1, 3])
async def test_a_failing_storage_loses_and_duplicates_nothing(
    tmp_path: Path, failures: int
) -> None:
    sink = CountingSink(SQLiteSink(tmp_path / "e.db"), fail=failures)
    returned: list[int] = []

    async def sink_one(bus: EventBus, n: int) -> None:
        await bus.sink(Stored(n))
        returned.append(n)

    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal:
            async with anyio.create_task_group() as tg:
                for n in range(50):
                    tg.start_soon(sink_one, terminal.bus, n)
            # a later, single call after the storage recovered
            await terminal.bus.sink(Stored(50))
            returned.append(50)
            stored = await sink.read()
            assert terminal.statistics().sunk == 51
    assert sorted(returned) == list(range(51))
    numbers = [event.n for event, _ in stored]  # type: ignore[attr-defined]
    assert sorted(numbers) == list(range(51))  # each exactly once
    ids = [context.message_id for _, context in stored]
    assert len(set(ids)) == 51
    assert sink.writes == failures + len(sink.batch_sizes)
    assert sum(sink.batch_sizes) == 51  # no event handed to the storage twice once it succeeded
    # the batch in flight was kept and written again, not dropped
    written_again = set(sink.failed_batches[0])
    assert written_again <= set(ids)


class Flaky(Sink):
    """A SQLiteSink whose write raises its first ``fail`` times."""

    def __init__(self, path: Path, fail: int) -> None:
        self.inner = SQLiteSink(path)
        self.fail = fail

    @property
    def name(self) -> str:
        return "flaky"

    async def open(self) -> None:
        await self.inner.open()

    async def write(self, batch: Sequence[tuple[Event, MessageContext]]) -> None:
        if self.fail:
            self.fail -= 1
            # the batch may or may not be stored when a write raises: store it, then fail
            await self.inner.write(batch)
            raise OSError("lost the acknowledgement")
        await self.inner.write(batch)

    async def read(self) -> list[tuple[Event, MessageContext]]:
        return await self.inner.read()

    async def close(self) -> None:
        await self.inner.close()


async def test_a_write_that_stored_but_failed_is_not_duplicated(tmp_path: Path) -> None:
    sink = Flaky(tmp_path / "e.db", fail=2)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal:
            async with anyio.create_task_group() as tg:
                for n in range(20):
                    tg.start_soon(terminal.bus.sink, Stored(n))
            stored = await sink.read()
    assert sorted(event.n for event, _ in stored) == list(range(20))  # type: ignore[attr-defined]


class SlowSink(CountingSink):
    """Takes a while to write each batch, so that calls queue up behind a batch in flight."""

    async def write(self, batch: Sequence[tuple[Event, MessageContext]]) -> None:
        await anyio.sleep(0.05)
        await super().write(batch)


@pytest.mark.parametrize("failures", [0, 2])
async def test_sink_calls_accepted_before_leaving_the_terminal_are_stored(
    tmp_path: Path, failures: int
) -> None:
    sink = SlowSink(SQLiteSink(tmp_path / "e.db"), fail=failures)
    outcomes: dict[int, str] = {}

    async def sink_one(bus: EventBus, n: int) -> None:
        try:
            await bus.sink(Stored(n))
        except Exception as exc:  # noqa: BLE001 - recorded, asserted below
            outcomes[n] = repr(exc)
        else:
            outcomes[n] = "stored"

    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as tg, BusTerminal(sinks=[sink]) as terminal:
            tg.start_soon(sink_one, terminal.bus, 0)
            await anyio.sleep(0.01)  # the first batch is being written
            for n in range(1, 10):
                tg.start_soon(sink_one, terminal.bus, n)
            await anyio.sleep(0.001)  # the calls are queued behind it; now leave
    assert outcomes == dict.fromkeys(range(10), "stored")
    await sink.open()
    try:
        stored = await sink.read()
    finally:
        await sink.close()
    assert sorted(event.n for event, _ in stored) == list(range(10))  # type: ignore[attr-defined]


# --- nothing unstorable is accepted (issue 8, items 1, 2, 4) -----------------------------------


class Loose(Event):
    __type_name__ = "tests.sink.loose"

    value: object


class Measured(Event):
    __type_name__ = "tests.sink.measured"

    value: float
    raw: bytes = b""
    inner: Event | None = None


async def test_an_event_that_cannot_be_stored_raises_type_error_at_the_call_and_blocks_nothing(
    tmp_path: Path, make_sink: SinkFactory
) -> None:
    sink = make_sink(tmp_path)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal:
            bus = terminal.bus
            async with anyio.create_task_group() as tg:
                for n in range(10):
                    tg.start_soon(bus.sink, Stored(n))
                for poison in (Loose(object()), Measured(float("nan")), Measured(float("-inf"))):
                    with pytest.raises(TypeError, match="Loose|Measured"):
                        await bus.sink(poison)
            await bus.sink(Stored(10))
            stored = await sink.read()
            assert terminal.statistics().sunk == 11
    assert sorted(event.n for event, _ in stored) == list(range(11))  # type: ignore[attr-defined]


async def test_whatever_sink_acknowledges_reads_back_equal(
    tmp_path: Path, make_sink: SinkFactory
) -> None:
    sink = make_sink(tmp_path)
    accepted: list[tuple[Event, MessageContext]] = []
    candidates: list[Event] = [
        Measured(1e308, b"\x00\xff", Stored(1, "nested")),
        Measured(-0.0, b"", Measured(0.1, b"x")),
        Measured(5e-324),
        Loose([1, "a", None, {"k": [1.5]}]),
        Loose("text"),
        Loose((1, 2)),  # refused: would come back as a list
        Loose(b"bytes"),  # refused: would come back as text
        Measured(float("inf")),  # refused: JSON has no infinity
    ]
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal:
            for event in candidates:
                try:
                    context = await terminal.bus.sink(event, headers={"tenant": "acme"})
                except TypeError:
                    continue
                accepted.append((event, context))
            assert await sink.read() == accepted
    assert len(accepted) == 5


async def test_an_event_of_a_script_without_a_type_name_is_refused_by_sink_with_advice(
    tmp_path: Path,
) -> None:
    def body(ns: dict[str, object]) -> None:
        ns["__module__"] = "__main__"
        ns["__annotations__"] = {"n": int}

    script_event = types.new_class("FromScript", (Event,), exec_body=body)
    sink = SQLiteSink(tmp_path / "e.db")
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal:
            await terminal.bus.emit(script_event(1))  # type: ignore[call-arg]
            with pytest.raises(TypeError, match="__type_name__"):
                await terminal.bus.sink(script_event(1))  # type: ignore[call-arg]
            assert await sink.read() == []


BAD_HEADERS: list[object] = [{"user": 42}, {"user": None}, {7: "x"}]


@pytest.mark.parametrize("headers", BAD_HEADERS)
async def test_every_bus_call_refuses_headers_that_are_not_str_to_str_naming_the_key(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    inner: list[BaseException] = []

    async def handler(event: OtherStored, ctx: MessageContext, bus: EventBus) -> None:
        for call in (bus.publish, bus.emit, bus.sink):
            try:
                await call(Stored(1), headers=headers)
            except TypeError as error:
                inner.append(error)

    registry = MessageRegistry()
    registry.register(handler)
    key = repr(next(iter(headers)))
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry, sinks=[SQLiteSink(tmp_path / "e.db")]) as terminal:
            bus = terminal.bus
            for routed in (OtherStored("x"), Stored(2)):  # with and without a subscriber
                with pytest.raises(TypeError, match=key):
                    await bus.publish(routed, headers=headers)
                with pytest.raises(TypeError, match=key):
                    await bus.emit(routed, headers=headers)
                with pytest.raises(TypeError, match=key):
                    bus.emit_nowait(routed, headers=headers)
            with pytest.raises(TypeError, match=key):
                await bus.sink(Stored(3), headers=headers)
            with pytest.raises(TypeError, match=key):
                await bus.sink_many([Stored(4)], headers=headers)
            await bus.publish(OtherStored("run the handler"))
            stats = terminal.statistics()
            # refused calls are not counted: only the publish that ran the handler is
            assert (stats.published, stats.emitted, stats.sunk) == (1, 0, 0)
    assert len(inner) == 3
    assert all(key in str(error) for error in inner)


# --- resending without duplicates (issue 8, item 11) -------------------------------------------


async def test_sink_returns_the_stored_context_with_the_callers_message_id(
    tmp_path: Path, make_sink: SinkFactory
) -> None:
    sink = make_sink(tmp_path)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal:
            given = await terminal.bus.sink(Stored(1), message_id="order-1", headers={"h": "v"})
            fresh = await terminal.bus.sink(Stored(2))
            stored = await sink.read()
            with pytest.raises(TypeError, match="message_id"):
                await terminal.bus.sink(Stored(3), message_id=3)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="message_id"):
                await terminal.bus.sink(Stored(3), message_id="")
    assert given.message_id == "order-1"
    assert given.headers == {"h": "v"}
    assert stored == [(Stored(1), given), (Stored(2), fresh)]


async def test_a_resend_with_the_same_message_id_is_stored_once_across_restarts(
    tmp_path: Path, make_sink: SinkFactory
) -> None:
    for round_ in range(3):  # three "processes": each opens the store afresh
        sink = make_sink(tmp_path)
        with anyio.fail_after(LIMIT):
            async with BusTerminal(sinks=[sink]) as terminal:
                async with anyio.create_task_group() as tg:
                    for n in range(20):  # concurrent resends land in one batch too
                        tg.start_soon(
                            functools.partial(
                                terminal.bus.sink, Stored(n, f"try {round_}"), message_id=f"id-{n}"
                            )
                        )
                        tg.start_soon(
                            functools.partial(
                                terminal.bus.sink, Stored(n, "twin"), message_id=f"id-{n}"
                            )
                        )
                await terminal.bus.sink_many(
                    [Stored(100), Stored(101)], message_ids=["id-100", "id-101"]
                )
                stored = await sink.read()
    ids = [context.message_id for _, context in stored]
    assert sorted(ids) == sorted([f"id-{n}" for n in range(20)] + ["id-100", "id-101"])


RESEND_SCRIPT = """
import sys
import anyio
from bus import BusTerminal, Event
from bus.sinks import JSONLinesSink, SQLiteSink


class Paid(Event):
    __type_name__ = "tests.resend.paid"
    order: int


async def main(kind: str, path: str) -> None:
    sink = SQLiteSink(path) if kind == "sqlite" else JSONLinesSink(path)
    async with BusTerminal(sinks=[sink]) as terminal:
        for order in range(5):
            await terminal.bus.sink(Paid(order), message_id=f"paid-{order}")
    async with (SQLiteSink(path) if kind == "sqlite" else JSONLinesSink(path)) as reader:
        print(len(await reader.read()))


anyio.run(main, sys.argv[1], sys.argv[2])
"""


@pytest.mark.parametrize("kind", ["sqlite", "jsonl"])
def test_a_resend_from_a_new_process_with_the_same_message_ids_is_stored_once(
    tmp_path: Path, kind: str
) -> None:
    script = tmp_path / "resend.py"
    script.write_text(RESEND_SCRIPT)
    path = tmp_path / f"store.{kind}"
    counts = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, str(script), kind, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert result.returncode == 0, result.stderr
        counts.append(int(result.stdout))
    assert counts == [5, 5]


# --- sink_many ----------------------------------------------------------------------------------


async def test_sink_many_stores_every_event_in_order_and_returns_their_contexts(
    tmp_path: Path, make_sink: SinkFactory
) -> None:
    sink = CountingSink(make_sink(tmp_path))
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal:
            contexts = await terminal.bus.sink_many(Stored(n) for n in range(10))
            assert await terminal.bus.sink_many([]) == []
            stored = await sink.read()
            assert terminal.statistics().sunk == 10
    assert stored == [(Stored(n), context) for n, context in enumerate(contexts)]
    assert sink.batch_sizes == [10]


async def test_sink_many_checks_every_event_first_and_names_the_bad_one(
    tmp_path: Path, make_sink: SinkFactory
) -> None:
    sink = make_sink(tmp_path)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal:
            bus = terminal.bus
            with pytest.raises(TypeError, match=r"events\[2\]: .*Measured"):
                await bus.sink_many([Stored(0), Stored(1), Measured(float("nan")), Stored(3)])
            with pytest.raises(TypeError, match=r"events\[1\]"):
                await bus.sink_many([Stored(0), "not an event"])  # type: ignore[list-item]
            with pytest.raises(ValueError, match="2 message_ids for 1 events"):
                await bus.sink_many([Stored(0)], message_ids=["a", "b"])
            assert await sink.read() == []
    async with BusTerminal() as terminal:
        with pytest.raises(SinkUnsetError):
            await terminal.bus.sink_many([Stored(0)])
        held = terminal.bus
    with pytest.raises(BusClosedError):
        await held.sink_many([])
    with pytest.raises(BusClosedError):
        await held.sink(Stored(0))


# --- what a script stores decodes where its module is imported (issue 8, item 4) ---------------

SCRIPT_APP = '''
import sys
import anyio
from bus import BusTerminal, Event
from bus.sinks import SQLiteSink


class Paid(Event):
    {type_name}
    order: int


async def main(path: str) -> None:
    async with BusTerminal(sinks=[SQLiteSink(path)]) as terminal:
        await terminal.bus.sink(Paid(7))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
'''


def run_script(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )


async def test_what_a_script_stored_decodes_where_its_module_is_imported(tmp_path: Path) -> None:
    module_name = f"script_app_{tmp_path.name.replace('-', '_')}"
    script = tmp_path / f"{module_name}.py"
    script.write_text(SCRIPT_APP.format(type_name=f'__type_name__ = "{module_name}.Paid"'))
    result = await anyio.to_thread.run_sync(run_script, script, str(tmp_path / "e.db"))
    assert result.returncode == 0, result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module(module_name)  # as uvicorn or pytest would import it
    finally:
        sys.path.remove(str(tmp_path))
    async with SQLiteSink(tmp_path / "e.db") as reader:
        [(event, _)] = await reader.read()
    assert type(event) is module.Paid
    assert event == module.Paid(7)


async def test_a_script_that_sinks_an_event_without_a_type_name_is_told_what_to_do(
    tmp_path: Path,
) -> None:
    script = tmp_path / "unnamed_app.py"
    script.write_text(SCRIPT_APP.format(type_name=""))
    result = await anyio.to_thread.run_sync(run_script, script, str(tmp_path / "e.db"))
    assert result.returncode != 0
    assert "TypeError" in result.stderr
    assert "__type_name__" in result.stderr


async def test_sink_many_from_a_handler_links_each_event_to_the_handled_message(
    tmp_path: Path, make_sink: SinkFactory
) -> None:
    sink = make_sink(tmp_path)
    handled: list[MessageContext] = []
    stored_contexts: list[MessageContext] = []

    async def handler(event: OtherStored, ctx: MessageContext, bus: EventBus) -> None:
        handled.append(ctx)
        stored_contexts.extend(
            await bus.sink_many([Stored(1), Stored(2)], headers={"step": "two"})
        )
        with pytest.raises(TypeError, match=r"message_ids\[1\]"):
            await bus.sink_many([Stored(3), Stored(4)], message_ids=["ok", 4])  # type: ignore[list-item]

    registry = MessageRegistry()
    registry.register(handler)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry, sinks=[sink]) as terminal:
            await terminal.bus.publish(OtherStored("go"), headers={"tenant": "acme"})
            stored = await sink.read()
    [parent] = handled
    assert [event for event, _ in stored] == [Stored(1), Stored(2)]
    assert [context for _, context in stored] == stored_contexts
    for context in stored_contexts:
        assert context.causation_id == parent.message_id
        assert context.correlation_id == parent.correlation_id
        assert context.headers == {"tenant": "acme", "step": "two"}
    assert len({context.message_id for context in stored_contexts}) == 2

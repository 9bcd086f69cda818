"""The sink path (bus._sink_actor): a batch the storage refuses for one item's sake is split so that
only that item's caller fails; a storage outage keeps the batch and retries it with backoff."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pytest
from trio.testing import MockClock

from bus import BusTerminal, Event, MessageContext
from bus._sink_actor import OUTAGE_AFTER
from bus.sinks import JSONLinesSink, OnError, Sink, SQLiteSink

pytestmark = pytest.mark.anyio

LIMIT = 30


class Numbered(Event):
    __type_name__ = "tests.sink_actor.numbered"

    n: int


class Refused(Exception):
    """The storage's own refusal of one item (a constraint, a size limit)."""


class StorageDown(Exception):
    """A storage failure the sink cannot tell from an item's refusal (it is no `OSError`, so
    `Sink.is_outage` says no): only splitting the batch finds out that everything fails."""


class MemorySink(Sink):
    """Stores in a dict, with no thread: its failures are scripted per item or for everything."""

    def __init__(self, refuse: Callable[[Event], bool] = lambda _: False) -> None:
        self.refuse = refuse
        self.down = False
        #: items the "disk" still has room for (None: no limit); a write that does not fit fails
        #: with ENOSPC, as on a nearly full disk where small writes still succeed
        self.room: int | None = None
        self.rows: dict[str, tuple[Event, MessageContext]] = {}
        self.writes: list[int] = []
        self.failed_writes = 0
        self._failure_waiters: list[tuple[int, anyio.Event]] = []

    async def failures(self, count: int) -> None:
        """Return once ``count`` writes have failed."""
        if self.failed_writes < count:
            reached = anyio.Event()
            self._failure_waiters.append((count, reached))
            await reached.wait()

    def _failed(self) -> None:
        self.failed_writes += 1
        for count, reached in self._failure_waiters:
            if self.failed_writes >= count:
                reached.set()

    @property
    def name(self) -> str:
        return "memory:test"

    async def open(self) -> None:
        pass

    async def write(self, batch: Sequence[tuple[Event, MessageContext]]) -> None:
        await anyio.lowlevel.checkpoint()
        self.writes.append(len(batch))
        if self.down:
            self._failed()
            raise StorageDown("storage unavailable")
        if self.room is not None and len(batch) > self.room:
            self._failed()
            raise OSError(errno.ENOSPC, "No space left on device")
        if any(self.refuse(event) for event, _ in batch):
            self._failed()
            raise Refused("the storage refuses this item")
        for event, context in batch:
            self.rows.setdefault(context.message_id, (event, context))
        if self.room is not None:
            self.room -= len(batch)

    async def read(self, *, on_error: OnError = "raise") -> list[tuple[Event, MessageContext]]:
        return list(self.rows.values())

    async def close(self) -> None:
        pass


class Picky(Sink):
    """A real sink that refuses (before writing) any batch holding an event ``refuse`` picks."""

    def __init__(self, inner: Sink, refuse: Callable[[Event], bool]) -> None:
        self.inner = inner
        self.refuse = refuse

    @property
    def name(self) -> str:
        return f"picky:{self.inner.name}"

    async def open(self) -> None:
        await self.inner.open()

    async def write(self, batch: Sequence[tuple[Event, MessageContext]]) -> None:
        if any(self.refuse(event) for event, _ in batch):
            raise Refused("the storage refuses this item")
        await self.inner.write(batch)

    async def read(self, *, on_error: OnError = "raise") -> list[tuple[Event, MessageContext]]:
        return await self.inner.read(on_error=on_error)

    async def close(self) -> None:
        await self.inner.close()


def is_13(event: Event) -> bool:
    return isinstance(event, Numbered) and event.n == 13


async def sink_all(terminal: BusTerminal, numbers: range) -> dict[int, str]:
    """Sink ``Numbered(n)`` for each n from concurrent tasks; each n's outcome."""
    outcomes: dict[int, str] = {}

    async def one(n: int) -> None:
        try:
            await terminal.bus.sink(Numbered(n))
        except Exception as error:  # noqa: BLE001 - recorded, asserted by the caller
            outcomes[n] = type(error).__name__
        else:
            outcomes[n] = "stored"

    async with anyio.create_task_group() as tg:
        for n in numbers:
            tg.start_soon(one, n)
    return outcomes


@pytest.mark.parametrize(
    "make_sink",
    [
        pytest.param(lambda p: Picky(SQLiteSink(p / "e.db"), is_13), id="sqlite"),
        pytest.param(lambda p: Picky(JSONLinesSink(p / "e.jsonl"), is_13), id="jsonl"),
        pytest.param(lambda _: MemorySink(is_13), id="memory"),
    ],
)
async def test_a_batch_refused_for_one_items_sake_is_split_and_only_that_caller_fails(
    tmp_path: Path, make_sink: Callable[[Path], Sink]
) -> None:
    sink = make_sink(tmp_path)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal:
            outcomes = await sink_all(terminal, range(40))
            await terminal.bus.sink(Numbered(40))  # the sink goes on
            stored = await sink.read()
            assert terminal.statistics().sunk == 40
    assert outcomes == {n: "Refused" if n == 13 else "stored" for n in range(40)}
    assert sorted(event.n for event, _ in stored) == [n for n in range(41) if n != 13]  # type: ignore[attr-defined]


async def test_a_row_sqlite_itself_refuses_fails_only_its_caller(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    sink = SQLiteSink(path)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal:
            with sqlite3.connect(path) as admin:
                admin.execute(
                    "CREATE TRIGGER no_13 BEFORE INSERT ON events "
                    "WHEN json_extract(NEW.event, '$.n') = 13 "
                    "BEGIN SELECT RAISE(ABORT, 'thirteen is refused'); END"
                )
            admin.close()
            outcomes = await sink_all(terminal, range(30))
            stored = await sink.read()
    assert outcomes == {n: "IntegrityError" if n == 13 else "stored" for n in range(30)}
    assert sorted(event.n for event, _ in stored) == [n for n in range(30) if n != 13]  # type: ignore[attr-defined]


def mock_clock_trio() -> object:
    return pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mockclock")


@pytest.mark.parametrize("anyio_backend", ["asyncio", mock_clock_trio()])
async def test_a_storage_outage_keeps_every_caller_waiting_and_stores_each_once_it_returns() -> None:
    sink = MemorySink()
    sink.down = True
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal, anyio.create_task_group() as tg:
            outcomes: dict[int, str] = {}

            async def run() -> None:
                outcomes.update(await sink_all(terminal, range(30)))

            tg.start_soon(run)
            await sink.failures(3 * OUTAGE_AFTER)  # a few rounds of backoff
            assert outcomes == {}  # nobody got an error: an outage is no one item's fault
            sink.down = False
    assert outcomes == dict.fromkeys(range(30), "stored")
    assert sorted(event.n for event, _ in sink.rows.values()) == list(range(30))  # type: ignore[attr-defined]
    # a split that finds no write succeeding stops early, rather than writing each item alone
    assert max(sink.writes) == 30


@pytest.mark.parametrize("anyio_backend", ["asyncio", mock_clock_trio()])
async def test_a_disk_that_fills_up_mid_batch_refuses_no_caller_and_stores_each_once_space_is_freed() -> (
    None
):
    sink = MemorySink()
    sink.room = 10  # the small writes of a split would fit, and then blame the items that do not
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal, anyio.create_task_group() as tg:
            outcomes: dict[int, str] = {}

            async def run() -> None:
                outcomes.update(await sink_all(terminal, range(30)))

            tg.start_soon(run)
            await sink.failures(3)
            # a split (which needs no pause) would be over by now, its "culprits" refused; the
            # whole batch's next try is a backoff (0.2 s or more) away
            await anyio.sleep(0.02)
            assert outcomes == {}  # a full disk is no one item's fault
            sink.room = None  # space freed
    assert outcomes == dict.fromkeys(range(30), "stored")
    assert sorted(event.n for event, _ in sink.rows.values()) == list(range(30))  # type: ignore[attr-defined]


@pytest.mark.parametrize("anyio_backend", ["asyncio", mock_clock_trio()])
async def test_a_lone_refused_item_fails_its_caller_once_later_writes_show_the_storage_works() -> None:
    sink = MemorySink(is_13)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal, anyio.create_task_group() as tg:
            outcome: list[str] = []

            async def poison() -> None:
                try:
                    await terminal.bus.sink(Numbered(13))
                except Refused:
                    outcome.append("refused")

            tg.start_soon(poison)
            await sink.failures(2)  # alone, it looks like an outage: retried
            assert outcome == []
            await terminal.bus.sink(Numbered(1))  # written with it, after it: the storage works
    assert outcome == ["refused"]
    assert [event for event, _ in sink.rows.values()] == [Numbered(1)]


@pytest.mark.parametrize("anyio_backend", ["asyncio", mock_clock_trio()])
async def test_many_refused_items_at_the_front_of_a_batch_hold_no_one_else_hostage() -> None:
    sink = MemorySink(lambda event: isinstance(event, Numbered) and event.n < 12)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal:
            outcomes = await sink_all(terminal, range(40))
    assert outcomes == {n: "Refused" if n < 12 else "stored" for n in range(40)}
    assert sorted(event.n for event, _ in sink.rows.values()) == list(range(12, 40))  # type: ignore[attr-defined]


@pytest.mark.parametrize("anyio_backend", ["asyncio", mock_clock_trio()])
async def test_items_that_failed_during_an_outage_ending_mid_split_are_stored_not_blamed() -> None:
    sink = MemorySink()
    sink.down = True
    with anyio.fail_after(LIMIT):
        async with BusTerminal(sinks=[sink]) as terminal, anyio.create_task_group() as tg:
            outcomes: dict[int, str] = {}

            async def run() -> None:
                outcomes.update(await sink_all(terminal, range(40)))

            tg.start_soon(run)
            await sink.failures(5)  # in the middle of the first split
            sink.down = False
    assert outcomes == dict.fromkeys(range(40), "stored")
    assert len(sink.rows) == 40

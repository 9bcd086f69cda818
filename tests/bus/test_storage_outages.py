"""A real SQLite database that refuses every write for a while (another program's trigger, as a
full disk or a locked-down table would): callers wait, nobody is told an error, nothing is lost or
stored twice, and shutdown during the outage is bounded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from bus import BusClosedError, BusTerminal, MessageRegistry
from bus.sinks import SQLiteSink
from tests.bus.test_sink_actor import Numbered, sink_all

pytestmark = pytest.mark.anyio

LIMIT = 30

REFUSE_ALL = (
    "CREATE TRIGGER outage BEFORE INSERT ON events "
    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
)


def admin(path: Path, statement: str) -> None:
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.execute(statement)
    finally:
        connection.close()


async def test_callers_wait_out_a_sqlite_outage_and_each_event_is_stored_once(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with anyio.fail_after(LIMIT):
        async with BusTerminal(MessageRegistry(), sinks=[SQLiteSink(path)]) as terminal:
            await terminal.bus.sink(Numbered(-1))  # before the outage
            admin(path, REFUSE_ALL)
            outcomes: dict[int, str] = {}
            many: list[int] = []

            async def single_callers() -> None:
                outcomes.update(await sink_all(terminal, range(40)))

            async def batch_caller() -> None:
                contexts = await terminal.bus.sink_many([Numbered(n) for n in range(100, 110)])
                many.extend(range(100, 100 + len(contexts)))

            async with anyio.create_task_group() as tg:
                tg.start_soon(single_callers)
                tg.start_soon(batch_caller)
                await anyio.sleep(0.5)  # several failed writes and restarts with backoff
                assert outcomes == {}
                assert many == []
                admin(path, "DROP TRIGGER outage")
            assert terminal.statistics().sunk == 51
    assert outcomes == dict.fromkeys(range(40), "stored")
    assert many == list(range(100, 110))
    async with SQLiteSink(path) as reader:
        stored = sorted(event.n for event, _ in await reader.read())  # type: ignore[attr-defined]
    assert stored == [-1, *range(40), *range(100, 110)]


async def test_leaving_the_terminal_during_a_sqlite_outage_fails_waiting_callers_within_the_timeout(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    outcomes: list[str] = []

    async def caller(terminal: BusTerminal, n: int) -> None:
        try:
            await terminal.bus.sink(Numbered(n))
            outcomes.append("stored")
        except BusClosedError:
            outcomes.append("closed")

    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as tg:
            terminal = BusTerminal(MessageRegistry(), sinks=[SQLiteSink(path)], shutdown_timeout=1.0)
            async with terminal:
                admin(path, REFUSE_ALL)
                for n in range(10):
                    tg.start_soon(caller, terminal, n)
                await anyio.sleep(0.2)
                leaving = anyio.current_time()
            left = anyio.current_time() - leaving
    assert left < 1.0 + 5.0  # the timeout, with generous slack for a loaded machine
    assert outcomes == ["closed"] * 10
    # nothing half-written: the database opens and holds none of them
    admin(path, "DROP TRIGGER outage")
    async with SQLiteSink(path) as reader:
        assert await reader.read() == []

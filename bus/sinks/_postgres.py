"""PostgresSink: one PostgreSQL table, written through asyncpg, one transaction per batch."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, final
from urllib.parse import urlsplit

import anyio
import msgspec

from bus._asyncio_only import require_asyncio
from bus._codec import JSON
from bus._errors import SinkError, UnknownEventTypeError
from bus._events import Event, MessageContext
from bus.sinks._base import OnError, Sink

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@final
class PostgresSink(Sink):
    """Stores events in a PostgreSQL table (needs the extra ``actorbus[postgres]``, asyncpg).

    The table (``actorbus_events`` unless ``table`` says otherwise) is created if missing::

        seq BIGINT GENERATED ALWAYS AS IDENTITY, message_id TEXT PRIMARY KEY, type TEXT,
        event JSONB-compatible TEXT, context TEXT, stored_at TIMESTAMPTZ

    ``event`` and ``context`` are JSON text (cast to ``jsonb`` to query them), ``type`` is the
    event's type name; ``seq`` keeps the store order. A batch is one statement in one
    transaction: ``INSERT ... SELECT FROM unnest(...) ON CONFLICT (message_id) DO NOTHING``, so a
    message id already stored (or twice in the batch) is stored once, and the commit is durable
    when `write` returns (the server's ``synchronous_commit``, on by default).

    asyncpg runs on asyncio only: on trio, `open` raises `SinkError` saying so. A bad DSN or an
    unreachable server raises `SinkError` naming host and port at `open` (within
    ``connect_timeout`` seconds). A connection lost between batches is opened again by the next
    `write`.
    """

    def __init__(
        self,
        dsn: str,
        *,
        table: str = "actorbus_events",
        connect_timeout: float = 10.0,
    ) -> None:
        """A sink into ``table`` of the database at ``dsn`` (``postgresql://user@host:port/db``)."""
        if not _IDENTIFIER.fullmatch(table):
            msg = f"table must be a plain SQL identifier, got {table!r}"
            raise ValueError(msg)
        if not isinstance(dsn, str):
            msg = f"dsn must be a str, got {dsn!r}"
            raise TypeError(msg)
        if not connect_timeout > 0:
            msg = f"connect_timeout must be > 0 seconds, got {connect_timeout!r}"
            raise ValueError(msg)
        self._dsn = dsn
        parts = urlsplit(dsn)
        try:
            port = parts.port or 5432
        except ValueError:
            port = 0
        self._where = f"{parts.hostname or 'localhost'}:{port}"
        self._database = parts.path.lstrip("/") or "postgres"
        self._table = table
        self._timeout = connect_timeout
        self._insert = (
            f"INSERT INTO {table} (message_id, type, event, context) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) "
            "ON CONFLICT (message_id) DO NOTHING"
        )
        self._select = f"SELECT seq, message_id, type, event, context FROM {table} ORDER BY seq"
        self._connection: Any = None
        self._lock = anyio.Lock()

    @property
    def name(self) -> str:
        """``"postgres:<host>:<port>/<database>/<table>"``."""
        return f"postgres:{self._where}/{self._database}/{self._table}"

    async def open(self) -> None:
        """Connect and create the table if missing; `SinkError` naming host and port if not."""
        async with self._lock:
            if self._connection is None:
                self._connection = await self._connect()

    async def _connect(self) -> Any:
        require_asyncio("PostgresSink", SinkError)
        try:
            import asyncpg  # type: ignore[import-untyped]
        except ImportError as error:
            msg = "PostgresSink needs asyncpg: pip install 'actorbus[postgres]'"
            raise SinkError(msg) from error
        try:
            with anyio.fail_after(self._timeout):
                connection = await asyncpg.connect(self._dsn, timeout=self._timeout)
        except Exception as error:  # noqa: BLE001 - every failure to connect is a SinkError
            msg = f"cannot open PostgreSQL sink at {self._where}: {type(error).__name__}: {error}"
            raise SinkError(msg) from error
        try:
            await connection.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} ("
                "seq BIGINT GENERATED ALWAYS AS IDENTITY, "
                "message_id TEXT PRIMARY KEY, type TEXT NOT NULL, event TEXT NOT NULL, "
                "context TEXT NOT NULL, stored_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
        except Exception as error:
            await connection.close()
            if isinstance(error, asyncpg.UniqueViolationError):
                # two sinks created the same table at once: the other one won, which is fine
                return await self._connect()
            msg = f"cannot create table {self._table} at {self._where}: {error}"
            raise SinkError(msg) from error
        return connection

    def _connected(self) -> Any:
        if self._connection is None:
            msg = f"PostgreSQL sink {self.name} is not open"
            raise SinkError(msg)
        return self._connection

    async def _usable_connection(self) -> Any:
        """The open connection, or a new one when the last was lost or discarded."""
        connection = self._connected()
        if connection.is_closed():
            self._connection = connection = await self._connect()
        return connection

    async def write(self, batch: Sequence[tuple[Event, MessageContext]]) -> None:
        """Insert ``batch`` in one transaction, skipping message ids already stored."""
        self._connected()
        if not batch:
            return
        encode_event = JSON.encode_event
        encode_context = JSON.encode_context
        try:
            ids = [context.message_id for _, context in batch]
            types = [type(event).__type_name__ for event, _ in batch]
            events = [encode_event(event).decode() for event, _ in batch]
            contexts = [encode_context(context).decode() for _, context in batch]
        except (AttributeError, TypeError) as error:
            msg = f"a sink batch holds (Event, MessageContext) pairs: {error}"
            raise TypeError(msg) from error
        async with self._lock:
            connection = await self._usable_connection()
            try:
                await connection.execute(self._insert, ids, types, events, contexts)
            except BaseException:
                _discard(connection)
                raise

    def is_outage(self, error: Exception) -> bool:
        """`OSError`s, a lost or unusable connection, and the server's own troubles (disk full
        or out of resources, an administrator's shutdown, an I/O error): none is one event's
        fault. A constraint or a value the table refuses is."""
        if isinstance(error, OSError):
            return True
        try:
            import asyncpg  # an optional extra: imported where it is used
        except ImportError:  # pragma: no cover - the sink cannot have written without it
            return False
        exceptions = asyncpg.exceptions
        return isinstance(
            error,
            (
                asyncpg.InterfaceError,
                exceptions.PostgresConnectionError,
                exceptions.InsufficientResourcesError,
                exceptions.OperatorInterventionError,
                exceptions.PostgresSystemError,
            ),
        )

    async def read(self, *, on_error: OnError = "raise") -> list[tuple[Event, MessageContext]]:
        """Every stored message in store order, decoded to its original event class.

        A row that does not decode becomes a `SinkError` naming the sink, the table, the row's
        ``seq`` and its message id, handled as ``on_error`` says (see `Sink.report_bad_record`)."""
        self.check_on_error(on_error)
        async with self._lock:
            connection = await self._usable_connection()
            try:
                rows = await connection.fetch(self._select)
            except BaseException:
                _discard(connection)
                raise
        decode_event = JSON.decode_event
        decode_context = JSON.decode_context
        messages: list[tuple[Event, MessageContext]] = []
        for seq, message_id, type_name, event, context in rows:
            try:
                messages.append(
                    (decode_event(type_name, event.encode()), decode_context(context.encode()))
                )
            except (msgspec.DecodeError, UnknownEventTypeError) as error:
                bad = SinkError(
                    f"{self.name}: table {self._table}, seq {seq} (message_id {message_id!r}): "
                    f"{error}"
                )
                bad.__cause__ = error
                self.report_bad_record(on_error, bad)
        return messages

    async def close(self) -> None:
        """Close the connection; does nothing if it is not open."""
        async with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                await connection.close()


def _discard(connection: Any) -> None:
    """Drop a connection whose statement failed or was cancelled, so the next call opens a new one.

    A statement cut short (the server ended the session, a timeout, a cancellation) can leave an
    asyncpg connection that still looks open but refuses every later call with "another operation
    is in progress": retrying on it would hold the batch hostage for ever.
    """
    connection.terminate()

"""The embedded default sink: one SQLite table, written through stdlib sqlite3 in a worker thread."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Sequence
from typing import Literal, final

import msgspec

from bus._codec import JSON
from bus._errors import SinkError, UnknownEventTypeError
from bus._events import Event, MessageContext
from bus.sinks._base import OnError, Sink, _Serial

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COLUMNS = {"message_id", "type", "event", "context", "stored_at"}


@final
class SQLiteSink(Sink):
    """Stores events in a SQLite database file, one row per message.

    The table (``events`` unless ``table`` says otherwise) is::

        message_id TEXT PRIMARY KEY, type TEXT, event TEXT, context TEXT, stored_at REAL

    ``event`` and ``context`` are JSON (query them with ``json_extract``), ``type`` is the
    event's type name, ``stored_at`` when the batch was written; rows keep their insertion order
    (``rowid``). A batch is one transaction of ``INSERT OR IGNORE``, so a message id already
    stored is skipped.

    The database runs in WAL mode, so readers (``sqlite3`` on the command line, another
    process) do not block the writer. ``synchronous`` is ``"FULL"`` by default: each batch's
    commit is fsynced, so a batch `write` returned for survives a power loss or an OS crash,
    which is what the bus's ``sink`` promises. ``"NORMAL"`` skips that fsync (WAL still
    protects against corruption and against the process crashing) and is faster (1.6x for
    100-row batches on the development machine, far more on slow disks), at the price of
    possibly losing the last commits on a power loss or an OS crash.

    The directory must exist: a missing directory is usually a configuration mistake, and
    `open` reports it with `SinkError` rather than creating it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str = "events",
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> None:
        """A sink for the database at ``path``, storing into ``table``; see the class doc.

        ``path`` may be ``":memory:"`` (for tests); an empty path raises `ValueError`.
        """
        if not os.fspath(path):
            msg = "SQLiteSink path is empty: give the database file's path (or ':memory:')"
            raise ValueError(msg)
        if not _IDENTIFIER.fullmatch(table):
            msg = f"table must be a plain SQL identifier, got {table!r}"
            raise ValueError(msg)
        if synchronous not in ("FULL", "NORMAL"):
            msg = f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}"
            raise ValueError(msg)
        self._path = os.fspath(path)
        self._table = table
        self._synchronous = synchronous
        self._insert = (
            f"INSERT OR IGNORE INTO {table} (message_id, type, event, context, stored_at) "
            "VALUES (?, ?, ?, ?, ?)"
        )
        self._select = (
            f"SELECT rowid, message_id, type, event, context FROM {table} ORDER BY rowid"
        )
        self._serial = _Serial("sqlite-sink")
        self._connection: sqlite3.Connection | None = None

    @property
    def name(self) -> str:
        """``"sqlite:<path>"``."""
        return f"sqlite:{self._path}"

    @property
    def path(self) -> str:
        """The database file's path, as given."""
        return self._path

    async def open(self) -> None:
        """Open (creating if need be) the database and its table, in WAL mode.

        Raises `SinkError` naming the path if the database cannot be opened or written.
        """
        await self._serial.run(self._open)

    def _open(self) -> None:
        if self._connection is not None:
            return
        try:
            # isolation_level=None: transactions are begun and committed explicitly, one per
            # batch, rather than by the sqlite3 module's implicit rules.
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise self._error(error) from error
        try:
            (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode != "wal" and self._path != ":memory:":
                msg = f"cannot open SQLite sink at {self._path!r}: journal mode stays {mode!r}"
                raise SinkError(msg)
            connection.execute(f"PRAGMA synchronous={self._synchronous}")
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} (message_id TEXT PRIMARY KEY, "
                "type TEXT NOT NULL, event TEXT NOT NULL, context TEXT NOT NULL, "
                "stored_at REAL NOT NULL)"
            )
            self._check_table(connection)
            # Takes the write lock once, so that a read-only database fails here, not later.
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
        except BaseException as error:
            connection.close()
            if isinstance(error, sqlite3.Error):
                raise self._error(error) from error
            raise
        self._connection = connection

    def _check_table(self, connection: sqlite3.Connection) -> None:
        """Refuse a table of the same name that some other program made for something else."""
        info = connection.execute(f"PRAGMA table_info({self._table})").fetchall()
        columns = {row[1]: row[5] for row in info}  # name -> position in the primary key
        if set(columns) != _COLUMNS or columns["message_id"] != 1:
            msg = (
                f"cannot open SQLite sink at {self._path!r}: table {self._table!r} exists with "
                f"other columns ({', '.join(columns)}); it is not this sink's, and was not "
                "changed. Give the sink another table= or database"
            )
            raise SinkError(msg)

    def _error(self, error: sqlite3.Error) -> SinkError:
        return SinkError(f"cannot open SQLite sink at {self._path!r}: {error}")

    def _connected(self) -> sqlite3.Connection:
        if self._connection is None:
            msg = f"SQLite sink at {self._path!r} is not open"
            raise SinkError(msg)
        return self._connection

    async def write(self, batch: Sequence[tuple[Event, MessageContext]]) -> None:
        """Insert ``batch`` in one transaction, skipping message ids already stored."""
        if batch:
            await self._serial.run(lambda: self._write(batch))

    def _write(self, batch: Sequence[tuple[Event, MessageContext]]) -> None:
        connection = self._connected()
        encode_event = JSON.encode_event
        encode_context = JSON.encode_context
        now = time.time()
        try:
            rows = [
                (
                    context.message_id,
                    type(event).__type_name__,
                    encode_event(event).decode(),
                    encode_context(context).decode(),
                    now,
                )
                for event, context in batch
            ]
        except AttributeError as error:
            msg = f"a sink batch holds (Event, MessageContext) pairs: {error}"
            raise TypeError(msg) from error
        # IMMEDIATE: take the write lock up front, so that a busy database makes this wait (up
        # to sqlite3's 5 s busy timeout) at the start instead of failing half-way.
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(self._insert, rows)
            connection.execute("COMMIT")
        except BaseException:
            # Some errors (a full disk, an I/O error) end the transaction by themselves.
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def is_outage(self, error: Exception) -> bool:
        """`OSError`s and SQLite's operational errors ("database or disk is full", "disk I/O
        error", "database is locked", a table dropped by someone else): none is one event's
        fault. A constraint (`sqlite3.IntegrityError`, a trigger's ``RAISE``) or a value SQLite
        cannot store (`sqlite3.DataError`) is, and is not an outage."""
        return isinstance(error, (OSError, sqlite3.OperationalError))

    async def read(self, *, on_error: OnError = "raise") -> list[tuple[Event, MessageContext]]:
        """Every stored message in insertion order, decoded to its original event class.

        A row that does not decode becomes a `SinkError` naming the database, the table, the
        rowid and the message id, handled as ``on_error`` says (see `Sink.report_bad_record`).
        """
        self.check_on_error(on_error)
        rows = await self._serial.run(lambda: self._connected().execute(self._select).fetchall())
        decode_event = JSON.decode_event
        decode_context = JSON.decode_context
        messages: list[tuple[Event, MessageContext]] = []
        for rowid, message_id, type_name, event, context in rows:
            try:
                messages.append(
                    (decode_event(type_name, _bytes(event)), decode_context(_bytes(context)))
                )
            except (msgspec.DecodeError, UnknownEventTypeError, TypeError) as error:
                msg = (
                    f"{self._path}: table {self._table}, rowid {rowid} "
                    f"(message_id {message_id!r}): {error}"
                )
                bad = SinkError(msg)
                bad.__cause__ = error
                self.report_bad_record(on_error, bad)
        return messages

    async def close(self) -> None:
        """Close the database connection; does nothing if it is not open."""
        await self._serial.run(self._close)
        self._serial.stop()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _bytes(value: str | bytes) -> bytes:
    """A column's value as bytes: TEXT as this sink writes it, or a BLOB someone stored."""
    return value.encode() if isinstance(value, str) else value

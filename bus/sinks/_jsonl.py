"""A sink that appends one JSON envelope per line to a file, fsynced per batch."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator, Sequence
from typing import final

import msgspec

from bus._codec import JSON
from bus._errors import SinkError, UnknownEventTypeError
from bus._events import Event, MessageContext
from bus.sinks._base import OnError, Sink, _Serial

try:
    import fcntl
except ImportError:  # Windows: no flock; one writer per file is then up to the application
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("bus.sinks")

#: the first line of every file this sink writes: how it knows a file is its own
HEADER = b'{"actorbus":"jsonl-sink","version":1}\n'


class _IdContext(msgspec.Struct):
    message_id: str


class _IdOnly(msgspec.Struct):
    """The one field of an envelope the index needs; the rest is skipped unparsed."""

    context: _IdContext


_read_id = msgspec.json.Decoder(_IdOnly).decode


@final
class JSONLinesSink(Sink):
    """Appends each message to a text file as one line: the envelope of `bus.encode_json`,
    ``{"type": ..., "event": {...}, "context": {...}}``, after a first header line
    (``{"actorbus":"jsonl-sink","version":1}``) that marks the file as this sink's own.

    Each batch is appended with one ``write`` system call and fsynced before `write` returns.
    A file cannot commit a batch atomically: if the process dies in the middle of a write, the
    lines written so far stay, and the batch is written again by whoever retries it.

    `open` refuses (with `SinkError`, leaving it byte-for-byte unchanged) a file that does not
    start with the header: notes, a database, anything this sink did not write. In its own file
    it moves an incomplete last line (the remains of a write that never returned) aside to
    ``<file>.torn-<n>``, and reads every message id already stored into an index, so that a
    message id is appended once, across processes and restarts (the index costs about 120
    bytes of memory per stored message, and `open` reads the whole file). `read` returns each
    message id once (its first line) all the same.

    Several sinks (in one process or several) may append to one file: each write holds an
    advisory lock (``flock``, where the platform has it) and first indexes what the others
    appended since, so lines are never glued together nor a message id appended twice.

    The directory must exist; `open` creates the file if needed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """A sink appending to the file at ``path``; an empty path raises `ValueError`."""
        self._path = os.fspath(path)
        if not self._path:
            msg = "JSONLinesSink path is empty: give the file's path"
            raise ValueError(msg)
        self._serial = _Serial("jsonl-sink")
        self._file: io.FileIO | None = None
        self._written: set[str] = set()
        self._end = 0  # where the complete lines end, as far as this sink knows

    @property
    def name(self) -> str:
        """``"jsonl:<path>"``."""
        return f"jsonl:{self._path}"

    @property
    def path(self) -> str:
        """The file's path, as given."""
        return self._path

    async def open(self) -> None:
        """Open the file for appending, creating it (with its header line) if need be.

        Raises `SinkError` naming the path if the file cannot be opened for writing, or is not
        this sink's own (it does not start with the header line); such a file is not modified.
        """
        await self._serial.run(self._open)

    def _fail(self, reason: object) -> SinkError:
        return SinkError(f"cannot open JSON Lines sink at {self._path!r}: {reason}")

    def _open(self) -> None:
        if self._file is not None:
            return
        try:
            created = not os.path.exists(self._path)
            # O_APPEND: every write lands at the end, whoever else appends. Opening never
            # changes an existing file: `_adopt` decides whether it is this sink's own.
            descriptor = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        except OSError as error:
            raise self._fail(error.strerror or error) from error
        # Unbuffered: a failed write leaves nothing in a buffer to be flushed later, after the
        # partial line has been cut off.
        file = open(descriptor, "r+b", buffering=0)  # noqa: SIM115 - open until close()
        try:
            with _exclusive(file):
                self._adopt(file)
            if created:
                _fsync_directory(self._path)
        except OSError as error:
            file.close()
            raise self._fail(error.strerror or error) from error
        except BaseException:
            file.close()
            raise
        self._file = file

    def _adopt(self, file: io.FileIO) -> None:
        """Check that ``file`` is this sink's own, move a torn tail aside, index its ids."""
        file.seek(0)
        head = file.read(len(HEADER))
        if head != HEADER:
            if not HEADER.startswith(head):
                msg = (
                    "the file is not a JSON Lines sink file (its first line is not "
                    f"{HEADER.decode().strip()}); refusing to write to it, and it was not "
                    "changed. Give the sink a new path (or an empty file)"
                )
                if head.startswith(b'{"type":'):
                    msg += (
                        "; if actorbus 0.1 wrote it (before files had a header), add that "
                        "header as its first line"
                    )
                raise self._fail(msg)
            # Empty, or the torn header of a creation that never finished: nothing else can be
            # in it, so it is safe to write the header afresh.
            file.truncate(0)
            _write_all(file, HEADER)
            os.fsync(file.fileno())
        self._written = set()
        self._end = self._index(file, len(HEADER))

    def _index(self, file: io.FileIO, start: int) -> int:
        """Add the ids of the complete lines from ``start`` on to the index, move a torn last
        line aside; return where the complete lines end (the file's new end)."""
        written = self._written
        complete = start
        # A buffered reader of its own: iterating the unbuffered file would read byte by byte.
        with open(file.fileno(), "rb", closefd=False) as reader:
            reader.seek(start)
            for line in reader:
                if not line.endswith(b"\n"):
                    break
                complete += len(line)
                with contextlib.suppress(msgspec.DecodeError):
                    written.add(_read_id(line).context.message_id)
        end = os.fstat(file.fileno()).st_size
        if complete != end:
            self._move_torn_tail(file, complete, end)
        return complete

    def _catch_up(self, file: io.FileIO) -> None:
        """Index what other writers (another process, another sink on this file) appended."""
        end = os.fstat(file.fileno()).st_size
        if end > self._end:
            self._end = self._index(file, self._end)
        elif end < self._end:  # cut by someone else: index it afresh
            self._adopt(file)

    def _move_torn_tail(self, file: io.FileIO, start: int, end: int) -> None:
        file.seek(start)
        tail = file.read(end - start)
        number = 1
        while True:
            aside = f"{self._path}.torn-{number}"
            try:
                descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                number += 1
                continue
            break
        with open(descriptor, "wb", buffering=0) as out:
            _write_all(out, tail)
            os.fsync(out.fileno())
        _fsync_directory(aside)
        file.truncate(start)
        os.fsync(file.fileno())
        logger.warning(
            "%s: moved an incomplete last line (%d bytes, left by a write that never returned) "
            "to %s",
            self._path,
            len(tail),
            aside,
        )

    def _opened(self) -> io.FileIO:
        if self._file is None:
            msg = f"JSON Lines sink at {self._path!r} is not open"
            raise SinkError(msg)
        return self._file

    async def write(self, batch: Sequence[tuple[Event, MessageContext]]) -> None:
        """Append the messages of ``batch`` not stored yet, then fsync the file."""
        if batch:
            await self._serial.run(lambda: self._write(batch))

    def _write(self, batch: Sequence[tuple[Event, MessageContext]]) -> None:
        file = self._opened()
        encode = JSON.encode
        lines: dict[str, bytes] = {}
        with _exclusive(file):
            self._catch_up(file)
            written = self._written
            for event, context in batch:
                message_id = context.message_id
                if message_id not in written and message_id not in lines:
                    lines[message_id] = encode(event, context) + b"\n"
            if not lines:
                return
            data = b"".join(lines.values())
            start = self._end
            try:
                _write_all(file, data)
                os.fsync(file.fileno())
            except BaseException:
                # Leave no partial line behind for the next batch to be glued to (nobody else
                # writes while this sink holds the lock); should this fail too, the next
                # writer or open() moves the incomplete line aside.
                with contextlib.suppress(OSError):
                    file.truncate(start)
                raise
            self._end = start + len(data)
            written.update(lines)

    async def read(self, *, on_error: OnError = "raise") -> list[tuple[Event, MessageContext]]:
        """Every message in the file, in file order, each message id once.

        A line that is not a valid envelope (or names an unknown event type) becomes a
        `SinkError` naming the file and the line number, handled as ``on_error`` says (see
        `Sink.report_bad_record`).
        """
        self.check_on_error(on_error)
        return await self._serial.run(lambda: self._read(on_error))

    def _read(self, on_error: OnError) -> list[tuple[Event, MessageContext]]:
        opened = self._opened()
        decode = JSON.decode
        seen: set[str] = set()
        messages: list[tuple[Event, MessageContext]] = []
        # shared: no write of another sink on this file is half-way through while reading
        with _exclusive(opened, shared=True), open(self._path, "rb") as file:
            file.readline()  # the header, checked at open
            for number, line in enumerate(file, start=2):
                if not line.strip():
                    continue
                try:
                    event, context = decode(line)
                except (msgspec.DecodeError, UnknownEventTypeError) as error:
                    bad = SinkError(f"{self._path}:{number}: not a readable message: {error}")
                    bad.__cause__ = error
                    self.report_bad_record(on_error, bad)
                    continue
                if context.message_id not in seen:
                    seen.add(context.message_id)
                    messages.append((event, context))
        return messages

    async def close(self) -> None:
        """Close the file; does nothing if it is not open."""
        await self._serial.run(self._close)
        self._serial.stop()

    def _close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


@contextlib.contextmanager
def _exclusive(file: io.FileIO, *, shared: bool = False) -> Iterator[None]:
    """Hold an advisory lock on ``file`` (where the platform has ``flock``): one writer at a
    time across sinks and processes, and no reader in the middle of a write."""
    if fcntl is None:
        yield
        return
    fcntl.flock(file.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(file.fileno(), fcntl.LOCK_UN)


def _write_all(file: io.FileIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        # A raw write may take only part of the data (a signal, a nearly full disk).
        written = file.write(view) or 0
        view = view[written:]


def _fsync_directory(path: str) -> None:
    """Make a new file's directory entry durable, where the platform allows it."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # Windows cannot open a directory; its file system journals the entry itself
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

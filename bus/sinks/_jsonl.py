"""A sink that appends one JSON envelope per line to a file, fsynced per batch."""

from __future__ import annotations

import collections
import contextlib
import io
import os
from collections.abc import Sequence
from typing import final

import msgspec

from bus._codec import JSON
from bus._errors import SinkError
from bus._events import Event, MessageContext
from bus.sinks._base import Sink, _Serial

# Message ids written this session, remembered to skip a batch written again after a failure
# that had in fact reached the file. Retries only ever concern recent batches, and `read`
# deduplicates anyway, so a bounded memory is enough for a process that runs for months.
_REMEMBERED_IDS = 100_000


@final
class JSONLinesSink(Sink):
    """Appends each message to a text file as one line: the envelope of `bus.encode_json`,
    ``{"type": ..., "event": {...}, "context": {...}}``.

    Each batch is appended with one ``write`` system call and fsynced before `write` returns.
    A file cannot commit a batch atomically: if the process dies in the middle of a write, the
    lines written so far stay, and the batch is written again by whoever retries it. `read`
    therefore returns each message id once (its first line), and `open` cuts off an incomplete
    last line, the remains of a write that never returned.

    The directory must exist; `open` creates the file if needed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """A sink appending to the file at ``path``."""
        self._path = os.fspath(path)
        self._serial = _Serial()
        self._file: io.FileIO | None = None
        self._written: set[str] = set()
        self._written_order: collections.deque[str] = collections.deque()

    @property
    def name(self) -> str:
        """``"jsonl:<path>"``."""
        return f"jsonl:{self._path}"

    @property
    def path(self) -> str:
        """The file's path, as given."""
        return self._path

    async def open(self) -> None:
        """Open the file for appending, creating it if need be.

        Raises `SinkError` naming the path if the file cannot be opened for writing.
        """
        await self._serial.run(self._open)

    def _open(self) -> None:
        if self._file is not None:
            return
        created = not os.path.exists(self._path)
        try:
            # Unbuffered: a failed write leaves nothing in a buffer to be flushed later, after the
            # partial line has been cut off.
            file = open(self._path, "a+b", buffering=0)  # noqa: SIM115 - open until close()
        except OSError as error:
            msg = f"cannot open JSON Lines sink at {self._path!r}: {error.strerror or error}"
            raise SinkError(msg) from error
        try:
            _cut_incomplete_line(file)
            if created:
                _fsync_directory(self._path)
        except OSError as error:
            file.close()
            msg = f"cannot open JSON Lines sink at {self._path!r}: {error.strerror or error}"
            raise SinkError(msg) from error
        self._file = file

    def _opened(self) -> io.FileIO:
        if self._file is None:
            msg = f"JSON Lines sink at {self._path!r} is not open"
            raise SinkError(msg)
        return self._file

    async def write(self, batch: Sequence[tuple[Event, MessageContext]]) -> None:
        """Append the messages of ``batch`` not written yet, then flush and fsync the file."""
        if batch:
            await self._serial.run(lambda: self._write(batch))

    def _write(self, batch: Sequence[tuple[Event, MessageContext]]) -> None:
        file = self._opened()
        encode = JSON.encode
        lines: dict[str, bytes] = {}
        for event, context in batch:
            message_id = context.message_id
            if message_id not in self._written and message_id not in lines:
                lines[message_id] = encode(event, context) + b"\n"
        if not lines:
            return
        data = memoryview(b"".join(lines.values()))
        start = file.seek(0, os.SEEK_END)
        try:
            while data:
                # A raw write may take only part of the data (a signal, a nearly full disk).
                written = file.write(data) or 0
                data = data[written:]
            os.fsync(file.fileno())
        except BaseException:
            # Leave no partial line behind for the next batch to be glued to; should this fail
            # too, the next open() cuts the incomplete line off.
            with contextlib.suppress(OSError):
                file.truncate(start)
            raise
        self._remember(lines)

    def _remember(self, message_ids: dict[str, bytes]) -> None:
        self._written.update(message_ids)
        self._written_order.extend(message_ids)
        while len(self._written_order) > _REMEMBERED_IDS:
            self._written.discard(self._written_order.popleft())

    async def read(self) -> list[tuple[Event, MessageContext]]:
        """Every message in the file, in file order, each message id once.

        Raises `SinkError` naming the line for a line that is not a valid envelope.
        """
        return await self._serial.run(self._read)

    def _read(self) -> list[tuple[Event, MessageContext]]:
        self._opened()
        decode = JSON.decode
        seen: set[str] = set()
        messages: list[tuple[Event, MessageContext]] = []
        with open(self._path, "rb") as file:
            for number, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                try:
                    event, context = decode(line)
                except msgspec.DecodeError as error:
                    msg = f"{self._path}:{number}: not a valid message envelope: {error}"
                    raise SinkError(msg) from error
                if context.message_id not in seen:
                    seen.add(context.message_id)
                    messages.append((event, context))
        return messages

    async def close(self) -> None:
        """Close the file; does nothing if it is not open."""
        await self._serial.run(self._close)

    def _close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


def _cut_incomplete_line(file: io.FileIO) -> None:
    """Truncate ``file`` after its last newline, dropping the tail a torn write left."""
    end = file.seek(0, os.SEEK_END)
    position = end
    chunk = 1 << 16
    while position > 0:
        start = max(0, position - chunk)
        file.seek(start)
        data = file.read(position - start)
        newline = data.rfind(b"\n")
        if newline != -1:
            complete = start + newline + 1
            break
        position = start
    else:
        complete = 0
    if complete != end:
        file.truncate(complete)
        os.fsync(file.fileno())
    file.seek(0, os.SEEK_END)


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

"""What a sink is: durable storage the bus's sink actors write batches of events to."""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Literal, Self, TypeAlias, TypeVar

import anyio.to_thread

from bus._errors import SinkError
from bus._events import Event, MessageContext

_T = TypeVar("_T")

logger = logging.getLogger("bus.sinks")

OnError: TypeAlias = Literal["raise", "skip"] | Callable[[SinkError], object]
OnError.__doc__ = """What `Sink.read` does with a record that does not decode: ``"raise"`` its
`SinkError` (the default), ``"skip"`` it (logging a warning), or skip it after passing its
`SinkError` to a callable."""


class Sink(abc.ABC):
    """Durable storage for events, written in batches; subclass it to add your own.

    Its methods may be called from several tasks at once (the built-in sinks serialize them on
    a lock). Blocking I/O belongs in a worker thread (`anyio.to_thread.run_sync`) so that the
    event loop keeps running. The bus's sink actors add batching, retries with backoff and
    restarts on top; a sink itself only stores.

    The contract, which ``tests/bus/sinks`` checks for the built-in sinks:

    - `open` creates or validates the storage. It raises `SinkError`, naming the path (or
      address), when the storage cannot be written, so that a misconfigured sink fails the
      terminal's start-up rather than the first write. `open` after `close` opens again: a
      restarted sink actor does that.
    - `write` stores a whole batch and returns only once it is durable. A batch is one
      transaction where the storage has them. Writing is idempotent by
      ``context.message_id``, across instances and processes: a batch written again (after a
      failure that in fact committed, say), a message that appears twice in a batch, or a
      caller's resend with its own message id, stores nothing twice (the first stored wins).
      An exception means the batch may or may not be stored; the caller writes it again. The
      bus hands it only events that round-trip through `bus.JSON` (checked at the call), and
      splits a batch that fails for one event's sake itself.
    - `read(on_error="raise")` returns everything stored, in the order it was stored, each event
      decoded to its original class, each message once. A record that does not decode becomes a
      `SinkError` naming the store and the record (file and line, table and row), with the
      decoding error as its ``__cause__``; `report_bad_record` does what ``on_error`` asks with
      it: ``"raise"`` raises it, ``"skip"`` logs it and skips the record, a callable receives
      it and the record is skipped. One bad record never hides the good ones unless asked to.
    - `close` releases the storage; closing a closed sink does nothing.
    - `name` identifies the sink in logs and supervision trees, e.g. ``"sqlite:/var/app.db"``.

    A sink is also an async context manager that opens and closes it.
    """

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """A short, stable description: the kind of storage and where it is."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Create or validate the storage; raise `SinkError` naming it if it cannot be written."""

    @abc.abstractmethod
    async def write(self, batch: Sequence[tuple[Event, MessageContext]]) -> None:
        """Store ``batch`` durably, as one transaction, skipping message ids already stored."""

    @abc.abstractmethod
    async def read(self, *, on_error: OnError = "raise") -> list[tuple[Event, MessageContext]]:
        """Everything stored, in store order, decoded to the original event classes; records
        that do not decode are handled by ``on_error`` (see `report_bad_record`)."""

    @staticmethod
    def report_bad_record(on_error: OnError, error: SinkError) -> None:
        """Handle one record that does not decode, as ``on_error`` says: ``"raise"`` raises
        ``error``; ``"skip"`` logs it (logger ``bus.sinks``, warning) and returns; a callable
        is called with ``error`` and returns. `read` skips the record when this returns."""
        if on_error == "raise":
            raise error
        if on_error == "skip":
            logger.warning("skipped a record that does not decode: %s", error)
            return
        if callable(on_error):
            on_error(error)
            return
        msg = f"on_error must be 'raise', 'skip' or a callable, got {on_error!r}"
        raise ValueError(msg)

    @staticmethod
    def check_on_error(on_error: OnError) -> None:
        """Raise `ValueError` unless ``on_error`` is ``"raise"``, ``"skip"`` or a callable: a
        `read` checks it before reading anything."""
        if on_error not in ("raise", "skip") and not callable(on_error):
            msg = f"on_error must be 'raise', 'skip' or a callable, got {on_error!r}"
            raise ValueError(msg)

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the storage. Does nothing if the sink is not open."""

    async def __aenter__(self) -> Self:
        """Open the sink."""
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the sink."""
        await self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class _Serial:
    """Runs blocking calls in a worker thread, one at a time, for a sink's single connection."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        # A thread lock rather than an anyio limiter: it holds whatever event loop (or plain
        # thread) the call comes from.
        self._lock = threading.Lock()

    async def run(self, call: Callable[[], _T]) -> _T:
        """Run ``call`` in a worker thread once no other call of this sink runs.

        Cancelling the caller waits for the call to finish: a half-done storage operation is
        never abandoned to run on beside the next one.
        """
        return await anyio.to_thread.run_sync(self._locked, call)

    def _locked(self, call: Callable[[], _T]) -> _T:
        with self._lock:
            return call()

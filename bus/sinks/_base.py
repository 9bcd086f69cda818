"""What a sink is: durable storage the bus's sink actors write batches of events to."""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self, TypeVar

import anyio.to_thread

from bus._events import Event, MessageContext

_T = TypeVar("_T")


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
      ``context.message_id``: a batch written again (after a failure that in fact committed,
      say) does not store anything twice, nor does a message that appears twice in a batch.
      An exception means the batch may or may not be stored; the caller writes it again.
    - `read` returns everything stored, in the order it was stored, each event decoded to its
      original class, each message once.
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
    async def read(self) -> list[tuple[Event, MessageContext]]:
        """Everything stored, in store order, decoded to the original event classes."""

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

"""What a sink is: durable storage the bus's sink actors write batches of events to."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Literal, Self, TypeAlias, TypeVar

import anyio

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
    - `is_outage(error)` tells whether an error of `write` is the storage's as a whole (a full
      disk, an I/O error, a lost connection), which is never one event's fault: the bus then
      keeps the whole batch for a retry instead of splitting it to find a culprit. The default
      says so of every `OSError` (`ENOSPC`, `EFBIG`, `EIO`, connection errors, ...).
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

    def is_outage(self, error: Exception) -> bool:
        """Whether ``error``, raised by `write`, means the storage as a whole cannot write now (a
        full disk, an I/O error, a lost connection) rather than that it refuses one of the
        events. The bus never blames an event for such an error: it keeps the whole batch and
        writes it again after a backoff. This default says so of every `OSError`."""
        return isinstance(error, OSError)

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
    """Runs blocking calls one at a time in a thread of the sink's own, for its single connection.

    Its own thread rather than `anyio.to_thread`: the hand-over costs about half (the hop is
    paid once per batch, on the path of every ``sink``), and calls keep their order. The thread
    starts at the first call and ends with `stop` (the sink's ``close``); it is a daemon, so a
    sink never closed cannot keep the process alive.
    """

    __slots__ = ("_guard", "_jobs", "_name", "_thread")

    def __init__(self, name: str = "sink") -> None:
        self._guard = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] | None = None
        self._thread: threading.Thread | None = None
        self._name = name

    async def run(self, call: Callable[[], _T]) -> _T:
        """Run ``call`` in the sink's thread, after the calls submitted before it.

        Cancelling the caller waits for the call to finish: a half-done storage operation is
        never abandoned to run on beside the next one.
        """
        deliver, wait = _rendezvous()
        self._submit((call, deliver))
        with anyio.CancelScope(shield=True):
            ok, value = await wait()
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    def _submit(self, job: _Job) -> None:
        with self._guard:
            if self._jobs is None or self._thread is None or not self._thread.is_alive():
                self._jobs = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=_work, args=(self._jobs,), name=f"actorbus-{self._name}", daemon=True
                )
                self._thread.start()
            self._jobs.put(job)

    def stop(self) -> None:
        """Let the thread end once the calls already submitted are done."""
        with self._guard:
            if self._jobs is not None:
                self._jobs.put(None)
            self._jobs = self._thread = None


_Outcome = tuple[bool, Any]
_Job = tuple[Callable[[], Any], Callable[[_Outcome], None]]


def _work(jobs: queue.SimpleQueue[_Job | None]) -> None:
    while (job := jobs.get()) is not None:
        call, deliver = job
        try:
            outcome: _Outcome = (True, call())
        except BaseException as error:  # noqa: BLE001 - handed to the caller, raised there
            outcome = (False, error)
        deliver(outcome)


def _rendezvous() -> tuple[Callable[[_Outcome], None], Callable[[], Awaitable[_Outcome]]]:
    """A way for the sink's thread to hand an outcome to the task awaiting it, on this loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio, the other backend anyio runs on
        import trio

        token = trio.lowlevel.current_trio_token()
        arrived = trio.Event()
        box: list[_Outcome] = []

        def arrive(outcome: _Outcome) -> None:
            box.append(outcome)
            arrived.set()

        def deliver_trio(outcome: _Outcome) -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(arrive, outcome)

        async def wait_trio() -> _Outcome:
            await arrived.wait()
            return box[0]

        return deliver_trio, wait_trio
    future: asyncio.Future[_Outcome] = loop.create_future()

    def settle(outcome: _Outcome) -> None:
        if not future.done():
            future.set_result(outcome)

    def deliver_asyncio(outcome: _Outcome) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome)

    async def wait_asyncio() -> _Outcome:
        return await future

    return deliver_asyncio, wait_asyncio

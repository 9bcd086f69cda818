"""The path of ``bus.sink``: callers join the open batch of each sink, a sink actor writes one batch
at a time (group commit), a batch in flight survives the actor's restarts, and a batch that fails for
one item's sake is split so that only that item's caller gets the error."""

from __future__ import annotations

import collections
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from actors import Actor, ActorRef, current_future_factory
from bus._errors import BusClosedError
from bus._events import Event, MessageContext

if TYPE_CHECKING:
    from actors import FutureFactory
    from bus.sinks._base import Sink

logger = logging.getLogger("bus.sinks")

#: a batch takes no more callers once it holds this many events (``sink_many`` may exceed it)
MAX_BATCH = 1000

#: told to the sink actor when a batch opens while the actor is idle
WAKE = object()

#: failed writes in a row, with none succeeding, after which a split batch is deemed an outage
OUTAGE_AFTER = 8

Pair = tuple[Event, MessageContext]


class SinkBatch:
    """Events written to one sink in one ``write``, and the callers waiting for it."""

    __slots__ = ("absorbed", "closed", "done", "errors", "pairs", "sealed", "waiters")

    def __init__(self) -> None:
        self.pairs: list[Pair] = []
        self.done = False
        # One future per waiting caller rather than one shared: cancelling a caller must not
        # cancel what the others wait on (an asyncio task cancels the future it awaits).
        self.waiters: list[Any] = []
        #: message id -> the error of an item refused by the storage on its own (a poison item)
        self.errors: dict[str, BaseException] = {}
        #: set once the actor started writing it: later callers open the next batch
        self.sealed = False
        self.closed: BusClosedError | None = None
        #: later batches merged into this one on a retry: they finish with it
        self.absorbed: list[SinkBatch] = []

    def finish(self, closed: BusClosedError | None = None) -> None:
        """Wake every caller of this batch (and of those merged into it)."""
        for batch in (self, *self.absorbed):
            if not batch.done:
                batch.done = True
                batch.errors = self.errors
                batch.closed = closed
                for waiter in batch.waiters:
                    if not waiter.done():
                        waiter.set_result(None)
                batch.waiters = []

    async def outcome(self, message_ids: list[str], new_future: FutureFactory) -> None:
        """Wait until the batch is written; raise the error of the first of ``message_ids`` the
        storage refused, or `BusClosedError` if the terminal stopped first."""
        if not self.done:
            waiter = new_future()
            self.waiters.append(waiter)
            await waiter
        self.check(message_ids)

    def check(self, message_ids: list[str]) -> None:
        """Raise what `outcome` raises, for a batch that is done."""
        if self.errors:
            for message_id in message_ids:
                error = self.errors.get(message_id)
                if error is not None:
                    raise error
        if self.closed is not None:
            raise self.closed


class SinkSlot:
    """A configured sink, its actor, and its batches: the one in flight (first) and the open one."""

    __slots__ = ("batches", "closed", "failures", "name", "ref", "sink", "stored", "woken")

    def __init__(self, sink: Sink, name: str) -> None:
        self.sink = sink
        self.name = name
        self.ref: ActorRef | None = None
        self.batches: collections.deque[SinkBatch] = collections.deque()
        #: a WAKE is queued or the actor is writing: a new batch needs no other wake-up
        self.woken = False
        self.closed = False
        self.stored = 0
        self.failures = 0

    def submit(self, pairs: list[Pair]) -> SinkBatch:
        """Add ``pairs`` to the open batch (opening one if need be) and return it."""
        batch = self._open_batch()
        batch.pairs += pairs
        return batch

    def submit_one(self, pair: Pair) -> SinkBatch:
        """`submit` for one event."""
        batch = self._open_batch()
        batch.pairs.append(pair)
        return batch

    def _open_batch(self) -> SinkBatch:
        if self.closed:
            raise BusClosedError(f"sink {self.name!r} is stopped")
        batches = self.batches
        batch = batches[-1] if batches else None
        if batch is None or batch.sealed or len(batch.pairs) >= MAX_BATCH:
            batch = SinkBatch()
            batches.append(batch)
        if not self.woken:
            ref = self.ref
            assert ref is not None
            self.woken = True
            # the actor runs after this task yields: the event is in the batch by then
            ref.tell_nowait(WAKE)
        return batch

    async def flushed(self) -> None:
        """Return once every batch accepted so far is written (or closed)."""
        new_future = current_future_factory()
        while self.batches:
            last = self.batches[-1]
            with contextlib.suppress(Exception):
                await last.outcome([], new_future)

    def close(self, reason: str) -> None:
        """Refuse new events and fail every caller still waiting with `BusClosedError`."""
        self.closed = True
        batches, self.batches = self.batches, collections.deque()
        for batch in batches:
            batch.finish(BusClosedError(reason))


class SinkActor(Actor):
    """Writes its slot's batches one after the other, each in one ``write``.

    Callers fill the open batch while the previous one is being written, which is what groups
    concurrent callers into one transaction. A write that fails crashes the actor; the batch stays
    first in the slot and the next incarnation (after the supervisor's backoff) writes it again,
    together with what arrived meanwhile, before anything else. Sinks are idempotent by message id,
    so a batch that was stored although the write reported an error is not duplicated.
    """

    def __init__(self, slot: SinkSlot) -> None:
        self._slot = slot

    async def on_start(self) -> None:
        await self._write_all()

    async def receive(self, message: Any) -> None:
        if message is WAKE:
            await self._write_all()

    async def _write_all(self) -> None:
        slot = self._slot
        while slot.batches and not slot.closed:
            batches = slot.batches
            batch = batches[0]
            if batch.sealed:
                # written before and failed: take in what waits behind it, so that a split
                # finds out whether the storage works (for those) or is down (for all)
                while len(batches) > 1 and len(batch.pairs) < MAX_BATCH:
                    later = batches[1]
                    batch.pairs += later.pairs
                    del batches[1]
                    batch.absorbed.append(later)
            batch.sealed = True
            await self._write(batch)
            if batches and batches[0] is batch:
                batches.popleft()
            batch.finish()
        slot.woken = False

    async def _write(self, batch: SinkBatch) -> None:
        slot = self._slot
        pairs = batch.pairs
        try:
            await slot.sink.write(pairs)
        except Exception as error:
            slot.failures += 1
            if len(pairs) == 1 or slot.sink.is_outage(error):
                # alone, a poison item and an outage look alike; and an error of the storage as a
                # whole (a full disk) is no item's fault: retry the whole batch with backoff
                raise
            await self._split(batch, error)
            return
        slot.stored += len(pairs)

    async def _split(self, batch: SinkBatch, error: Exception) -> None:
        """Write ``batch`` in halves, down to single items, to store all but the items the storage
        refuses; raise (keeping what is not stored) if the storage looks down rather than picky.

        An item is refused for good only if it failed alone, some write of the split succeeded
        (the storage works), and it then failed alone again, each time with an error that
        ``sink.is_outage`` does not deem the storage's as a whole (such an error ends the split at
        once: everything not stored is kept for the retry). An outage stops the split after
        `OUTAGE_AFTER` failures in a row with no success: what is not stored is kept, the items
        that failed alone placed last, so that the next try, after a pause, starts with the others.
        """
        slot = self._slot
        sink = slot.sink
        suspects: list[Pair] = []  # items that failed alone
        succeeded = False
        in_a_row = 0
        middle = len(batch.pairs) // 2
        # a stack: the first half is written first, so items keep their order in the store
        pending: list[list[Pair]] = [batch.pairs[middle:], batch.pairs[:middle]]
        while pending:
            chunk = pending.pop()
            try:
                await sink.write(chunk)
            except Exception as chunk_error:
                slot.failures += 1
                in_a_row += 1
                if sink.is_outage(chunk_error):
                    # the storage failed as a whole (a disk that filled up as the split went on):
                    # keep everything not stored, in order, the suspects last
                    rest = [pair for part in reversed(pending) for pair in part]
                    batch.pairs = chunk + rest + suspects
                    raise
                if len(chunk) == 1:
                    suspects.append(chunk[0])
                else:
                    middle = len(chunk) // 2
                    pending += (chunk[middle:], chunk[:middle])
                if not succeeded and in_a_row >= OUTAGE_AFTER:
                    batch.pairs = [pair for rest in reversed(pending) for pair in rest] + suspects
                    raise error from chunk_error
                continue
            succeeded = True
            in_a_row = 0
            slot.stored += len(chunk)
        if not succeeded:
            batch.pairs = suspects
            raise error
        # Each suspect alone again, now that the storage is known to work: failing alone twice,
        # around writes that succeeded, is the item's own fault.
        for index, pair in enumerate(suspects):
            try:
                await sink.write([pair])
            except Exception as item_error:  # noqa: BLE001 - the item's own error, for its caller
                slot.failures += 1
                if sink.is_outage(item_error):
                    # not the item's fault after all: it and the suspects after it wait for the
                    # retry (those refused already keep their errors)
                    batch.pairs = suspects[index:]
                    raise
                self._refuse(batch, pair, item_error)
            else:
                slot.stored += 1

    def _refuse(self, batch: SinkBatch, pair: Pair, error: Exception) -> None:
        event, context = pair
        batch.errors[context.message_id] = error
        logger.error(
            "%s refused %s (message %s) on its own, twice: %r; its caller gets the error",
            self._slot.name,
            type(event).__qualname__,
            context.message_id,
            error,
        )

"""The writer: group commit of concurrent emits into one pipeline of XADDs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from actors import Actor, ActorRef
from bus.transport._base import TransportError

if TYPE_CHECKING:
    from bus.transport._redis import RedisStreams

logger = logging.getLogger("bus.transport")

#: upper bound of one group commit: one script call appends them atomically, so it is kept short
#: enough that Redis answers the consumers' reads in between (1,000 halved end-to-end throughput)
MAX_BATCH = 250

#: told to the writer actor when items wait and it is idle
_WAKE = object()


@attrs.define(slots=True)
class WriteItem:
    """One entry to append, and the future its ``emit`` awaits (None for ``emit_nowait``)."""

    type_name: bytes
    envelope: bytes
    future: Any


class WriterState:
    """The entries waiting to be written; survives the writer actor's restarts."""

    def __init__(self, transport: RedisStreams) -> None:
        self.transport = transport
        self.items: list[WriteItem] = []
        #: the batch being written: out of ``items``, not yet written (back in ``items`` if it fails)
        self.in_flight: list[WriteItem] = []
        self.ref: ActorRef | None = None
        self.woken = False
        self.since_trim = 0
        #: set once the queue runs empty, for `flushed`
        self.empty: anyio.Event | None = None

    def put(self, item: WriteItem) -> None:
        self.items.append(item)
        if not self.woken and self.ref is not None:
            self.woken = True
            self.ref.tell_nowait(_WAKE)

    async def flushed(self) -> None:
        """Return once every queued entry is written, the batch in flight included (at most
        ``write_timeout`` seconds)."""
        with anyio.move_on_after(self.transport.write_timeout):
            if self.items or self.in_flight:
                self.empty = anyio.Event()
                await self.empty.wait()

    def abandon(self) -> None:
        """Once the writer has stopped for good: what it never wrote is lost. ``emit_nowait``
        entries are counted (``lost_nowait``) and logged; an ``emit`` still waiting fails.

        Counted here, after the writer's last attempt (its ``on_stop``), and with the batch that
        was in flight when it stopped: counted at the flush, an entry whose write was under way
        and then failed went uncounted."""
        left, self.items, self.in_flight = [*self.in_flight, *self.items], [], []
        if not left:
            return
        lost = sum(1 for item in left if item.future is None)
        self.transport.counts.lost_nowait += lost
        logger.error(
            "%d emitted entries were not written to Redis at %s before stopping",
            len(left),
            self.transport.where,
        )
        stopped = TransportError(f"the transport stopped before writing to Redis at {self.transport.where}")
        for item in left:
            if item.future is not None and not item.future.done():
                item.future.set_exception(stopped)


class WriterActor(Actor):
    """Writes everything queued, up to `MAX_BATCH` entries per pipeline. A batch that fails
    fails its ``emit`` callers with `TransportError`; ``emit_nowait`` entries stay queued and the
    actor crashes, so that its supervisor retries them after a backoff."""

    def __init__(self, state: WriterState) -> None:
        self._state = state

    async def on_start(self) -> None:
        state = self._state
        state.ref = self.context.ref
        state.woken = True
        self.context.ref.tell_nowait(_WAKE)

    async def on_stop(self) -> None:
        state = self._state
        if state.items:
            try:
                await self._write_all()
            except Exception as error:  # noqa: BLE001 - logged; the entries were never acknowledged
                logger.error("writer could not flush on stop: %s", error)

    async def receive(self, message: Any) -> None:
        if message is _WAKE:
            await self._write_all()

    async def _write_all(self) -> None:
        state = self._state
        transport = state.transport
        try:
            while state.items:
                batch = state.items[:MAX_BATCH]
                del state.items[:MAX_BATCH]
                state.in_flight = batch
                try:
                    await transport.write(batch)
                except Exception as error:
                    state.in_flight = []
                    keep = [item for item in batch if item.future is None]
                    state.items[:0] = keep
                    failure = TransportError(
                        f"could not write to Redis at {transport.where}: {error}"
                    )
                    for item in batch:
                        if item.future is not None and not item.future.done():
                            item.future.set_exception(failure)
                    raise failure from error
                state.in_flight = []
                for item in batch:
                    if item.future is not None and not item.future.done():
                        item.future.set_result(None)
                state.since_trim += len(batch)
                if transport.max_len is not None and state.since_trim >= _trim_every(transport):
                    state.since_trim = 0
                    await transport.trim()
            if state.empty is not None:
                state.empty.set()
        finally:
            state.woken = False


def _trim_every(transport: RedisStreams) -> int:
    assert transport.max_len is not None
    return max(1, min(1000, transport.max_len // 10))

"""The actor in front of one sink: group commit, and a batch in flight that survives restarts."""

from __future__ import annotations

from typing import Any

from actors import Actor
from bus._dispatch import Dispatcher, SinkItem, SinkSlot

#: upper bound of one group commit
MAX_BATCH = 1000

#: asked of a sink actor when the terminal stops: write what it holds, reply once stored
FLUSH = object()


class SinkActor(Actor):
    """Collects the events waiting in its mailbox into one batch and writes it in one transaction.

    A batch that fails stays in the slot: the actor crashes, its supervisor restarts it with backoff,
    and the next incarnation writes the same batch again before taking anything new. Sinks are
    idempotent by message id, so a batch that was stored although the write reported an error is not
    duplicated.
    """

    def __init__(self, slot: SinkSlot, dispatcher: Dispatcher) -> None:
        self._slot = slot
        self._dispatcher = dispatcher

    async def on_start(self) -> None:
        if self._slot.batch:
            await self._flush()

    async def receive(self, message: Any) -> None:
        batch = self._slot.batch
        if type(message) is SinkItem:
            batch.append(message)
            if self.context.queued and len(batch) < MAX_BATCH:
                return
        elif message is not FLUSH or not batch:
            return
        await self._flush()

    async def _flush(self) -> None:
        slot = self._slot
        batch = slot.batch
        try:
            await slot.sink.write([(item.event, item.context) for item in batch])
        except Exception:
            slot.failures += 1
            raise
        slot.batch = []
        slot.stored += len(batch)
        self._dispatcher.sunk += len(batch)
        for item in batch:
            if not item.future.done():
                item.future.set_result(None)

"""One handler's consumer group as seen from this process: its consumer actor, and what waits to be
acknowledged or dead-lettered."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio

from actors import Actor
from bus._codec import MSGPACK
from bus._errors import UnknownEventTypeError
from bus._events import DeadLetter, describe_error
from bus.transport._delivery import DeadRecord, Delivery, make_delivery

if TYPE_CHECKING:
    from bus._dispatch import Dispatcher, HandlerSlot
    from bus.transport._redis import RedisStreams

logger = logging.getLogger("bus.transport")

#: what the consumer actor tells itself to read once more
POLL = object()


class GroupState:
    """Shared by the consumer actor's incarnations: entries out in the handler's mailbox, and the
    acknowledgements and dead letters not yet written (kept across a lost connection)."""

    def __init__(self, transport: RedisStreams, slot: HandlerSlot, dispatcher: Dispatcher) -> None:
        self.transport = transport
        self.slot = slot
        self.dispatcher = dispatcher
        self.name = slot.registered.spec.name
        self.to_ack: list[bytes] = []
        self.to_dead: list[DeadRecord] = []
        #: ids of the entries out in the handler's mailbox (delivered, not yet settled)
        self.out: set[bytes] = set()
        self.room = anyio.Event()
        self.next_claim = 0.0
        #: where the next XAUTOCLAIM resumes its scan of the group's pending entries
        self.claim_cursor: bytes | str = "0-0"
        #: type name -> delivered to this handler? (None: not an event class this process knows)
        self.accepts: dict[bytes, bool] = {}
        #: set while the consumer is between two polls, so that a stopping terminal can wait for
        #: the entries of a read in flight to reach the mailbox before it drains
        self.between_polls = anyio.Event()
        self.between_polls.set()

    @property
    def outstanding(self) -> int:
        return len(self.out)

    def handled(self, delivery: Delivery) -> None:
        self.to_ack.append(delivery.entry_id)
        self.transport.counts.acknowledged += 1
        self._returned(delivery)

    def _returned(self, delivery: Delivery) -> None:
        self.out.discard(delivery.entry_id)
        if len(self.out) < self.transport.prefetch:
            self.room.set()

    def dead(
        self, delivery: Delivery, reason: str, error: BaseException | None, attempts: int
    ) -> None:
        """The runtime gave up on ``delivery`` (its retries were exhausted, or it overflowed)."""
        event, context = delivery
        text = describe_error(error) if error is not None else ""
        self.to_dead.append(
            DeadRecord(
                delivery.entry_id,
                delivery.envelope,
                self.name,
                reason,
                text,
                attempts,
                context.message_id,
            )
        )
        self._returned(delivery)
        self.dispatcher.done_one()
        bus = self.dispatcher.bus
        if bus is not None and not self.dispatcher.closed:
            try:
                bus.emit_nowait(DeadLetter(self.name, event, context, text, attempts, reason))
            except Exception:  # noqa: BLE001 - full mailboxes lose the notice, never the entry
                logger.warning("the DeadLetter notice for %s was dropped", context.message_id)

    def given_back(self, delivery: Delivery) -> None:
        """The handler stopped with ``delivery`` queued: it stays pending in Redis, for a consumer
        to claim (or this one, at its next start, with the same consumer name)."""
        self._returned(delivery)
        self.dispatcher.done_one()

    def undecodable(self, entry_id: bytes, envelope: bytes, reason: str, error: str) -> None:
        logger.error("stream entry %s for %s is dead-lettered: %s", entry_id, self.name, error)
        self.to_dead.append(DeadRecord(entry_id, envelope, self.name, reason, error, 0, ""))


class ConsumerActor(Actor):
    """Reads its handler's group in batches into the handler's mailbox; writes the group's
    acknowledgements and dead letters; takes over entries idle past ``claim_idle`` (XAUTOCLAIM).

    A lost connection crashes it; its supervisor restarts it with backoff (it reconnects)."""

    def __init__(self, state: GroupState) -> None:
        self._state = state

    async def on_start(self) -> None:
        await self._state.transport.ensure_group(self._state.name)
        self.context.ref.tell_nowait(POLL)

    async def receive(self, message: Any) -> None:
        if message is not POLL:
            return
        state = self._state
        state.between_polls = anyio.Event()
        try:
            await self._poll()
        finally:
            state.between_polls.set()

    async def _poll(self) -> None:
        state = self._state
        transport = state.transport
        mailbox = state.slot.mailbox
        if transport.stopping or mailbox is None or mailbox.closed:
            # stopping, or the handler stopped for good: take nothing more, so that other
            # consumers of the group get the entries
            await transport.settle(state)
            return
        now = anyio.current_time()
        entries: list[tuple[bytes, dict[bytes, bytes], int]] = []
        if now >= state.next_claim:
            state.next_claim = now + transport.claim_interval
            await transport.settle(state)
            entries = await transport.claim(state)
        if not entries:
            if state.outstanding >= transport.prefetch:
                await transport.settle(state)
                state.room = anyio.Event()
                with anyio.move_on_after(transport.block / 1000):
                    await state.room.wait()
                self.context.ref.tell_nowait(POLL)
                return
            # while entries are out, read without blocking long: their acknowledgements go
            # with the next read
            block = transport.block if state.outstanding == 0 else 20
            entries = await transport.settle(state, read_block=block)
        await self._deliver(entries)
        self.context.ref.tell_nowait(POLL)

    async def _deliver(self, entries: list[tuple[bytes, dict[bytes, bytes], int]]) -> None:
        state = self._state
        transport = state.transport
        slot = state.slot
        mailbox = slot.mailbox
        assert mailbox is not None
        retries = slot.registered.policy.retries
        for entry_id, fields, count in entries:
            type_name = fields.get(b"t", b"")
            envelope = fields.get(b"m", b"")
            wanted = state.accepts.get(type_name)
            if wanted is None:
                wanted = transport.wanted(slot, type_name)
                if wanted is not None:
                    state.accepts[type_name] = wanted
            if wanted is False:
                state.to_ack.append(entry_id)  # another handler's event: nothing to do here
                continue
            try:
                event, context = MSGPACK.decode(envelope)
            except UnknownEventTypeError as error:
                state.undecodable(entry_id, envelope, "unknown_type", str(error))
                continue
            except Exception as error:  # noqa: BLE001 - garbage must never crash the consumer
                state.undecodable(entry_id, envelope, "undecodable", describe_error(error))
                continue
            if count > retries + 1:
                # delivered too often already, by consumers that died with it: no more attempts
                state.out.add(entry_id)
                state.dispatcher.pending += 1
                state.dead(
                    make_delivery(event, context, state, entry_id, envelope),
                    "retries_exhausted",
                    None,
                    count - 1,
                )
                continue
            if count > 1:
                context = context.with_attempt(count)
            state.out.add(entry_id)
            state.dispatcher.pending += 1
            transport.counts.delivered += 1
            await mailbox.put(make_delivery(event, context, state, entry_id, envelope))

    async def on_stop(self) -> None:
        # best effort: what is settled now is written now; the terminal flushes the rest
        state = self._state
        if state.to_ack or state.to_dead:
            try:
                await state.transport.settle(state)
            except Exception as error:  # noqa: BLE001 - kept for the next incarnation or flush
                logger.warning("consumer %s could not settle on stop: %s", state.name, error)

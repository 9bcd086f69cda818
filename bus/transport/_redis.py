"""RedisStreams: emitted events through one Redis stream, one consumer group per handler."""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
from typing import TYPE_CHECKING, Any, final
from urllib.parse import urlsplit

import anyio
import attrs

from actors import DeadLetterReason
from bus._asyncio_only import require_asyncio
from bus._codec import MSGPACK
from bus._errors import UnknownEventTypeError
from bus._events import NOTICE_EVENTS, Event, MessageContext, event_class
from bus.transport._base import Transport, TransportError, TransportStatistics
from bus.transport._delivery import Delivery
from bus.transport._group import ConsumerActor, GroupState
from bus.transport._writer import WriteItem, WriterActor, WriterState
from supervisor import Backoff, ChildSpec

if TYPE_CHECKING:
    from actors import DeadLetter as RuntimeDeadLetter
    from bus._dispatch import HandlerSlot

logger = logging.getLogger("bus.transport")

#: reconnecting consumers and writer: quick first retry, capped at 2 s
RECONNECT_BACKOFF = Backoff(min=0.05, max=2.0, factor=2.0, jitter=0.2, reset_after=30.0)

_LOCAL_ONLY = frozenset(NOTICE_EVENTS)

#: a group commit in one command: XADD each (type name, envelope) pair of ARGV to KEYS[1]. One
#: request and one reply for the batch (a pipeline of XADDs costs the client a reply per entry),
#: and the batch is appended atomically, in order.
_APPEND = """
for i = 1, #ARGV, 2 do
  redis.call('XADD', KEYS[1], '*', 't', ARGV[i], 'm', ARGV[i + 1])
end
return #ARGV / 2
"""


@attrs.define
class _Counts:
    written: int = 0
    delivered: int = 0
    acknowledged: int = 0
    dead_lettered: int = 0
    claimed: int = 0
    lost_nowait: int = 0


@final
class RedisStreams(Transport):
    """Emitted events through Redis Streams (needs the extra ``actorbus[redis]``, redis-py).

    Every ``emit`` appends one entry to the stream ``<namespace>:events`` (group commit: the
    entries of concurrent emitters go in one pipeline). Every registered handler is a consumer
    group named after the handler, every process running it one consumer of that group, so each
    handler gets each event once across processes (at least once under failure).

    - ``claim_idle``: seconds after which an entry delivered to a consumer that did not
      acknowledge it is taken over by another consumer (XAUTOCLAIM).
    - ``max_len``: trim the stream to about this many entries, never past an entry some
      existing group has not acknowledged (``None``: never trim).
    - ``batch_size``: entries one read takes (a group commit writes at most 250).
    - ``connect_timeout``: seconds to reach Redis at start-up; ``write_timeout``: seconds an
      ``emit`` waits for Redis before raising `TransportError`.
    - ``consumer``: this process's consumer name (default: host, pid and a random suffix). Give
      a stable one to have a restarted process take its own pending entries back at once.

    See docs/transport.md for the guarantees.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "actorbus",
        claim_idle: float = 30.0,
        max_len: int | None = None,
        batch_size: int = 100,
        connect_timeout: float = 5.0,
        write_timeout: float = 10.0,
        consumer: str | None = None,
    ) -> None:
        """A transport through the Redis at ``url``; see the class doc for the options."""
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"url must be a redis:// URL, got {url!r}")
        if not namespace or not isinstance(namespace, str):
            raise ValueError(f"namespace must be a non-empty str, got {namespace!r}")
        for name, value in (
            ("claim_idle", claim_idle),
            ("connect_timeout", connect_timeout),
            ("write_timeout", write_timeout),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number of seconds, got {value!r}")
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int)):
            raise TypeError(f"max_len must be an int or None, got {max_len!r}")
        if max_len is not None and max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.namespace = namespace
        self.stream = f"{namespace}:events"
        self.dead_stream = f"{namespace}:dead"
        self.claim_idle = float(claim_idle)
        self.claim_interval = min(max(self.claim_idle / 2, 0.05), 5.0)
        self.max_len = max_len
        self.batch_size = batch_size
        self.prefetch = 2 * batch_size
        self.connect_timeout = float(connect_timeout)
        self.write_timeout = float(write_timeout)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        #: milliseconds an idle consumer's read blocks in Redis
        self.block = 500
        self.stopping = False
        self.counts = _Counts()
        self._client: Any = None
        self._groups: list[GroupState] = []
        self._writer: WriterState | None = None
        self._new_future: Any = None
        self._append: Any = None

    def __repr__(self) -> str:
        return f"<RedisStreams {self.host}:{self.port} namespace={self.namespace!r}>"

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        """``host:port`` of the Redis server."""
        return f"{self.host}:{self.port}"

    async def open(self) -> None:
        """Connect and check that Redis answers within ``connect_timeout``.

        Raises `TransportError` on trio (redis-py is asyncio-only), when redis-py is missing, or
        naming host and port when Redis cannot be reached."""
        require_asyncio("RedisStreams", TransportError)
        if self._client is not None:
            raise TransportError(f"{self!r} is already open: give each terminal its own")
        try:
            import redis.asyncio as redis
        except ImportError as error:
            raise TransportError(
                "RedisStreams needs redis-py: pip install 'actorbus[redis]'"
            ) from error
        self.stopping = False
        client = redis.Redis.from_url(
            self.url,
            socket_connect_timeout=self.connect_timeout,
            # bounds every command, `emit` included; above the consumers' longest blocking read
            socket_timeout=max(self.write_timeout, self.block / 1000 + 1.0),
            health_check_interval=0,
        )
        try:
            with anyio.fail_after(self.connect_timeout):
                await client.ping()
            info = await client.info("server")
        except (TimeoutError, OSError, redis.RedisError) as error:
            await client.aclose()
            raise TransportError(
                f"cannot reach Redis at {self.where} within {self.connect_timeout} s: {error}"
            ) from error
        version = tuple(int(p) for p in str(info.get("redis_version", "0")).split(".")[:2])
        if version < (6, 2):
            await client.aclose()
            raise TransportError(
                f"Redis at {self.where} is version {info.get('redis_version')}: RedisStreams "
                "needs 6.2 or later (XAUTOCLAIM, XTRIM MINID)"
            )
        self._client = client

    async def close(self) -> None:
        """Close the connections."""
        client, self._client = self._client, None
        self._append = None
        if self._writer is not None:
            # the tree, the writer included, has stopped: what it did not write is lost
            self._writer.abandon()
        if client is not None:
            await client.aclose()

    def child_specs(self, dispatcher: object) -> list[ChildSpec]:
        """The writer, then one consumer per handler this process runs."""
        from bus._dispatch import Dispatcher

        assert isinstance(dispatcher, Dispatcher)
        self._new_future = dispatcher.new_future
        writer = self._writer = WriterState(self)
        specs = [
            ChildSpec(
                "writer", lambda: WriterActor(writer), backoff=RECONNECT_BACKOFF, shutdown=5.0
            )
        ]
        self._groups = []
        for slot in dispatcher.slots:
            if all(issubclass(t, tuple(_LOCAL_ONLY)) for t in slot.registered.spec.subscriptions):
                continue  # handles only the bus's local notices: nothing on the stream for it
            state = GroupState(self, slot, dispatcher)
            self._groups.append(state)
            specs.append(
                ChildSpec(
                    f"consumer-{slot.name}",
                    _consumer_factory(state),
                    backoff=RECONNECT_BACKOFF,
                    shutdown=self.block / 1000 + 2.0,
                )
            )
        return specs

    async def quiesce(self) -> None:
        """Stop reading new entries, and return once no read is in flight: what the consumers
        took is then in the handlers' mailboxes, for the terminal to drain."""
        self.stopping = True
        for state in self._groups:
            await state.between_polls.wait()

    async def flush(self) -> None:
        """Write what is settled: acknowledgements and dead letters; the writer's queue is
        flushed by the writer actor's stop."""
        for state in self._groups:
            try:
                await self.settle(state)
            except Exception as error:  # noqa: BLE001 - left pending in Redis: claimed later
                logger.warning("could not acknowledge %s's entries on stop: %s", state.name, error)
        if self._writer is not None:
            await self._writer.flushed()

    def statistics(self) -> TransportStatistics:
        """Counters of this process."""
        c = self.counts
        return TransportStatistics(
            c.written, c.delivered, c.acknowledged, c.dead_lettered, c.claimed, c.lost_nowait
        )

    # -- emitting ---------------------------------------------------------------------------------

    def carries(self, event: Event) -> bool:
        """Every event but the bus's own notices (DeadLetter, ...), which stay in this process."""
        return type(event) not in _LOCAL_ONLY

    async def emit(self, event: Event, context: MessageContext) -> None:
        """Write ``event``; returns once Redis has the entry, or raises `TransportError` after
        ``write_timeout`` seconds."""
        writer = self._live_writer()
        body = MSGPACK.encode(event, context)  # first: its TypeError names a bad event
        future = self._new_future()
        writer.put(WriteItem(type(event).__type_name__.encode(), body, future))
        # bounded without a cancel scope per call (a third of emit's cost): a write that Redis
        # does not answer fails at the client's socket timeout, a refused one at once, and
        # either fails this future with TransportError
        await future

    def emit_nowait(self, event: Event, context: MessageContext) -> None:
        """Queue ``event`` for the writer and return (an entry it cannot write is logged)."""
        writer = self._live_writer()
        body = MSGPACK.encode(event, context)  # first: its TypeError names a bad event
        writer.put(WriteItem(type(event).__type_name__.encode(), body, None))

    def _live_writer(self) -> WriterState:
        writer = self._writer
        if writer is None or self._client is None:
            raise TransportError("the transport is not running")
        return writer

    async def write(self, items: list[WriteItem]) -> None:
        """XADD ``items``, in order, in one command (see `_APPEND`)."""
        client = self._client
        if client is None:
            raise TransportError("the transport is closed")
        if self._append is None:
            self._append = client.register_script(_APPEND)
        args: list[bytes] = []
        for item in items:
            args.append(item.type_name)
            args.append(item.envelope)
        await self._append(keys=[self.stream], args=args)
        self.counts.written += len(items)

    async def trim(self) -> None:
        """Trim the stream towards ``max_len`` entries, never past the lowest entry that some group
        has not acknowledged (pending) or not yet read.

        Costs about one entry read per entry removed: only entries below the groups' floor are
        read, at most as many as are in excess."""
        client = self._client
        if self.max_len is None or client is None:
            return
        stream = self.stream
        excess = await client.xlen(stream) - self.max_len
        if excess <= 0:
            return
        floor: tuple[int, int] | None = None
        for group in await client.xinfo_groups(stream):
            if group["pending"]:
                summary = await client.xpending(stream, group["name"])
                lowest = _parse_id(summary["min"])
            else:
                ms, seq = _parse_id(group["last-delivered-id"])
                lowest = (ms, seq + 1)
            floor = lowest if floor is None else min(floor, lowest)
        end = "+" if floor is None else f"({floor[0]}-{floor[1]}"
        head = await client.xrange(
            stream,
            "-",
            end,
            count=excess + 1,
        )
        if not head:
            return  # the oldest entry is not acknowledged by some group: nothing to remove
        if len(head) > excess:
            cut = head[excess][0]  # the first entry that max_len keeps
        elif floor is not None:
            cut = f"{floor[0]}-{floor[1]}"  # every entry below the floor goes
        else:
            return
        await client.xtrim(stream, minid=cut, approximate=False)

    # -- consuming --------------------------------------------------------------------------------

    async def ensure_group(self, group: str) -> None:
        """Create ``group`` (and the stream) if missing; a new group starts at the oldest entry."""
        import redis

        try:
            await self._client.xgroup_create(self.stream, group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def read(self, group: str, block: int) -> list[tuple[bytes, dict[bytes, bytes], int]]:
        """Up to ``batch_size`` new entries for this consumer (first delivery)."""
        reply = await self._client.xreadgroup(
            group, self.consumer, {self.stream: ">"}, count=self.batch_size, block=block
        )
        return _entries(reply)

    async def claim(self, state: GroupState) -> list[tuple[bytes, dict[bytes, bytes], int]]:
        """Entries idle past ``claim_idle`` in any consumer of the group, now ours, with their
        delivery counts (XAUTOCLAIM, resuming where the last call stopped).

        First, in the same round trip, a heartbeat: the entries this process holds in the
        handler's mailbox are claimed again by us (XCLAIM JUSTID, which resets their idle time
        without counting a delivery), so that a slow but live consumer keeps them."""
        client = self._client
        group = state.name
        idle_ms = int(self.claim_idle * 1000)
        async with client.pipeline(transaction=False) as pipe:
            if state.out:
                pipe.xclaim(self.stream, group, self.consumer, 0, list(state.out), justid=True)
            pipe.xautoclaim(
                self.stream,
                group,
                self.consumer,
                idle_ms,
                state.claim_cursor,
                count=self.batch_size,
            )
            replies = await pipe.execute()
        reply = replies[-1]
        state.claim_cursor = reply[0]
        entries = []
        vanished = False
        for entry in reply[1]:
            if not entry or entry[0] is None or not entry[1]:
                vanished = True  # deleted from the stream while pending (not by our trimming)
            elif entry[0] not in state.out:  # ours and still in the mailbox: not a takeover
                entries.append((entry[0], entry[1]))
        if vanished:
            await self._forget_vanished(state, {entry_id for entry_id, _ in entries})
        if not entries:
            return []
        pending = await client.xpending_range(
            self.stream, group, entries[0][0], entries[-1][0], len(entries) + 10, self.consumer
        )
        counts = {p["message_id"]: p["times_delivered"] for p in pending}
        self.counts.claimed += len(entries)
        logger.info("consumer %s took over %d entries of %s", self.consumer, len(entries), group)
        return [(entry_id, fields, counts.get(entry_id, 2)) for entry_id, fields in entries]

    async def _forget_vanished(self, state: GroupState, claimed: set[bytes]) -> None:
        """Acknowledge the pending entries now ours that no longer exist in the stream: Redis 6.2
        claims them without saying which they are, and they would be claimed for ever."""
        client = self._client
        pending = await client.xpending_range(
            self.stream, state.name, "-", "+", 1000, self.consumer
        )
        candidates = [
            p["message_id"]
            for p in pending
            if p["message_id"] not in claimed and p["message_id"] not in state.out
        ]
        if not candidates:
            return
        async with client.pipeline(transaction=False) as pipe:
            for entry_id in candidates:
                pipe.xrange(self.stream, entry_id, entry_id)
            found = await pipe.execute()
        gone = [entry_id for entry_id, rows in zip(candidates, found, strict=True) if not rows]
        if gone:
            logger.warning(
                "%d pending entries of %s were deleted from the stream", len(gone), state.name
            )
            state.to_ack.extend(gone)

    async def settle(
        self, state: GroupState, read_block: int | None = None
    ) -> list[tuple[bytes, dict[bytes, bytes], int]]:
        """XADD the group's dead letters and XACK what was handled or dead-lettered, in one
        pipeline; kept for next time if Redis cannot be reached. With ``read_block``, the same
        round trip then reads the next batch (see `read`) and returns it."""
        to_ack, to_dead = state.to_ack, state.to_dead
        if not to_ack and not to_dead:
            return [] if read_block is None else await self.read(state.name, read_block)
        client = self._client
        if client is None:
            return []
        state.to_ack, state.to_dead = [], []
        try:
            async with client.pipeline(transaction=False) as pipe:
                for record in to_dead:
                    pipe.xadd(
                        self.dead_stream,
                        {
                            b"handler": record.handler,
                            b"reason": record.reason,
                            b"error": record.error,
                            b"attempts": record.attempts,
                            b"entry": record.entry_id,
                            b"message_id": record.message_id,
                            b"m": record.envelope,
                        },
                    )
                ids = to_ack + [record.entry_id for record in to_dead]
                pipe.xack(self.stream, state.name, *ids)
                if read_block is not None:
                    pipe.xreadgroup(
                        state.name,
                        self.consumer,
                        {self.stream: ">"},
                        count=self.batch_size,
                        block=read_block,
                    )
                replies = await pipe.execute()
        except BaseException:
            state.to_ack[:0] = to_ack
            state.to_dead[:0] = to_dead
            raise
        self.counts.dead_lettered += len(to_dead)
        return [] if read_block is None else _entries(replies[-1])

    def wanted(self, slot: HandlerSlot, type_name: bytes) -> bool | None:
        """Whether ``slot`` subscribes to the event type ``type_name`` (None: unknown here)."""
        try:
            cls = event_class(type_name.decode(errors="replace"))
        except UnknownEventTypeError:
            return None
        return slot.registered.spec.accepts(cls)

    def on_dead_letter(self, letter: RuntimeDeadLetter) -> None:
        """The runtime's dead letters of our deliveries: to the dead-letter stream, or (the
        handler stopped with it queued) left pending in Redis for another consumer."""
        delivery = letter.message
        if type(delivery) is not Delivery:
            return
        if letter.reason in (DeadLetterReason.STOPPED, DeadLetterReason.KILLED):
            delivery.group.given_back(delivery)
            return
        reason = (
            "retries_exhausted" if letter.reason is DeadLetterReason.CRASHED else "mailbox_overflow"
        )
        delivery.group.dead(delivery, reason, letter.error, letter.attempts)


def _consumer_factory(state: GroupState) -> Any:
    return lambda: ConsumerActor(state)


def _entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes], int]]:
    """The entries of an XREADGROUP reply on one stream, as first deliveries."""
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3
        (entries,) = reply.values()
        entries = entries[0] if entries and isinstance(entries[0], list) else entries
    else:
        entries = reply[0][1]
    return [(entry_id, fields, 1) for entry_id, fields in entries if fields]


def _parse_id(value: bytes | str) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)

"""RedisStreams against a real redis-server: emit through Redis, consumer groups, acknowledgement,
dead letters, undecodable entries, groups that outlive processes, start-up errors."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import msgspec
import pytest
import redis.asyncio as redis

from bus import MSGPACK, BusTerminal, DeadLetter, Event, MessageContext, MessageRegistry
from bus.transport import RedisStreams, TransportError
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.anyio

#: generous bound for anything that crosses Redis (a shared 2-core machine)
WAIT = 20.0


class Placed(Event):
    __type_name__ = "tests.transport.placed"
    order: str
    amount: int


class PlacedOnline(Placed):
    __type_name__ = "tests.transport.placed_online"
    site: str


class Unrelated(Event):
    __type_name__ = "tests.transport.unrelated"
    n: int


def namespace() -> str:
    return f"t-{secrets.token_hex(4)}"


async def eventually(check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until true, failing after `WAIT` seconds with ``what``."""
    with anyio.move_on_after(WAIT):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await anyio.sleep(0.02)
    raise AssertionError(f"after {WAIT} s: {what}")


async def pending_count(server: RedisServer, stream: str, group: str) -> int:
    client = redis.Redis.from_url(server.url)
    try:
        summary = await client.xpending(stream, group)
        return int(summary["pending"])
    finally:
        await client.aclose()


async def test_emit_goes_through_redis_to_the_local_handler_and_is_acknowledged(
    redis_server: RedisServer,
) -> None:
    seen: list[tuple[Placed, MessageContext]] = []
    registry = MessageRegistry()

    @registry
    async def on_placed(event: Placed, ctx: MessageContext) -> None:
        seen.append((event, ctx))

    transport = RedisStreams(redis_server.url, namespace=namespace())
    async with BusTerminal(registry, transport=transport) as terminal:
        await terminal.bus.emit(Placed("o-1", 30), headers={"tenant": "acme"})
        await eventually(lambda: len(seen) == 1, "the handler got the event")
        group = registry_handler_name(registry)
        await eventually(
            lambda: _zero(pending_count(redis_server, transport.stream, group)),
            "the entry was acknowledged",
        )
    event, ctx = seen[0]
    assert event == Placed("o-1", 30)
    assert ctx.headers == {"tenant": "acme"}
    assert ctx.attempt == 1
    stats = transport.statistics()
    assert stats.written == 1
    assert stats.acknowledged == 1


def registry_handler_name(registry: MessageRegistry) -> str:
    (handler,) = registry.handlers
    return handler.name


async def _zero(count: Awaitable[int]) -> bool:
    return await count == 0


async def test_a_base_class_handler_gets_subclass_events_and_skips_others(
    redis_server: RedisServer,
) -> None:
    seen: list[Event] = []
    registry = MessageRegistry()

    @registry
    async def on_any_placed(event: Placed) -> None:
        seen.append(event)

    transport = RedisStreams(redis_server.url, namespace=namespace())
    async with BusTerminal(registry, transport=transport) as terminal:
        await terminal.bus.emit(Unrelated(1))
        await terminal.bus.emit(PlacedOnline("o-2", 5, "web"))
        terminal.bus.emit_nowait(Placed("o-3", 7))
        await eventually(lambda: len(seen) == 2, "both Placed events arrived")
        await eventually(
            lambda: _zero(
                pending_count(redis_server, transport.stream, registry_handler_name(registry))
            ),
            "every entry was acknowledged, the unrelated one included",
        )
    assert seen == [PlacedOnline("o-2", 5, "web"), Placed("o-3", 7)]
    assert type(seen[0]) is PlacedOnline


async def test_a_failing_entry_is_retried_then_dead_lettered_to_the_stream_and_locally(
    redis_server: RedisServer,
) -> None:
    attempts: list[int] = []
    letters: list[DeadLetter] = []
    registry = MessageRegistry()

    @registry.register(retries=2, retry_backoff=0.01, max_restarts=10)  # type: ignore[untyped-decorator]
    async def always_fails(event: Placed, ctx: MessageContext) -> None:
        attempts.append(ctx.attempt)
        raise ValueError(f"declined {event.order}")

    @registry
    async def on_dead(letter: DeadLetter) -> None:
        letters.append(letter)

    transport = RedisStreams(redis_server.url, namespace=namespace())
    async with BusTerminal(registry, transport=transport) as terminal:
        await terminal.bus.emit(Placed("o-9", 1))
        await eventually(lambda: len(letters) == 1, "a local DeadLetter")
        client = redis.Redis.from_url(redis_server.url)
        try:
            await eventually(
                lambda: _positive(client.xlen(transport.dead_stream)), "a dead-letter entry"
            )
            [(_, fields)] = await client.xrange(transport.dead_stream)
            group = next(h.name for h in registry.handlers if "always_fails" in h.name)
            await eventually(
                lambda: _zero(pending_count(redis_server, transport.stream, group)),
                "the dead-lettered entry was acknowledged",
            )
        finally:
            await client.aclose()
    assert attempts == [1, 2, 3]
    letter = letters[0]
    assert letter.event == Placed("o-9", 1)
    assert letter.reason == "retries_exhausted"
    assert "declined o-9" in letter.error
    assert fields[b"handler"].decode().endswith("always_fails")
    assert fields[b"reason"] == b"retries_exhausted"
    assert b"declined o-9" in fields[b"error"]
    assert fields[b"message_id"].decode() == letter.context.message_id
    assert MSGPACK.decode(fields[b"m"]) == (Placed("o-9", 1), letter.context)


async def _positive(count: Awaitable[int]) -> bool:
    return await count > 0


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        pytest.param(
            {b"t": b"tests.transport.placed", b"m": b"\xc1garbage"}, "undecodable", id="garbage"
        ),
        pytest.param(
            {
                b"t": b"no.such.type",
                b"m": msgspec.msgpack.encode(
                    {"type": "no.such.type", "event": {"n": 1}, "context": MessageContext.new()}
                ),
            },
            "unknown_type",
            id="unknown-type",
        ),
        pytest.param({b"x": b"y"}, "undecodable", id="missing-fields"),
    ],
)
async def test_an_entry_that_does_not_decode_is_dead_lettered_and_the_consumer_carries_on(
    redis_server: RedisServer, fields: dict[bytes, bytes], reason: str
) -> None:
    seen: list[Placed] = []
    registry = MessageRegistry()

    @registry
    async def on_placed(event: Placed) -> None:
        seen.append(event)

    transport = RedisStreams(redis_server.url, namespace=namespace())
    client = redis.Redis.from_url(redis_server.url)
    try:
        async with BusTerminal(registry, transport=transport) as terminal:
            await client.xadd(transport.stream, fields)  # type: ignore[arg-type]
            await terminal.bus.emit(Placed("after", 1))
            await eventually(lambda: seen == [Placed("after", 1)], "the next entry was handled")
            await eventually(lambda: _positive(client.xlen(transport.dead_stream)), "a dead entry")
            await eventually(
                lambda: _zero(
                    pending_count(redis_server, transport.stream, registry_handler_name(registry))
                ),
                "nothing left pending",
            )
        [(_, dead)] = await client.xrange(transport.dead_stream)
    finally:
        await client.aclose()
    assert dead[b"reason"] == reason.encode()
    assert dead[b"error"]


async def test_events_emitted_while_no_process_runs_the_handler_arrive_when_one_starts(
    redis_server: RedisServer,
) -> None:
    seen: list[Placed] = []
    registry = MessageRegistry()

    @registry
    async def on_placed(event: Placed) -> None:
        seen.append(event)

    ns = namespace()
    async with BusTerminal(registry, transport=RedisStreams(redis_server.url, namespace=ns)):
        pass  # creates the handler's group
    producer = MessageRegistry()  # a process that runs no handler
    async with BusTerminal(producer, transport=RedisStreams(redis_server.url, namespace=ns)) as t:
        for n in range(5):
            await t.bus.emit(Placed(f"o-{n}", n))
    assert seen == []
    async with BusTerminal(registry, transport=RedisStreams(redis_server.url, namespace=ns)):
        await eventually(lambda: len(seen) == 5, "the backlog was delivered")
    assert seen == [Placed(f"o-{n}", n) for n in range(5)]


async def test_two_processes_of_one_handler_share_the_load_each_event_once(
    redis_server: RedisServer,
) -> None:
    seen: list[tuple[str, int]] = []
    ns = namespace()

    def build(label: str) -> MessageRegistry:
        registry = MessageRegistry()

        async def shared_handler(event: Placed) -> None:
            seen.append((label, event.amount))
            await anyio.sleep(0.001)

        registry.register(shared_handler)
        return registry

    a = RedisStreams(redis_server.url, namespace=ns, batch_size=10, consumer="a")
    b = RedisStreams(redis_server.url, namespace=ns, batch_size=10, consumer="b")
    async with BusTerminal(build("a"), transport=a) as ta, BusTerminal(build("b"), transport=b):
        for n in range(200):
            ta.bus.emit_nowait(Placed("o", n))
        await eventually(lambda: len(seen) >= 200, "every event handled")
        await anyio.sleep(0.2)
    assert sorted(n for _, n in seen) == list(range(200))
    assert {label for label, _ in seen} == {"a", "b"}


async def test_an_unreachable_redis_fails_the_start_naming_host_and_port() -> None:
    port = free_port()
    transport = RedisStreams(f"redis://127.0.0.1:{port}/0", connect_timeout=2.0)
    with anyio.fail_after(WAIT):
        with pytest.raises(TransportError, match=f"127.0.0.1:{port}"):
            async with BusTerminal(MessageRegistry(), transport=transport):
                pass


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio_the_terminal_refuses_the_transport(redis_server: RedisServer) -> None:
    transport = RedisStreams(redis_server.url)
    with pytest.raises(TransportError, match="asyncio"):
        async with BusTerminal(MessageRegistry(), transport=transport):
            pass


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"url": "http://x"}, ValueError),
        ({"namespace": ""}, ValueError),
        ({"claim_idle": 0}, ValueError),
        ({"claim_idle": "1"}, TypeError),
        ({"max_len": 0}, ValueError),
        ({"max_len": 1.5}, TypeError),
        ({"batch_size": 0}, ValueError),
    ],
)
def test_bad_options_are_refused_naming_them(
    kwargs: dict[str, object], error: type[Exception]
) -> None:
    args = {"url": "redis://127.0.0.1:1/0", **kwargs}
    with pytest.raises(error, match=next(iter(kwargs))):
        RedisStreams(**args)  # type: ignore[arg-type]


async def test_a_live_but_slow_consumers_backlog_is_not_taken_over_by_another(
    redis_server: RedisServer,
) -> None:
    handled: list[tuple[str, int, int]] = []
    ns = namespace()

    def build(label: str) -> MessageRegistry:
        registry = MessageRegistry()

        async def slow_shared(event: Placed, ctx: MessageContext) -> None:
            await anyio.sleep(0.05)
            handled.append((label, event.amount, ctx.attempt))

        registry.register(slow_shared)
        return registry

    # each consumer holds up to 20 entries, 1 s of work: twice claim_idle
    options = {"namespace": ns, "batch_size": 10, "claim_idle": 0.5}
    a = RedisStreams(redis_server.url, consumer="a", **options)  # type: ignore[arg-type]
    b = RedisStreams(redis_server.url, consumer="b", **options)  # type: ignore[arg-type]
    async with BusTerminal(build("a"), transport=a) as ta, BusTerminal(build("b"), transport=b):
        for n in range(40):
            ta.bus.emit_nowait(Placed("o", n))
        await eventually(lambda: len(handled) >= 40, "every event handled")
        await anyio.sleep(0.6)  # time for a wrongful takeover to show
    assert sorted(n for _, n, _ in handled) == list(range(40))
    assert all(attempt == 1 for _, _, attempt in handled)
    assert a.statistics().claimed == b.statistics().claimed == 0


async def test_while_redis_is_down_emit_fails_and_queued_emits_arrive_once_it_is_back(
    tmp_path: Path,
) -> None:
    seen: list[int] = []
    registry = MessageRegistry()

    @registry
    async def on_placed(event: Placed) -> None:
        seen.append(event.amount)

    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        transport = RedisStreams(
            server.url, namespace=namespace(), connect_timeout=2.0, write_timeout=2.0
        )
        async with BusTerminal(registry, transport=transport) as terminal:
            await terminal.bus.emit(Placed("before", 1))
            await eventually(lambda: seen == [1], "the first event handled")
            await anyio.to_thread.run_sync(server.stop)
            with anyio.fail_after(WAIT), pytest.raises(TransportError, match="127.0.0.1"):
                await terminal.bus.emit(Placed("down", 2))
            terminal.bus.emit_nowait(Placed("queued", 3))
            await anyio.to_thread.run_sync(server.start)
            await eventually(lambda: 3 in seen, "the queued event arrived after the restart")
            await terminal.bus.emit(Placed("after", 4))
            await eventually(lambda: 4 in seen, "processing resumed")
        assert 2 not in seen
        assert transport.statistics().lost_nowait == 0
    finally:
        server.stop()


async def test_trimming_stops_at_the_lowest_pending_or_unread_entry_of_any_group(
    redis_server: RedisServer,
) -> None:
    transport = RedisStreams(redis_server.url, namespace=namespace(), max_len=10)
    stream = transport.stream
    client = redis.Redis.from_url(redis_server.url)
    try:
        ids = [await client.xadd(stream, {b"n": str(n).encode()}) for n in range(100)]
        await client.xgroup_create(stream, "pending", id="0")
        await client.xreadgroup("pending", "c", {stream: ">"}, count=60)
        await client.xack(stream, "pending", *ids[:30])  # 30..59 pending: the floor is ids[30]
        await client.xgroup_create(stream, "read", id=ids[50])  # read up to 50, all acknowledged
        await transport.open()
        try:
            await transport.trim()
            assert (await client.xrange(stream, count=1))[0][0] == ids[30]
            assert await client.xlen(stream) == 70
            await client.xack(stream, "pending", *ids[30:60])  # now the floor is ids[51]
            await transport.trim()
            assert (await client.xrange(stream, count=1))[0][0] == ids[51]
            await client.xgroup_destroy(stream, "read")
            await client.xgroup_destroy(stream, "pending")
            await transport.trim()  # no group left: down to max_len
            assert await client.xlen(stream) == 10
            assert (await client.xrange(stream, count=1))[0][0] == ids[90]
        finally:
            await transport.close()
    finally:
        await client.aclose()


async def test_stopping_the_terminal_acknowledges_everything_handled_and_leaves_no_duplicates(
    redis_server: RedisServer,
) -> None:
    handled: list[int] = []
    registry = MessageRegistry()

    @registry
    async def steady(event: Placed) -> None:
        await anyio.lowlevel.checkpoint()
        handled.append(event.amount)

    ns = namespace()
    for round_ in range(3):  # stop while reading, three times over
        before = len(handled)
        async with BusTerminal(
            registry, transport=RedisStreams(redis_server.url, namespace=ns, batch_size=20)
        ) as terminal:
            for n in range(100):
                terminal.bus.emit_nowait(Placed("o", round_ * 1000 + n))
            await eventually(lambda: len(handled) > before, "handling started")  # noqa: B023
        group = registry_handler_name(registry)
        assert await pending_count(redis_server, f"{ns}:events", group) == 0
    async with BusTerminal(registry, transport=RedisStreams(redis_server.url, namespace=ns)):
        await eventually(lambda: len(handled) == 300, "the rest handled")
        await anyio.sleep(0.2)
    assert len(handled) == len(set(handled)) == 300


async def test_an_entry_taken_over_from_a_dead_consumer_carries_the_delivery_count(
    redis_server: RedisServer,
) -> None:
    attempts: list[int] = []
    registry = MessageRegistry()

    @registry.register(retries=3, retry_backoff=0.01)  # type: ignore[untyped-decorator]
    async def flaky(event: Placed, ctx: MessageContext) -> None:
        attempts.append(ctx.attempt)
        if len(attempts) == 1:
            raise ValueError("first try here fails")

    ns = namespace()
    transport = RedisStreams(redis_server.url, namespace=ns, claim_idle=0.2)
    group = registry_handler_name(registry)
    client = redis.Redis.from_url(redis_server.url)
    try:
        # a consumer that read the entry and died before handling it
        await client.xgroup_create(transport.stream, group, id="0", mkstream=True)
        await client.xadd(
            transport.stream,
            {
                b"t": b"tests.transport.placed",
                b"m": MSGPACK.encode(Placed("o", 1), MessageContext.new()),
            },
        )
        await client.xreadgroup(group, "dead", {transport.stream: ">"}, count=10)
        async with BusTerminal(registry, transport=transport):
            await eventually(lambda: len(attempts) == 2, "taken over, failed once, then handled")
            await eventually(
                lambda: _zero(pending_count(redis_server, transport.stream, group)), "acknowledged"
            )
    finally:
        await client.aclose()
    assert attempts == [2, 3]
    assert transport.statistics().claimed == 1


async def test_a_pending_entry_deleted_from_the_stream_is_acknowledged_not_claimed_for_ever(
    redis_server: RedisServer,
) -> None:
    seen: list[Placed] = []
    registry = MessageRegistry()

    @registry
    async def on_placed(event: Placed) -> None:
        seen.append(event)

    transport = RedisStreams(redis_server.url, namespace=namespace(), claim_idle=0.2)
    group = registry_handler_name(registry)
    client = redis.Redis.from_url(redis_server.url)
    try:
        await client.xgroup_create(transport.stream, group, id="0", mkstream=True)
        ids = [
            await client.xadd(
                transport.stream,
                {
                    b"t": b"tests.transport.placed",
                    b"m": MSGPACK.encode(Placed(o, 1), MessageContext.new()),
                },
            )
            for o in ("kept", "deleted")
        ]
        await client.xreadgroup(group, "dead", {transport.stream: ">"}, count=10)
        await client.xdel(transport.stream, ids[1])
        async with BusTerminal(registry, transport=transport):
            await eventually(lambda: len(seen) == 1, "the remaining entry taken over")
            await eventually(
                lambda: _zero(pending_count(redis_server, transport.stream, group)),
                "the deleted one acknowledged",
            )
    finally:
        await client.aclose()
    assert seen == [Placed("kept", 1)]


async def test_one_transport_cannot_serve_two_running_terminals(redis_server: RedisServer) -> None:
    transport = RedisStreams(redis_server.url, namespace=namespace())
    async with BusTerminal(MessageRegistry(), transport=transport):
        with pytest.raises(TransportError, match="already open"):
            async with BusTerminal(MessageRegistry(), transport=transport):
                pass
    async with BusTerminal(MessageRegistry(), transport=transport) as terminal:  # reusable after
        await terminal.bus.emit(Placed("again", 1))


class PlainBase(msgspec.Struct):
    """A Lihil-style event base: a plain Struct, without bus.Event's stable type names."""


class PlainPlaced(PlainBase):
    order: str


async def test_emitting_a_plain_struct_event_through_redis_raises_type_error_and_publish_stays_local(
    redis_server: RedisServer,
) -> None:
    registry = MessageRegistry(event_base=PlainBase)
    seen: list[str] = []

    @registry
    async def on_placed(event: PlainPlaced) -> None:
        seen.append(event.order)

    transport = RedisStreams(redis_server.url, namespace=namespace())
    async with BusTerminal(registry, transport=transport) as terminal:
        with pytest.raises(TypeError, match=r"derive from bus\.Event"):
            await terminal.bus.emit(PlainPlaced("a"))
        with pytest.raises(TypeError, match=r"derive from bus\.Event"):
            terminal.bus.emit_nowait(PlainPlaced("b"))
        await terminal.bus.publish(PlainPlaced("c"))
        await terminal.drain()
    assert seen == ["c"]

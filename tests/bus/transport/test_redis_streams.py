"""RedisStreams against a real redis-server: emit through Redis, consumer groups, acknowledgement,
dead letters, undecodable entries, groups that outlive processes, start-up errors."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

import anyio
import pytest
import redis.asyncio as redis

from bus import BusTerminal, DeadLetter, Event, MessageContext, MessageRegistry
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

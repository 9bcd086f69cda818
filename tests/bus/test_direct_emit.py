"""A plain emitted delivery is handled by the actor loop calling the user's coroutine itself (the
``Actor.direct`` fast path): its accounting stays exact per message."""

from __future__ import annotations

import anyio
import pytest

from bus import BusTerminal, Event, MessageContext, MessageRegistry

pytestmark = pytest.mark.anyio
LIMIT = 10


class Tick(Event):
    n: int


async def test_in_flight_and_processed_count_each_direct_delivery_as_it_ends() -> None:
    release = anyio.Event()
    entered = anyio.Event()
    seen: list[int] = []

    async def slow_second(event: Tick) -> None:
        if event.n == 2:
            entered.set()
            await release.wait()
        seen.append(event.n)

    registry = MessageRegistry()
    registry.register(slow_second, mailbox_capacity=None)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            for n in (1, 2, 3):
                terminal.bus.emit_nowait(Tick(n))
            await entered.wait()
            # the handler is inside event 2: event 1 is done, 2 and 3 are not
            assert terminal.statistics().in_flight == 2
            assert terminal.handler_ref(slow_second.__qualname__).statistics().processed == 1
            release.set()
            await terminal.drain()
            assert terminal.statistics().in_flight == 0
            assert terminal.handler_ref(slow_second.__qualname__).statistics().processed == 3
    assert seen == [1, 2, 3]


async def test_a_direct_handler_with_a_context_gets_the_emits_id_and_attempt_one() -> None:
    contexts: list[MessageContext] = []
    others: list[MessageContext] = []

    async def first(event: Tick, ctx: MessageContext) -> None:
        contexts.append(ctx)

    async def second(event: Tick, ctx: MessageContext) -> None:
        others.append(ctx)

    registry = MessageRegistry()
    registry.register(first)
    registry.register(second)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(Tick(1))
            await terminal.bus.emit(Tick(2))
            await terminal.drain()
    assert [c.attempt for c in contexts] == [1, 1]
    # every delivery of one message shares its id; two emits have two
    assert [c.message_id for c in contexts] == [c.message_id for c in others]
    assert contexts[0].message_id != contexts[1].message_id
    assert contexts[0].timestamp <= contexts[1].timestamp

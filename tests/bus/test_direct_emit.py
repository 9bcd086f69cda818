"""A plain emitted delivery is handled by the actor loop calling the user's coroutine itself (the
``Actor.direct`` fast path): its accounting stays exact per message."""

from __future__ import annotations

import gc

import anyio
import pytest

from bus import BusTerminal, Event, MessageContext, MessageRegistry

pytestmark = pytest.mark.anyio
LIMIT = 10


class Tick(Event):
    n: int


class Resource:
    pass


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


async def test_queued_emits_add_no_objects_for_the_cyclic_gc_to_walk() -> None:
    # a backlog of emitted deliveries must not feed the collector: each collection would walk
    # all of it (and, growing, it triggers collections of the older generations too)
    seen: dict[str, list[str]] = {"plain": [], "context": [], "resourced": []}

    async def plain(event: Tick) -> None:
        seen["plain"].append(str(event.n))

    async def with_context(event: Tick, ctx: MessageContext) -> None:
        seen["context"].append(ctx.message_id)

    async def resourced(event: Tick, ctx: MessageContext, resource: Resource) -> None:
        seen["resourced"].append(ctx.message_id)

    def provide() -> Resource:
        return Resource()

    registry = MessageRegistry()
    registry.factory(provide)
    registry.register(plain, with_context, resourced, mailbox_capacity=None)
    count = 300
    singles = [Tick(n) for n in range(count)]
    batch = [Tick(n) for n in range(count, 2 * count)]
    awaited = [Tick(n) for n in range(2 * count, 3 * count)]
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            bus = terminal.bus
            # every handler has handled a message and is active: waking an idle one would
            # allocate its task, which is not what this measures
            bus.emit_nowait(Tick(-1))
            await terminal.drain()
            gc.collect()
            gc.disable()
            try:
                before = len(gc.get_objects())
                for event in singles:
                    bus.emit_nowait(event)
                bus.emit_many_nowait(batch)
                for event in awaited:
                    await bus.emit(event)  # room in every mailbox: it queues without yielding
                queued = terminal.statistics().in_flight
                tracked = len(gc.get_objects()) - before
            finally:
                gc.enable()
            await terminal.drain()
    assert queued == 3 * 3 * count
    # a tracked object per message would be 900 more; a few come from the calls themselves
    assert tracked < 50, tracked
    assert seen["plain"] == [str(n) for n in range(-1, 3 * count)]
    # each message has its own id, shared by its deliveries to every handler
    assert seen["context"] == seen["resourced"]
    assert len(set(seen["context"])) == 3 * count + 1

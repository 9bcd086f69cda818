"""``emit_many`` / ``emit_many_nowait``: a batch of emits with the guarantees of one ``emit`` each, and
the identity a message gets when it is sent (one id and one timestamp for all of its deliveries)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from bus import (
    BusTerminal,
    DeadLetter,
    Event,
    EventBus,
    MailboxFullError,
    MessageContext,
    MessageRegistry,
)
from bus._policy import Overflow

pytestmark = pytest.mark.anyio

LIMIT = 20


class Numbered(Event):
    n: int


class Other(Event):
    text: str


class Boom(Exception):
    pass


# -- emit_many ----------------------------------------------------------------------------------


async def test_emit_many_delivers_every_event_in_order_each_as_its_own_message() -> None:
    seen: list[tuple[int, MessageContext]] = []

    async def handler(event: Numbered, ctx: MessageContext) -> None:
        seen.append((event.n, ctx))

    registry = MessageRegistry()
    registry.register(handler)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit_many(Numbered(n) for n in range(50))
            await terminal.drain()
            stats = terminal.statistics()
    assert [n for n, _ in seen] == list(range(50))
    ids = [ctx.message_id for _, ctx in seen]
    assert len(set(ids)) == 50
    assert all(ctx.causation_id is None and ctx.correlation_id == ctx.message_id for _, ctx in seen)
    assert all(ctx.attempt == 1 for _, ctx in seen)
    assert stats.emitted == 50


async def test_emit_many_counts_unrouted_events_and_delivers_the_others() -> None:
    seen: list[int] = []

    async def handler(event: Numbered) -> None:
        seen.append(event.n)

    registry = MessageRegistry()
    registry.register(handler)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit_many([Numbered(1), Other("nobody"), Numbered(2)])
            terminal.bus.emit_many_nowait([Other("nobody"), Numbered(3)])
            await terminal.drain()
            stats = terminal.statistics()
    assert seen == [1, 2, 3]
    assert stats.unrouted == 2


@pytest.mark.parametrize("method", ["emit_many", "emit_many_nowait"])
@pytest.mark.parametrize("bad", [object(), Numbered, "text", None])
async def test_a_batch_with_a_non_event_raises_type_error_and_queues_nothing(
    method: str, bad: object
) -> None:
    seen: list[int] = []

    async def handler(event: Numbered) -> None:
        seen.append(event.n)

    registry = MessageRegistry()
    registry.register(handler)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            bus = terminal.bus
            batch: list[Any] = [Numbered(1), bad, Numbered(2)]
            with pytest.raises(TypeError):
                if method == "emit_many":
                    await bus.emit_many(batch)
                else:
                    bus.emit_many_nowait(batch)
            await terminal.drain()
            assert terminal.statistics().in_flight == 0
            await bus.emit_many([Numbered(3)])
            await terminal.drain()
    assert seen == [3]


async def test_emit_many_waits_for_room_in_a_full_mailbox_and_keeps_the_order() -> None:
    seen: list[int] = []
    returned: list[bool] = []

    async def slow(event: Numbered) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(event.n)

    registry = MessageRegistry()
    registry.register(slow, mailbox_capacity=2)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit_many([Numbered(n) for n in range(20)])
            returned.append(True)
            await terminal.drain()
    assert returned == [True]
    assert seen == list(range(20))


async def test_emit_many_fails_on_a_full_mailbox_under_overflow_fail_keeping_earlier_events() -> None:
    release = anyio.Event()
    started = anyio.Event()
    seen: list[int] = []

    async def slow(event: Numbered) -> None:
        started.set()
        await release.wait()
        seen.append(event.n)

    registry = MessageRegistry()
    registry.register(slow, mailbox_capacity=2, overflow="fail")
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            bus = terminal.bus
            await bus.emit(Numbered(0))
            await started.wait()
            with pytest.raises(MailboxFullError):
                await bus.emit_many([Numbered(n) for n in range(1, 5)])
            release.set()
            await terminal.drain()
    assert seen == [0, 1, 2]


async def test_emit_many_failures_are_retried_in_place_then_dead_lettered_with_one_identity() -> None:
    attempts: list[tuple[int, str, int]] = []
    letters: list[DeadLetter] = []

    async def poison(event: Numbered, ctx: MessageContext) -> None:
        attempts.append((event.n, ctx.message_id, ctx.attempt))
        if event.n == 1:
            raise Boom("poison")

    async def on_dead_letter(letter: DeadLetter) -> None:
        letters.append(letter)

    registry = MessageRegistry()
    registry.register(poison, retries=2, retry_backoff=0.0)
    registry.register(on_dead_letter)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit_many([Numbered(n) for n in range(3)])
            await terminal.drain()
    assert [(n, a) for n, _, a in attempts] == [(0, 1), (1, 1), (1, 2), (1, 3), (2, 1)]
    poisoned = {message_id for n, message_id, _ in attempts if n == 1}
    assert len(poisoned) == 1
    assert len(letters) == 1
    assert letters[0].context.message_id in poisoned
    assert letters[0].attempts == 3


async def test_emit_many_keeps_each_handlers_order_across_runs_of_mixed_event_types() -> None:
    both: list[object] = []
    numbers: list[int] = []
    contexts: list[MessageContext] = []

    async def on_both(event: Numbered | Other, ctx: MessageContext) -> None:
        both.append(event.n if isinstance(event, Numbered) else event.text)
        contexts.append(ctx)

    async def on_numbers(event: Numbered) -> None:
        numbers.append(event.n)

    batch: list[Numbered | Other] = [
        Numbered(0), Numbered(1), Other("a"), Numbered(2), Other("b"), Other("c"), Numbered(3)
    ]
    registry = MessageRegistry()
    registry.register(on_both, on_numbers)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit_many(batch)
            terminal.bus.emit_many_nowait(batch)
            await terminal.drain()
            stats = terminal.statistics()
    assert both == [0, 1, "a", 2, "b", "c", 3] * 2
    assert numbers == [0, 1, 2, 3] * 2
    # each event its own message, drawn in batch order: ids ascend, times never go back
    ids = [int(ctx.message_id, 16) for ctx in contexts]
    assert ids == sorted(set(ids))
    times = [ctx.timestamp for ctx in contexts]
    assert times == sorted(times)
    assert (stats.emitted, stats.in_flight, stats.unrouted) == (14, 0, 0)


async def test_emit_many_queues_what_fits_then_waits_for_room_for_the_rest_counting_each() -> None:
    release = anyio.Event()
    started = anyio.Event()
    seen: list[int] = []

    async def slow(event: Numbered) -> None:
        started.set()
        await release.wait()
        seen.append(event.n)

    registry = MessageRegistry()
    registry.register(slow, mailbox_capacity=3)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            bus = terminal.bus
            await bus.emit(Numbered(0))
            await started.wait()  # 0 is being processed, the mailbox is empty
            async with anyio.create_task_group() as tg:
                tg.start_soon(bus.emit_many, [Numbered(n) for n in range(1, 9)])
                await anyio.wait_all_tasks_blocked()
                # three fit; the emitter waits for room for the fourth, which is counted in flight
                ref = terminal.handler_ref(slow.__qualname__)
                assert ref.statistics().mailbox_depth == 3
                assert terminal.statistics().in_flight == 1 + 3 + 1
                release.set()
            await terminal.drain()
            stats = terminal.statistics()
    assert seen == list(range(9))
    assert (stats.emitted, stats.in_flight, stats.dead_letters) == (9, 0, 0)


@pytest.mark.parametrize("method", ["emit_many", "emit_many_nowait"])
@pytest.mark.parametrize(
    ("overflow", "kept"), [("drop_oldest", [0, 6, 7, 8]), ("drop_new", [0, 1, 2, 3])]
)
async def test_a_batch_past_a_dropping_mailbox_drops_event_by_event_as_its_policy_says(
    method: str, overflow: Overflow, kept: list[int]
) -> None:
    release = anyio.Event()
    started = anyio.Event()
    seen: list[int] = []
    letters: list[DeadLetter] = []

    async def slow(event: Numbered) -> None:
        started.set()
        await release.wait()
        seen.append(event.n)

    async def on_dead_letter(letter: DeadLetter) -> None:
        letters.append(letter)

    registry = MessageRegistry()
    registry.register(slow, mailbox_capacity=3, overflow=overflow)
    registry.register(on_dead_letter)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            bus = terminal.bus
            await bus.emit(Numbered(0))
            await started.wait()
            batch = [Numbered(n) for n in range(1, 9)]
            if method == "emit_many":
                await bus.emit_many(batch)
            else:
                bus.emit_many_nowait(batch)
            release.set()
            await terminal.drain()
            stats = terminal.statistics()
    assert seen == kept
    dropped = sorted(set(range(9)) - set(kept))
    assert sorted(letter.event.n for letter in letters) == dropped  # type: ignore[attr-defined]
    assert all(letter.reason == "mailbox_overflow" for letter in letters)
    assert (stats.in_flight, stats.dead_letters) == (0, len(dropped))


# -- emit_many_nowait -----------------------------------------------------------------------------


@pytest.mark.parametrize("overflow", ["backpressure", "fail"])
async def test_emit_many_nowait_is_all_or_nothing_on_a_bounded_mailbox(overflow: Overflow) -> None:
    capacity = 3
    release = anyio.Event()
    started = anyio.Event()
    slow_seen: list[int] = []
    fast_seen: list[int] = []

    async def fast(event: Numbered) -> None:
        fast_seen.append(event.n)

    async def slow(event: Numbered) -> None:
        started.set()
        await release.wait()
        slow_seen.append(event.n)

    registry = MessageRegistry()
    registry.register(fast)
    registry.register(slow, mailbox_capacity=capacity, overflow=overflow)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            bus = terminal.bus
            bus.emit_nowait(Numbered(0))
            await started.wait()  # 0 is being processed, the mailbox is empty
            bus.emit_many_nowait([Numbered(1), Numbered(2)])
            in_flight = terminal.statistics().in_flight
            with pytest.raises(MailboxFullError, match="slow"):
                bus.emit_many_nowait([Numbered(97), Numbered(98)])  # one fits, two do not
            assert terminal.statistics().in_flight == in_flight
            bus.emit_many_nowait([Numbered(3)])  # exactly fills it
            release.set()
            await terminal.drain()
    assert slow_seen == [0, 1, 2, 3]
    assert fast_seen == [0, 1, 2, 3]


async def test_emit_many_nowait_from_a_sync_handler_queues_on_the_loop() -> None:
    seen: list[int] = []

    def fan(event: Other, ctx: Any, bus: EventBus) -> None:
        bus.emit_many_nowait([Numbered(n) for n in range(5)])

    async def handler(event: Numbered, ctx: MessageContext) -> None:
        seen.append(event.n)
        causes.add(ctx.causation_id)

    causes: set[str | None] = set()
    registry = MessageRegistry()
    registry.register(fan, handler)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.publish(Other("go"))
            await terminal.drain()
    assert seen == list(range(5))
    assert len(causes) == 1
    assert None not in causes


# -- one identity per message, captured when it is sent ----------------------------------------


async def test_every_handler_of_a_fan_out_sees_one_message_id_and_the_emit_time() -> None:
    contexts: list[MessageContext] = []
    release = anyio.Event()

    async def first(event: Numbered, ctx: MessageContext) -> None:
        await release.wait()
        contexts.append(ctx)

    async def second(event: Numbered, ctx: Any) -> None:
        await release.wait()
        contexts.append(ctx)

    async def third(event: Numbered) -> None:
        pass

    registry = MessageRegistry()
    registry.register(first, second, third)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            before = time.time()
            terminal.bus.emit_nowait(Numbered(1), headers={"k": "v"})
            terminal.bus.emit_nowait(Numbered(2))
            after = time.time()
            # the handlers read their context well after the emit: its time must still be the emit's
            await anyio.sleep(0.2)
            release.set()
            await terminal.drain()
    assert len(contexts) == 4
    by_id: dict[str, list[MessageContext]] = {}
    for ctx in contexts:
        by_id.setdefault(ctx.message_id, []).append(ctx)
    assert len(by_id) == 2
    for same in by_id.values():
        assert len(same) == 2
        assert same[0] == same[1]
        assert before <= same[0].timestamp <= after
    assert sorted(ctx.headers.get("k", "") for ctx in contexts) == ["", "", "v", "v"]


async def test_a_nested_emit_many_is_caused_by_the_handled_message() -> None:
    contexts: list[MessageContext] = []
    roots: list[MessageContext] = []

    async def fan(event: Other, ctx: MessageContext, bus: EventBus) -> None:
        roots.append(ctx)
        await bus.emit_many([Numbered(1), Numbered(2)])

    async def handler(event: Numbered, ctx: MessageContext) -> None:
        contexts.append(ctx)

    registry = MessageRegistry()
    registry.register(fan, handler)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(Other("go"), headers={"trace": "t1"})
            await terminal.drain()
    (root,) = roots
    assert len(contexts) == 2
    assert contexts[0].message_id != contexts[1].message_id
    for ctx in contexts:
        assert ctx.causation_id == root.message_id
        assert ctx.correlation_id == root.correlation_id
        assert ctx.headers == {"trace": "t1"}
        assert ctx.timestamp >= root.timestamp


async def test_a_dead_letter_for_a_handler_without_a_context_carries_the_message_identity() -> None:
    roots: list[MessageContext] = []
    letters: list[DeadLetter] = []
    bounds: list[float] = []

    async def fan(event: Other, ctx: MessageContext, bus: EventBus) -> None:
        roots.append(ctx)
        bounds.append(time.time())
        bus.emit_nowait(Numbered(1))
        await bus.emit_many([Numbered(2)])
        bounds.append(time.time())

    async def poison(event: Numbered) -> None:
        raise Boom(str(event.n))

    async def on_dead_letter(letter: DeadLetter) -> None:
        letters.append(letter)

    registry = MessageRegistry()
    registry.register(fan, on_dead_letter)
    registry.register(poison, retries=1, retry_backoff=0.0)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(Other("go"))
            await terminal.drain()
    (root,) = roots
    assert [letter.event for letter in letters] == [Numbered(1), Numbered(2)]
    assert len({letter.context.message_id for letter in letters}) == 2
    for letter in letters:
        assert letter.context.causation_id == root.message_id
        assert letter.context.correlation_id == root.correlation_id
        assert bounds[0] <= letter.context.timestamp <= bounds[1]
        assert letter.attempts == 2

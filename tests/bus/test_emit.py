"""``emit`` / ``emit_nowait``: queued delivery, retries in place, dead letters, poison messages,
bounded mailboxes, ``drain``, draining on exit, MRO dispatch, unrouted events, sync handlers,
bad input."""

from __future__ import annotations

import threading

import anyio
import anyio.lowlevel
import pytest
from trio.testing import MockClock

from bus import (
    BusClosedError,
    BusError,
    BusTerminal,
    DeadLetter,
    Event,
    EventBus,
    MailboxFullError,
    MessageContext,
    MessageRegistry,
)
from bus._policy import Overflow, PolicyOptions

pytestmark = pytest.mark.anyio

LIMIT = 20


class TodoCreated(Event):
    name: str
    content: str


class Numbered(Event):
    n: int


class Base(Event):
    tag: str


class Left(Base):
    pass


class Right(Base):
    pass


class Boom(Exception):
    pass


def mock_clock_trio() -> object:
    return pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mockclock")


# -- emit returns before handlers run ---------------------------------------------------------


async def test_emit_returns_before_the_handler_runs() -> None:
    seen: list[str] = []

    async def handler(event: TodoCreated, ctx: MessageContext) -> None:
        seen.append(event.name)

    registry = MessageRegistry()
    registry.register(handler)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(TodoCreated("a", ""))
            terminal.bus.emit_nowait(TodoCreated("b", ""))
            assert seen == []
            assert terminal.statistics().in_flight == 2
            await terminal.drain()
            assert seen == ["a", "b"]
            assert terminal.statistics().in_flight == 0
            assert terminal.statistics().emitted == 2


async def test_emit_failures_never_reach_the_emitter() -> None:
    async def handler(event: TodoCreated, ctx: MessageContext) -> None:
        raise Boom("never seen by the emitter")

    registry = MessageRegistry()
    registry.register(handler, retries=0)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(TodoCreated("a", ""))
            terminal.bus.emit_nowait(TodoCreated("b", ""))
            await terminal.drain()
            assert terminal.statistics().dead_letters == 2


# -- retries in place, dead letters -----------------------------------------------------------


async def test_a_failing_message_is_retried_in_place_with_attempt_incrementing() -> None:
    log: list[tuple[int, int]] = []

    async def handler(event: Numbered, ctx: MessageContext) -> None:
        log.append((event.n, ctx.attempt))
        if event.n == 1 and ctx.attempt < 3:
            raise Boom(f"attempt {ctx.attempt}")

    registry = MessageRegistry()
    registry.register(handler, retries=3, retry_backoff=0.0)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            for n in range(4):
                await terminal.bus.emit(Numbered(n))
            await terminal.drain()
            assert terminal.statistics().dead_letters == 0
    # message 1 retried before 2 and 3 (per-sender FIFO kept)
    assert log == [(0, 1), (1, 1), (1, 2), (1, 3), (2, 1), (3, 1)]


async def test_exhausted_retries_become_a_dead_letter_event() -> None:
    attempts: list[int] = []
    letters: list[DeadLetter] = []
    later: list[int] = []

    async def poison(event: Numbered, ctx: MessageContext) -> None:
        attempts.append(ctx.attempt)
        if event.n == 0:
            raise Boom("poison pill")
        later.append(event.n)

    async def on_dead_letter(letter: DeadLetter, ctx: MessageContext) -> None:
        letters.append(letter)

    registry = MessageRegistry()
    registry.register(poison, retries=2, retry_backoff=0.0)
    registry.register(on_dead_letter)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            bus = terminal.bus
            await bus.emit(Numbered(0), headers={"k": "v"})
            await bus.emit(Numbered(1))
            await terminal.drain()
            assert terminal.statistics().dead_letters == 1
            assert terminal.handler_ref(poison.__qualname__).alive
    assert attempts == [1, 2, 3, 1]
    assert later == [1]
    assert len(letters) == 1
    letter = letters[0]
    assert letter.handler == f"{__name__}.{poison.__qualname__}"
    assert letter.event == Numbered(0)
    assert letter.context.headers == {"k": "v"}
    assert letter.context.causation_id is None
    assert "Boom" in letter.error
    assert "poison pill" in letter.error
    assert letter.attempts == 3
    assert letter.reason == "retries_exhausted"


@pytest.mark.parametrize("anyio_backend", [mock_clock_trio()])
async def test_retries_with_the_default_backoff_nothing_lost() -> None:
    seen: list[tuple[int, int]] = []
    letters: list[DeadLetter] = []

    async def flaky(event: Numbered, ctx: MessageContext) -> None:
        seen.append((event.n, ctx.attempt))
        if event.n % 3 == 0 and ctx.attempt == 1:
            raise Boom("once")
        if event.n == 7:
            raise Boom("always")

    async def on_dead_letter(letter: DeadLetter, ctx: MessageContext) -> None:
        letters.append(letter)

    registry = MessageRegistry()
    registry.register(flaky)  # default policy: retries=3, backoff 0.1 s doubling
    registry.register(on_dead_letter)
    start = anyio.current_time()
    async with BusTerminal(registry) as terminal:
        for n in range(10):
            await terminal.bus.emit(Numbered(n))
        await terminal.drain()
    elapsed = anyio.current_time() - start
    first_attempts = [n for n, attempt in seen if attempt == 1]
    assert first_attempts == list(range(10))
    assert [a for n, a in seen if n == 7] == [1, 2, 3, 4]
    assert [letter.event for letter in letters] == [Numbered(7)]
    assert letters[0].attempts == 4
    # 4 single retries of 0.1 s, and 0.1 + 0.2 + 0.4 for message 7; plus the restart backoff
    # (0.01 s doubling while crashes follow each other without progress, up to 20 % jitter):
    # 4 x 0.01 for the single crashes, 0.01 + 0.02 + 0.04 + 0.08 for message 7
    retries, restarts = 4 * 0.1 + 0.7, 4 * 0.01 + 0.15
    assert retries + restarts - 0.01 <= elapsed <= retries + restarts * 1.2 + 0.05


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param({"retry_backoff": 0.0}, id="default-limits"),
        # the tightest limits allowed: exactly retries + 1 crashes per message
        pytest.param({"retries": 3, "max_restarts": 4, "retry_backoff": 0.0}, id="tightest"),
    ],
)
async def test_a_poison_message_never_takes_the_bus_down(policy: PolicyOptions) -> None:
    processed: list[int] = []
    attempts: list[int] = []
    other: list[int] = []

    async def poisoned(event: Numbered, ctx: MessageContext) -> None:
        if event.n == 5:
            attempts.append(ctx.attempt)
            raise Boom("poison")
        processed.append(event.n)

    async def healthy(event: Numbered, ctx: MessageContext) -> None:
        other.append(event.n)

    registry = MessageRegistry()
    registry.register(poisoned, **policy)
    registry.register(healthy)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            for n in range(20):
                await terminal.bus.emit(Numbered(n))
            await terminal.drain()
            assert terminal.handler_ref(poisoned.__qualname__).alive
            assert terminal.statistics().dead_letters == 1
            await terminal.bus.publish(Numbered(101))
    assert attempts == [1, 2, 3, 4]
    assert processed == [n for n in range(20) if n != 5] + [101]
    assert other == [*range(20), 101]


# -- bounded mailboxes ------------------------------------------------------------------------


@pytest.mark.parametrize("overflow", ["backpressure", "fail"])
async def test_emit_nowait_on_a_full_mailbox_raises_and_queues_nothing(overflow: Overflow) -> None:
    capacity = 3
    release = anyio.Event()
    started = anyio.Event()
    slow_seen: list[int] = []
    fast_seen: list[int] = []

    async def fast(event: Numbered, ctx: MessageContext) -> None:
        fast_seen.append(event.n)

    async def slow(event: Numbered, ctx: MessageContext) -> None:
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
            for n in range(1, capacity + 1):
                bus.emit_nowait(Numbered(n))
            in_flight = terminal.statistics().in_flight
            with pytest.raises(MailboxFullError):
                bus.emit_nowait(Numbered(99))
            assert terminal.statistics().in_flight == in_flight
            release.set()
            await terminal.drain()
    assert slow_seen == [0, 1, 2, 3]
    # nothing queued for the handler with room either
    assert fast_seen == [0, 1, 2, 3]


async def test_emit_waits_for_room_in_a_full_mailbox() -> None:
    release = anyio.Event()
    started = anyio.Event()
    seen: list[int] = []
    done: list[int] = []

    async def slow(event: Numbered, ctx: MessageContext) -> None:
        started.set()
        await release.wait()
        seen.append(event.n)

    registry = MessageRegistry()
    registry.register(slow, mailbox_capacity=1)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            bus = terminal.bus
            await bus.emit(Numbered(0))
            await started.wait()
            await bus.emit(Numbered(1))  # fills the mailbox

            async def blocked_emit() -> None:
                await bus.emit(Numbered(2))
                done.append(2)

            async with anyio.create_task_group() as tg:
                tg.start_soon(blocked_emit)
                for _ in range(10):
                    await anyio.lowlevel.checkpoint()
                assert done == []
                release.set()
            assert done == [2]
            await terminal.drain()
    assert seen == [0, 1, 2]


# -- drain ------------------------------------------------------------------------------------


async def test_drain_waits_for_nested_emits() -> None:
    seen: list[int] = []

    async def fan_out(event: Numbered, ctx: MessageContext, bus: EventBus) -> None:
        await anyio.sleep(0.001)
        seen.append(event.n)
        if event.n < 40:
            await bus.emit(Numbered(2 * event.n + 1))
            bus.emit_nowait(Numbered(2 * event.n + 2))

    registry = MessageRegistry()
    registry.register(fan_out)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(Numbered(0))
            await terminal.drain()
            assert sorted(seen) == list(range(81))
            assert terminal.statistics().in_flight == 0
            assert terminal.handler_ref(fan_out.__qualname__).statistics().mailbox_depth == 0


async def test_drain_with_nothing_queued_returns_at_once() -> None:
    registry = MessageRegistry()
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.drain()
            assert terminal.statistics().in_flight == 0


async def test_leaving_the_terminal_drains_what_is_queued() -> None:
    seen: list[int] = []

    async def slowish(event: Numbered, ctx: MessageContext, bus: EventBus) -> None:
        await anyio.sleep(0.001)
        seen.append(event.n)
        if event.n < 5:
            await bus.emit(Numbered(event.n + 100))

    registry = MessageRegistry()
    registry.register(slowish)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry, shutdown_timeout=LIMIT) as terminal:
            for n in range(30):
                await terminal.bus.emit(Numbered(n))
            assert len(seen) < 30
    assert sorted(seen) == sorted([*range(30), *range(100, 105)])


@pytest.mark.parametrize("anyio_backend", [mock_clock_trio()])
async def test_leaving_the_terminal_gives_up_draining_after_shutdown_timeout() -> None:
    seen: list[int] = []

    async def stuck(event: Numbered, ctx: MessageContext) -> None:
        seen.append(event.n)
        await anyio.sleep(1000)

    registry = MessageRegistry()
    registry.register(stuck, shutdown_timeout=1.0)
    start = anyio.current_time()
    async with BusTerminal(registry, shutdown_timeout=2.0) as terminal:
        await terminal.bus.emit(Numbered(1))
        await terminal.bus.emit(Numbered(2))
    elapsed = anyio.current_time() - start
    assert seen == [1]
    # 2 s of draining, then the handler's own 1 s shutdown timeout before it is cancelled
    assert elapsed == pytest.approx(3.0, abs=0.01)
    stats = terminal.statistics()
    assert stats.in_flight == 0
    assert stats.dead_letters == 2  # one killed while processing, one never processed


# -- dispatch ---------------------------------------------------------------------------------


async def test_a_base_class_handler_receives_subclasses_defined_after_registration() -> None:
    seen: list[Base] = []

    async def on_base(event: Base, ctx: MessageContext) -> None:
        seen.append(event)

    registry = MessageRegistry()
    registry.register(on_base)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:

            class Later(Left):
                extra: int = 0

            await terminal.bus.publish(Later("late", 1))
            await terminal.bus.emit(Later("late-emit", 2))
            await terminal.drain()
    assert [type(e) for e in seen] == [Later, Later]
    assert [e.tag for e in seen] == ["late", "late-emit"]


async def test_overlapping_subscriptions_deliver_each_event_once() -> None:
    seen: list[str] = []

    async def overlapping(event: Left | Base | Right, ctx: MessageContext) -> None:
        seen.append(event.tag)

    registry = MessageRegistry()
    registry.register(overlapping)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.publish(Left("l"))
            await terminal.bus.publish(Right("r"))
            await terminal.bus.publish(Base("b"))
            await terminal.bus.emit(Left("l2"))
            await terminal.drain()
    assert seen == ["l", "r", "b", "l2"]


async def test_an_event_nobody_subscribes_to_is_dropped_and_counted() -> None:
    seen: list[str] = []

    async def on_todo(event: TodoCreated, ctx: MessageContext) -> None:
        seen.append(event.name)

    registry = MessageRegistry()
    registry.register(on_todo)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.publish(Numbered(1))
            await terminal.bus.emit(Numbered(2))
            terminal.bus.emit_nowait(Numbered(3))
            await terminal.drain()
            stats = terminal.statistics()
            assert stats.unrouted == 3
            assert stats.in_flight == 0
            await terminal.bus.publish(TodoCreated("routed", ""))
            assert terminal.statistics().unrouted == 3
    assert seen == ["routed"]


# -- sync handlers ----------------------------------------------------------------------------


async def test_sync_handler_runs_in_a_worker_thread_under_emit() -> None:
    threads: list[int] = []
    attempts: list[int] = []

    def sync_handler(event: Numbered, ctx: MessageContext) -> None:
        threads.append(threading.get_ident())
        attempts.append(ctx.attempt)
        if ctx.attempt == 1 and event.n == 0:
            raise Boom("sync retry")

    registry = MessageRegistry()
    registry.register(sync_handler, retry_backoff=0.0)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            loop_thread = threading.get_ident()
            await terminal.bus.emit(Numbered(0))
            await terminal.bus.emit(Numbered(1))
            await terminal.drain()
    assert attempts == [1, 2, 1]
    assert loop_thread not in threads


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["x", 42, TodoCreated, object()], ids=["str", "int", "class", "object"]
)
async def test_emit_rejects_a_non_event_and_disturbs_nothing_queued(bad: object) -> None:
    seen: list[int] = []

    async def handler(event: Numbered, ctx: MessageContext) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(event.n)

    registry = MessageRegistry()
    registry.register(handler)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            for n in range(3):
                await terminal.bus.emit(Numbered(n))
            with pytest.raises((TypeError, BusError)):
                await terminal.bus.emit(bad)  # type: ignore[arg-type]
            with pytest.raises((TypeError, BusError)):
                terminal.bus.emit_nowait(bad)  # type: ignore[arg-type]
            assert terminal.statistics().in_flight == 3
            await terminal.drain()
            await terminal.bus.emit(Numbered(3))
            await terminal.drain()
    assert seen == [0, 1, 2, 3]


# -- emits that would wait on themselves ------------------------------------------------------


class Fan(Event):
    n: int


class Reply(Event):
    n: int


async def test_a_handler_emitting_to_its_own_full_mailbox_does_not_deadlock() -> None:
    seen: list[int] = []

    async def fan_out(event: Fan, ctx: MessageContext, bus: EventBus) -> None:
        seen.append(event.n)
        if event.n < 3:
            for i in range(3):
                await bus.emit(Fan(10 * event.n + 10 + i))

    registry = MessageRegistry()
    registry.register(fan_out, mailbox_capacity=1)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(Fan(0))
            await terminal.bus.emit(Fan(1))
            await terminal.drain()
    assert seen[:4] == [0, 10, 11, 12]
    assert sorted(seen) == [0, 1, 10, 11, 12, 20, 21, 22]


async def test_an_emit_to_a_full_mailbox_whose_handler_waits_on_us_does_not_deadlock() -> None:
    log: list[str] = []

    async def b(event: Fan, ctx: MessageContext, bus: EventBus) -> None:
        log.append(f"b:fan{event.n}")
        if event.n < 10:
            await bus.publish(Reply(event.n))  # waits on a, which emits to b

    async def a(event: Reply, ctx: MessageContext, bus: EventBus) -> None:
        for i in range(3):
            await bus.emit(Fan(10 + 10 * event.n + i))

    registry = MessageRegistry()
    registry.register(b, mailbox_capacity=1)
    registry.register(a)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(Fan(0))
            await terminal.bus.emit(Fan(1))  # b's mailbox is full from here on
            await terminal.drain()
    expected = ["b:fan0", "b:fan1", *(f"b:fan{n}" for n in (10, 11, 12, 20, 21, 22))]
    assert sorted(log) == sorted(expected)
    assert log[0] == "b:fan0"


# -- a closed bus, after its routes were cached ----------------------------------------------------


async def test_every_send_raises_bus_closed_for_a_type_routed_before_the_terminal_closed() -> None:
    # the hot paths look up a cached route before asking the dispatcher: closing must still win
    registry = MessageRegistry()
    seen: list[int] = []

    @registry.register
    async def on_numbered(event: Numbered) -> None:
        seen.append(event.n)

    async with BusTerminal(registry) as terminal:
        bus = terminal.bus
        await bus.publish(Numbered(1))
        await bus.emit(Numbered(2))
        bus.emit_nowait(Numbered(3))
        await bus.emit_many([Numbered(4)])
        bus.emit_many_nowait([Numbered(5)])
        await terminal.drain()
    assert seen == [1, 2, 3, 4, 5]
    closed_calls = {
        "publish": lambda: bus.publish(Numbered(6)),
        "emit": lambda: bus.emit(Numbered(6)),
        "emit_many": lambda: bus.emit_many([Numbered(6)]),
    }
    for call in closed_calls.values():
        with pytest.raises(BusClosedError):
            await call()
    with pytest.raises(BusClosedError):
        bus.emit_nowait(Numbered(6))
    with pytest.raises(BusClosedError):
        bus.emit_many_nowait([Numbered(6)])
    assert seen == [1, 2, 3, 4, 5]

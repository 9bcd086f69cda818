"""One handler's failure never reaches another (issue 7, items 1, 2, 6 and 9)."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import sniffio

from bus import (
    BusError,
    BusTerminal,
    DeadLetter,
    Event,
    HandlerCancelledError,
    HandlerRestarted,
    HandlerStoppedError,
    MessageContext,
    MessageRegistry,
)
from supervisor import TreeSnapshot

pytestmark = pytest.mark.anyio

LIMIT = 30


class Ping(Event):
    n: int


class Other(Event):
    n: int


class Boom(Exception):
    pass


async def let_a_foreign_cancellation_escape() -> None:
    """What a handler does when it awaits something another task cancelled."""
    if sniffio.current_async_library() == "asyncio":
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future
    raise asyncio.CancelledError  # on trio only code that raises it itself can


def node(snapshot: TreeSnapshot, name: str) -> TreeSnapshot:
    for child in snapshot.children:
        if child.id == name or child.id.endswith(f".{name}"):
            return child
        try:
            return node(child, name)
        except KeyError:
            continue
    raise KeyError(name)


# -- item 1: a CancelledError that is not ours is an ordinary crash ---------------------------------


async def test_a_handler_taking_the_event_alone_that_lets_a_foreign_cancelled_error_escape_crashes() -> None:
    # such a handler gets a publish's bare event, and an emit's delivery through the same fast path
    seen: list[int] = []

    async def cancels(event: Ping) -> None:
        seen.append(event.n)
        if event.n < 3:
            await let_a_foreign_cancellation_escape()

    registry = MessageRegistry()
    registry.register(cancels, retries=0)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            with pytest.raises(HandlerCancelledError) as caught:
                await terminal.bus.publish(Ping(1))
            assert isinstance(caught.value.__cause__, asyncio.CancelledError)
            await terminal.bus.emit(Ping(2))
            await terminal.drain()
            await terminal.bus.publish(Ping(3))
            stats = terminal.statistics()
    assert seen == [1, 2, 3]
    assert (stats.in_flight, stats.dead_letters) == (0, 1)


async def test_publish_to_a_handler_that_lets_a_foreign_cancelled_error_escape_raises_a_bus_error() -> None:
    siblings: list[int] = []

    async def cancels(event: Ping, ctx: Any) -> None:
        await let_a_foreign_cancellation_escape()

    async def sibling(event: Other, ctx: Any) -> None:
        siblings.append(event.n)

    registry = MessageRegistry()
    registry.register(cancels, sibling)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            with pytest.raises(HandlerCancelledError) as caught:
                await terminal.bus.publish(Ping(1))
            assert isinstance(caught.value, BusError)
            assert isinstance(caught.value.__cause__, asyncio.CancelledError)
            # the handler was restarted; it and its sibling keep working
            with pytest.raises(HandlerCancelledError):
                await terminal.bus.publish(Ping(2))
            await terminal.bus.publish(Other(1))
            await terminal.bus.emit(Other(2))
            await terminal.drain()
            await anyio.sleep(0.5)  # far more than its restart backoff (0.01-0.024 s)
            snapshot = terminal.snapshot()
            assert node(snapshot, "handlers").state == "running"
            assert node(snapshot, "cancels").state == "running"
            assert node(snapshot, "cancels").failed == 2
            assert node(snapshot, "sibling").restarts == 0
    assert siblings == [1, 2]


async def test_an_emitted_message_whose_handler_lets_a_cancelled_error_escape_is_retried_then_dead_lettered() -> None:
    letters: list[DeadLetter] = []
    attempts: list[int] = []

    async def cancels(event: Ping, ctx: MessageContext) -> None:
        attempts.append(ctx.attempt)
        await let_a_foreign_cancellation_escape()

    async def on_dead_letter(letter: DeadLetter, ctx: Any) -> None:
        letters.append(letter)

    registry = MessageRegistry()
    registry.register(cancels, retries=2, retry_backoff=0.0)
    registry.register(on_dead_letter)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(Ping(1))
            await terminal.drain()
            assert terminal.handler_ref(cancels.__qualname__).alive
    assert attempts == [1, 2, 3]
    assert [(d.reason, d.attempts) for d in letters] == [("retries_exhausted", 3)]
    assert "HandlerCancelledError" in letters[0].error


async def test_a_sync_handler_that_raises_cancelled_error_crashes_alone() -> None:
    def cancels(event: Ping, ctx: Any) -> None:
        raise asyncio.CancelledError

    registry = MessageRegistry()
    registry.register(cancels)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            with pytest.raises(HandlerCancelledError):
                await terminal.bus.publish(Ping(1))
            assert node(terminal.snapshot(), "handlers").state == "running"


async def test_publish_to_a_handler_killed_while_it_runs_the_request_raises_a_bus_error() -> None:
    started = anyio.Event()

    async def slow(event: Ping, ctx: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    registry = MessageRegistry()
    registry.register(slow, shutdown_timeout=0.0)
    errors: list[BaseException] = []

    async def publisher(terminal: BusTerminal) -> None:
        try:
            await terminal.bus.publish(Ping(1))
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)

    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal, anyio.create_task_group() as tg:
            tg.start_soon(publisher, terminal)
            await started.wait()
            await terminal.supervisor.supervisor("handlers").terminate_child(
                terminal.handler_ref(slow.__qualname__).name
            )
    assert len(errors) == 1
    assert isinstance(errors[0], HandlerStoppedError), errors


# -- item 2: notices reach only their own subscribers, never the handler they are about ----------


async def test_a_failing_catch_all_handler_never_receives_notices_and_one_bad_event_costs_its_retries_only() -> None:
    received: list[Event] = []

    async def audit(event: Event, ctx: Any) -> None:
        received.append(event)
        raise Boom("audit always fails")

    registry = MessageRegistry()
    registry.register(audit, retry_backoff=0.0)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(Ping(1))
            await terminal.drain()
            await anyio.sleep(0.2)  # room for any notice that would still arrive
            await terminal.drain()
            assert terminal.handler_ref(audit.__qualname__).alive
            assert node(terminal.snapshot(), "audit").failed == 4
    assert received == [Ping(1)] * 4


async def test_two_failing_catch_all_handlers_do_not_feed_each_other() -> None:
    counts = {"a": 0, "b": 0}

    async def catch_all_a(event: Event, ctx: Any) -> None:
        counts["a"] += 1
        raise Boom("a")

    async def catch_all_b(event: Event, ctx: Any) -> None:
        counts["b"] += 1
        raise Boom("b")

    registry = MessageRegistry()
    registry.register(catch_all_a, catch_all_b, retry_backoff=0.0)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(Ping(1))
            await terminal.drain()
            await anyio.sleep(0.2)
            await terminal.drain()
            assert terminal.handler_ref(catch_all_a.__qualname__).alive
            assert terminal.handler_ref(catch_all_b.__qualname__).alive
    assert counts == {"a": 4, "b": 4}


async def test_a_handler_never_receives_the_notices_about_itself() -> None:
    own: list[Event] = []
    observer: list[HandlerRestarted] = []

    async def crashes_once(event: Ping | HandlerRestarted, ctx: MessageContext) -> None:
        own.append(event)
        if isinstance(event, Ping) and ctx.attempt == 1:
            raise Boom("once")

    async def watcher(notice: HandlerRestarted, ctx: Any) -> None:
        observer.append(notice)

    registry = MessageRegistry()
    registry.register(crashes_once, watcher, retry_backoff=0.0)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(Ping(1))
            await terminal.drain()
    assert own == [Ping(1), Ping(1)]
    assert [n.handler.rsplit(".", 1)[-1] for n in observer] == ["crashes_once"]


async def test_handlers_failing_on_each_others_notices_do_not_loop() -> None:
    counts = {"a": 0, "b": 0}

    async def fails_a(event: Ping | HandlerRestarted, ctx: Any) -> None:
        counts["a"] += 1
        raise Boom("a")

    async def fails_b(event: HandlerRestarted, ctx: Any) -> None:
        counts["b"] += 1
        raise Boom("b")

    registry = MessageRegistry()
    registry.register(fails_a, fails_b, retries=0, retry_backoff=0.0)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(Ping(1))
            await terminal.drain()
            await anyio.sleep(0.3)
            await terminal.drain()
            assert terminal.handler_ref(fails_a.__qualname__).alive
            assert terminal.handler_ref(fails_b.__qualname__).alive
    # a crashes on Ping; b crashes on HandlerRestarted(a); a hears nothing about b's crash on a
    # notice (it is logged, not announced), so the chain ends there
    assert counts == {"a": 1, "b": 1}


# -- item 6: notices are never refused by a bound --------------------------------------------------


@pytest.mark.parametrize("capacity", [1, 10_000])
async def test_every_dead_letter_reaches_every_dead_letter_subscriber_whatever_its_mailbox(
    capacity: int,
) -> None:
    small: list[DeadLetter] = []
    large: list[DeadLetter] = []
    gate = anyio.Event()

    async def blocked(event: Ping, ctx: Any) -> None:
        await gate.wait()

    async def small_subscriber(letter: DeadLetter, ctx: Any) -> None:
        small.append(letter)

    async def large_subscriber(letter: DeadLetter, ctx: Any) -> None:
        large.append(letter)

    registry = MessageRegistry()
    registry.register(blocked, mailbox_capacity=1, overflow="drop_new")
    registry.register(small_subscriber, mailbox_capacity=1)
    registry.register(large_subscriber, mailbox_capacity=capacity)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            for n in range(1000):
                terminal.bus.emit_nowait(Ping(n))
            gate.set()
            await terminal.drain()
    # the first message is queued, the other 999 overflow and each is a dead letter
    assert len(small) == 999
    assert len(large) == 999
    assert {d.reason for d in small} == {"mailbox_overflow"}


# -- item 9: a cancelled publish withdraws its queued request --------------------------------------


async def test_a_cancelled_publish_still_queued_never_runs_and_the_running_one_completes() -> None:
    gate = anyio.Event()
    ran: list[int] = []

    async def slow(event: Ping, ctx: Any) -> None:
        if event.n == 1:
            await gate.wait()
        ran.append(event.n)

    registry = MessageRegistry()
    registry.register(slow)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal, anyio.create_task_group() as tg:
            first_done = anyio.Event()

            async def first() -> None:
                with anyio.CancelScope() as scope:
                    scopes.append(scope)
                    await terminal.bus.publish(Ping(1))
                first_done.set()

            scopes: list[anyio.CancelScope] = []
            tg.start_soon(first)
            await anyio.wait_all_tasks_blocked()
            with anyio.move_on_after(0.05):
                await terminal.bus.publish(Ping(2))  # queued behind 1, then given up
            assert terminal.handler_ref(slow.__qualname__).statistics().mailbox_depth == 0
            scopes[0].cancel()  # the running request is not withdrawn: it completes
            gate.set()
            await first_done.wait()
            await terminal.bus.publish(Ping(3))
            await terminal.drain()
    assert ran == [1, 3]


class Unprintable(Exception):
    """An odd exception: its own ``__str__`` and ``__repr__`` raise."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ fails")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ fails")


async def test_an_exception_that_cannot_be_printed_is_an_ordinary_crash_of_its_handler_alone() -> None:
    letters: list[DeadLetter] = []
    others: list[int] = []

    async def unprintable(event: Ping, ctx: MessageContext) -> None:
        raise Unprintable

    async def sibling(event: Ping, ctx: MessageContext) -> None:
        others.append(event.n)

    async def on_dead_letter(letter: DeadLetter, ctx: Any) -> None:
        letters.append(letter)

    registry = MessageRegistry()
    registry.register(unprintable, retries=1, retry_backoff=0.0)
    registry.register(sibling, on_dead_letter)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(Ping(1))
            await terminal.drain()
            with pytest.raises(Unprintable):
                await terminal.bus.publish(Ping(2))
            await terminal.drain()
            assert terminal.handler_ref(unprintable.__qualname__).alive
            handlers = node(terminal.snapshot(), "handlers")
            assert {child.state for child in handlers.children} == {"running"}
    assert others == [1]  # publish stops at the first failing handler, registered before `sibling`
    assert [(d.reason, d.attempts) for d in letters] == [("retries_exhausted", 2)]
    assert letters[0].error.endswith("Unprintable: <str() failed: RuntimeError>")

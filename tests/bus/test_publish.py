"""``publish``: registration order, awaited completion, the first failure raised as itself, restarts
with fresh dependencies, re-entrant publishes without deadlock, causal contexts, sync handlers,
bad input, handler stop notices."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import anyio
import anyio.lowlevel
import pytest

from bus import (
    BusError,
    BusTerminal,
    Event,
    EventBus,
    HandlerRestarted,
    HandlerStopped,
    HandlerStoppedError,
    MessageContext,
    MessageRegistry,
)

pytestmark = pytest.mark.anyio

LIMIT = 20  # seconds: generous bound that turns a deadlock into a failure


class TodoCreated(Event):
    name: str
    content: str


class Ping(Event):
    hops: int


class Pong(Event):
    hops: int


class Third(Event):
    hops: int


class Boom(Exception):
    """A handler's own exception type."""


# -- order and completion -------------------------------------------------------------------


async def test_publish_runs_handlers_in_registration_order_each_awaited_before_the_next() -> None:
    log: list[str] = []

    async def first(event: TodoCreated, ctx: MessageContext) -> None:
        log.append("first:start")
        await anyio.sleep(0.01)
        log.append("first:end")

    async def second(event: TodoCreated, ctx: MessageContext) -> None:
        log.append("second:start")
        await anyio.lowlevel.checkpoint()
        log.append("second:end")

    async def third(event: TodoCreated, ctx: MessageContext) -> None:
        log.append("third")

    registry = MessageRegistry()
    registry.register(third)  # registration order, not name order
    registry.register(first, second)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.publish(TodoCreated("a", "b"))
            # publish returned: every handler completed
            assert log == ["third", "first:start", "first:end", "second:start", "second:end"]


async def test_publish_raises_the_handlers_own_exception_and_stops_there() -> None:
    log: list[str] = []

    async def ok(event: TodoCreated, ctx: MessageContext) -> None:
        log.append("ok")

    async def fails(event: TodoCreated, ctx: MessageContext) -> None:
        log.append("fails")
        if event.name == "x":
            raise Boom(f"cannot handle {event.name}")

    async def later(event: TodoCreated, ctx: MessageContext) -> None:
        log.append("later")

    registry = MessageRegistry()
    registry.register(ok, fails, later)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            with pytest.raises(Boom, match=r"^cannot handle x$") as info:
                await terminal.bus.publish(TodoCreated("x", "y"))
            assert type(info.value) is Boom
            assert log == ["ok", "fails"]
            # the bus keeps working: the restarted actor and `later` get the next event
            log.clear()
            await terminal.bus.publish(TodoCreated("z", "y"))
            assert log == ["ok", "fails", "later"]


# a dependency with an observable lifecycle, provided by a generator
class Resource:
    ids = itertools.count(1)

    def __init__(self) -> None:
        self.id = next(Resource.ids)
        self.closed = False


async def test_publish_failure_restarts_the_actor_with_fresh_dependencies() -> None:
    built: list[Resource] = []
    torn_down: list[int] = []
    used: list[int] = []

    registry = MessageRegistry()

    @registry.factory
    def make_resource() -> Iterator[Resource]:
        resource = Resource()
        built.append(resource)
        yield resource
        resource.closed = True
        torn_down.append(resource.id)

    @registry.register
    async def handler(event: TodoCreated, ctx: MessageContext, resource: Resource) -> None:
        assert not resource.closed
        used.append(resource.id)
        if event.name == "fail":
            raise Boom("fail")

    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.publish(TodoCreated("ok", ""))
            assert len(built) == 1
            assert torn_down == []
            first = built[0].id
            with pytest.raises(Boom):
                await terminal.bus.publish(TodoCreated("fail", ""))
            await terminal.bus.publish(TodoCreated("ok", ""))
            assert torn_down == [first]
            assert built[0].closed
            assert len(built) == 2
            second = built[1].id
            assert second != first
            assert used == [first, first, second]
            assert terminal.handler_ref(handler.__qualname__).statistics().incarnation == 2
    # leaving the terminal tears the last one down too
    assert torn_down == [first, second]


# -- re-entrant publish -----------------------------------------------------------------------


async def test_publish_back_to_a_handler_busy_up_the_chain_does_not_deadlock() -> None:
    # A handles Ping and Third; A publishes Pong, whose handler B publishes Third, handled by A
    log: list[str] = []

    async def a(event: Ping | Third, ctx: MessageContext, bus: EventBus) -> None:
        if isinstance(event, Ping):
            log.append("a:ping")
            await bus.publish(Pong(event.hops + 1))
            log.append("a:ping-done")
        else:
            log.append(f"a:third:{event.hops}")

    async def b(event: Pong, ctx: MessageContext, bus: EventBus) -> None:
        log.append("b:pong")
        await bus.publish(Third(event.hops + 1))
        log.append("b:pong-done")

    registry = MessageRegistry()
    registry.register(a, b)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.publish(Ping(0))
    assert log == ["a:ping", "b:pong", "a:third:2", "b:pong-done", "a:ping-done"]


async def test_self_publish_does_not_deadlock() -> None:
    seen: list[int] = []

    async def countdown(event: Ping, ctx: MessageContext, bus: EventBus) -> None:
        seen.append(event.hops)
        if event.hops > 0:
            await bus.publish(Ping(event.hops - 1))

    registry = MessageRegistry()
    registry.register(countdown)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.publish(Ping(3))
    assert seen == [3, 2, 1, 0]


async def test_reentrant_publish_failure_reaches_the_outer_publisher() -> None:
    async def a(event: Ping | Third, ctx: MessageContext, bus: EventBus) -> None:
        if isinstance(event, Ping):
            await bus.publish(Pong(1))
        else:
            raise Boom("third failed")

    async def b(event: Pong, ctx: MessageContext, bus: EventBus) -> None:
        await bus.publish(Third(2))

    registry = MessageRegistry()
    registry.register(a, b)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            with pytest.raises(Boom, match="third failed"):
                await terminal.bus.publish(Ping(0))
            # the bus still works afterwards
            with pytest.raises(Boom, match="third failed"):
                await terminal.bus.publish(Ping(0))


# -- causality --------------------------------------------------------------------------------


async def test_nested_events_carry_the_outer_correlation_and_causation() -> None:
    contexts: dict[str, MessageContext] = {}

    async def outer(event: Ping, ctx: MessageContext, bus: EventBus) -> None:
        contexts["ping"] = ctx
        assert bus.context == ctx
        await bus.publish(Pong(1))
        await bus.emit(Third(2))

    async def inner(event: Pong, ctx: MessageContext, bus: EventBus) -> None:
        contexts["pong"] = ctx

    async def innermost(event: Third, ctx: MessageContext) -> None:
        contexts["third"] = ctx

    registry = MessageRegistry()
    registry.register(outer, inner, innermost)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.publish(Ping(0), headers={"tenant": "t1"})
            await terminal.drain()
    root = contexts["ping"]
    assert root.causation_id is None
    assert root.correlation_id == root.message_id
    assert root.headers == {"tenant": "t1"}
    for name in ("pong", "third"):
        nested = contexts[name]
        assert nested.correlation_id == root.correlation_id
        assert nested.causation_id == root.message_id
        assert nested.message_id != root.message_id
        assert nested.headers == {"tenant": "t1"}


# -- sync handlers ----------------------------------------------------------------------------


async def test_sync_handler_runs_in_a_worker_thread_under_publish() -> None:
    threads: list[int] = []

    def sync_handler(event: TodoCreated, ctx: MessageContext) -> None:
        threads.append(threading.get_ident())

    registry = MessageRegistry()
    registry.register(sync_handler)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            loop_thread = threading.get_ident()
            await terminal.bus.publish(TodoCreated("a", "b"))
    assert len(threads) == 1
    assert threads[0] != loop_thread


async def test_sync_handler_exception_is_raised_by_publish() -> None:
    def sync_handler(event: TodoCreated, ctx: MessageContext) -> None:
        raise Boom("sync boom")

    registry = MessageRegistry()
    registry.register(sync_handler)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            with pytest.raises(Boom, match="sync boom"):
                await terminal.bus.publish(TodoCreated("a", "b"))


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [42, TodoCreated, "x", None], ids=["int", "class", "str", "none"])
async def test_publish_rejects_a_non_event_and_disturbs_nothing_queued(bad: object) -> None:
    seen: list[str] = []

    async def handler(event: TodoCreated, ctx: MessageContext) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(event.name)

    registry = MessageRegistry()
    registry.register(handler)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            for i in range(5):
                await terminal.bus.emit(TodoCreated(str(i), ""))
            with pytest.raises((TypeError, BusError)):
                await terminal.bus.publish(bad)  # type: ignore[arg-type]
            await terminal.drain()
            assert seen == ["0", "1", "2", "3", "4"]
            await terminal.bus.publish(TodoCreated("after", ""))
            assert seen[-1] == "after"


# -- notices and stopped handlers -------------------------------------------------------------


async def test_handler_restarted_notice_after_a_crash() -> None:
    notices: list[HandlerRestarted] = []
    restarted = anyio.Event()

    async def crashes(event: TodoCreated, ctx: MessageContext) -> None:
        raise Boom("crash once")

    async def on_restart(notice: HandlerRestarted, ctx: MessageContext) -> None:
        notices.append(notice)
        restarted.set()

    registry = MessageRegistry()
    registry.register(crashes, on_restart)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            with pytest.raises(Boom):
                await terminal.bus.publish(TodoCreated("a", "b"))
            await restarted.wait()
    assert len(notices) == 1
    assert notices[0].handler == f"{__name__}.{crashes.__qualname__}"
    assert notices[0].restarts == 1
    assert "Boom" in notices[0].error
    assert "crash once" in notices[0].error


async def test_handler_over_max_restarts_is_stopped_and_publish_raises_handler_stopped() -> None:
    stopped: list[HandlerStopped] = []
    stopped_event = anyio.Event()
    others: list[str] = []

    async def fragile(event: TodoCreated, ctx: MessageContext) -> None:
        raise Boom("always")

    async def sturdy(event: Ping, ctx: MessageContext) -> None:
        others.append(f"ping{event.hops}")

    async def on_stopped(notice: HandlerStopped, ctx: MessageContext) -> None:
        stopped.append(notice)
        stopped_event.set()

    registry = MessageRegistry()
    registry.register(fragile, retries=0, max_restarts=1, restart_period=60.0)
    registry.register(sturdy, on_stopped)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            for _ in range(2):
                with pytest.raises(Boom):
                    await terminal.bus.publish(TodoCreated("a", "b"))
            await stopped_event.wait()
            assert not terminal.handler_ref(fragile.__qualname__).alive
            with pytest.raises(HandlerStoppedError):
                await terminal.bus.publish(TodoCreated("a", "b"))
            await terminal.bus.publish(Ping(1))
            await terminal.bus.emit(Ping(2))
            await terminal.drain()
            assert others == ["ping1", "ping2"]
    assert len(stopped) == 1
    assert stopped[0].handler == f"{__name__}.{fragile.__qualname__}"
    assert "Boom" in stopped[0].reason


# -- handlers that take the event alone (sent the bare event) -----------------------------------


class Leaf(Event):
    n: int


async def test_publish_to_handlers_that_take_the_event_alone_keeps_order_errors_and_restarts() -> None:
    log: list[str] = []

    async def first(event: Leaf) -> None:
        log.append(f"first:{event.n}")

    async def fails(event: Leaf) -> None:
        log.append(f"fails:{event.n}")
        if event.n == 1:
            raise Boom("one")

    async def last(event: Leaf) -> None:
        log.append(f"last:{event.n}")

    registry = MessageRegistry()
    registry.register(first, fails, last)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            with pytest.raises(Boom, match="^one$") as info:
                await terminal.bus.publish(Leaf(1))
            assert type(info.value) is Boom
            await terminal.bus.publish(Leaf(2), headers={"k": "v"})
            with pytest.raises(TypeError):
                await terminal.bus.publish(Leaf(3), headers={"k": 1})  # type: ignore[dict-item]
            stats = terminal.statistics()
    assert log == ["first:1", "fails:1", "first:2", "fails:2", "last:2"]
    assert stats.published == 2


async def test_a_handler_taking_the_context_shares_a_route_with_bare_ones_and_gets_its_context() -> None:
    contexts: list[MessageContext] = []
    seen: list[int] = []

    async def bare(event: Leaf) -> None:
        seen.append(event.n)

    async def with_context(event: Leaf, ctx: MessageContext) -> None:
        contexts.append(ctx)

    registry = MessageRegistry()
    registry.register(bare, with_context)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.publish(Leaf(1), headers={"trace": "t"})
            await terminal.bus.publish(Leaf(2))
    assert seen == [1, 2]
    assert [ctx.headers for ctx in contexts] == [{"trace": "t"}, {}]
    assert contexts[0].message_id != contexts[1].message_id


async def test_a_nested_publish_sends_bare_handlers_the_event_and_the_others_its_context() -> None:
    log: list[str] = []

    async def outer(event: Ping, ctx: MessageContext, bus: EventBus) -> None:
        log.append("outer")
        await bus.publish(Leaf(event.hops))
        log.append("outer-done")

    async def leaf(event: Leaf) -> None:
        log.append(f"leaf:{event.n}")
        if event.n < 0:
            raise Boom("negative")

    async def looping(event: Leaf | Third) -> None:
        log.append(f"looping:{type(event).__name__}")

    async def audit(event: Leaf, ctx: MessageContext) -> None:
        log.append(f"audit:{ctx.causation_id is not None}")

    registry = MessageRegistry()
    registry.register(outer, leaf, audit, looping)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.publish(Ping(1))
            with pytest.raises(Boom, match="negative"):
                await terminal.bus.publish(Ping(-1))
    assert log == [
        "outer", "leaf:1", "audit:True", "looping:Leaf", "outer-done", "outer", "leaf:-1",
    ]


async def test_a_publish_gives_each_handler_of_a_mixed_route_its_own_form_in_registration_order() -> None:
    log: list[str] = []

    def bare(name: str) -> object:
        async def handler(event: Leaf) -> None:
            log.append(f"{name}:{event.n}")

        handler.__qualname__ = handler.__name__ = name
        return handler

    def with_context(name: str) -> object:
        async def handler(event: Leaf, ctx: MessageContext) -> None:
            log.append(f"{name}:{event.n}:{ctx.headers.get('k', '-')}")

        handler.__qualname__ = handler.__name__ = name
        return handler

    registry = MessageRegistry()
    for make, name in [(with_context, "c1"), (bare, "b1"), (bare, "b2"), (with_context, "c2"), (bare, "b3")]:
        registry.register(make(name))  # type: ignore[call-overload]
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.publish(Leaf(1), headers={"k": "v"})
            await terminal.bus.publish(Leaf(2))
    assert log == [
        "c1:1:v", "b1:1", "b2:1", "c2:1:v", "b3:1",
        "c1:2:-", "b1:2", "b2:2", "c2:2:-", "b3:2",
    ]

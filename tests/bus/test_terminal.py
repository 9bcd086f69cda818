"""BusTerminal: start-up errors raised as themselves, the lifecycle of the running terminal, its
introspection (handler refs, snapshot, statistics)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from bus import (
    BusClosedError,
    BusError,
    BusTerminal,
    Event,
    EventBus,
    MessageContext,
    MessageRegistry,
    RegistrationError,
    SinkError,
)
from bus.sinks import JSONLinesSink, SQLiteSink

pytestmark = pytest.mark.anyio

LIMIT = 20


class TodoCreated(Event):
    name: str
    content: str


class Repo:
    """A dependency nobody provides, or whose provider fails."""


class Cache:
    """A dependency whose async generator provider fails after a first good incarnation."""


class ProviderFailed(Exception):
    pass


# -- start-up errors --------------------------------------------------------------------------


async def test_unresolvable_dependency_is_raised_from_aenter_as_itself() -> None:
    async def needs_repo(event: TodoCreated, ctx: MessageContext, repo: Repo) -> None: ...

    registry = MessageRegistry()
    registry.register(needs_repo)
    terminal = BusTerminal(registry)
    with anyio.fail_after(LIMIT), pytest.raises(RegistrationError) as info:
        await terminal.__aenter__()
    assert type(info.value) is RegistrationError
    message = str(info.value)
    assert "needs_repo" in message
    assert "repo" in message
    assert "Repo" in message
    with pytest.raises(BusClosedError):
        _ = terminal.bus


def failing_function() -> Repo:
    raise ProviderFailed("database is down")


async def failing_coroutine() -> Repo:
    await anyio.lowlevel.checkpoint()
    raise ProviderFailed("database is down")


async def failing_async_generator() -> AsyncIterator[Repo]:
    await anyio.lowlevel.checkpoint()
    raise ProviderFailed("database is down")
    yield Repo()  # pragma: no cover


@pytest.mark.parametrize(
    "provider",
    [failing_function, failing_coroutine, failing_async_generator],
    ids=["function", "coroutine", "async-generator"],
)
async def test_provider_that_raises_is_raised_from_aenter_as_itself(provider: object) -> None:
    teardowns: list[str] = []
    registry = MessageRegistry()
    registry.factory(provider)  # type: ignore[type-var]

    @registry.factory
    async def make_cache() -> AsyncIterator[Cache]:
        yield Cache()
        teardowns.append("cache")

    @registry.register
    async def fine(event: TodoCreated, ctx: MessageContext, cache: Cache) -> None: ...

    @registry.register
    async def needs_repo(event: TodoCreated, ctx: MessageContext, repo: Repo) -> None: ...

    with anyio.fail_after(LIMIT), pytest.raises(ProviderFailed, match="^database is down$") as info:
        async with BusTerminal(registry):
            pytest.fail("the terminal must not start")
    assert type(info.value) is ProviderFailed
    # what was already started was stopped again, its resources torn down
    assert teardowns == ["cache"]


@pytest.mark.parametrize(
    "make_sink",
    [
        pytest.param(lambda: SQLiteSink("/nonexistent/dir/x.db"), id="sqlite"),
        pytest.param(lambda: JSONLinesSink("/nonexistent/dir/x.jsonl"), id="jsonl"),
    ],
)
async def test_unwritable_sink_path_is_raised_from_aenter_as_sink_error(make_sink) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(LIMIT), pytest.raises(SinkError) as info:
        async with BusTerminal(sinks=[make_sink()]):
            pytest.fail("the terminal must not start")
    assert type(info.value) is SinkError
    assert "/nonexistent/dir/x" in str(info.value)


async def test_a_failed_start_leaves_the_terminal_startable_again(tmp_path: Path) -> None:
    seen: list[str] = []

    async def handler(event: TodoCreated, ctx: MessageContext) -> None:
        seen.append(event.name)

    registry = MessageRegistry()
    registry.register(handler)
    bad = BusTerminal(registry, sinks=[SQLiteSink("/nonexistent/dir/x.db")])
    with anyio.fail_after(LIMIT):
        with pytest.raises(SinkError):
            await bad.__aenter__()
        async with BusTerminal(registry, sinks=[SQLiteSink(tmp_path / "ok.db")]) as terminal:
            await terminal.bus.publish(TodoCreated("a", ""))
    assert seen == ["a"]


async def test_errors_inside_the_block_propagate_as_themselves() -> None:
    class Oops(Exception):
        pass

    with anyio.fail_after(LIMIT), pytest.raises(Oops):
        async with BusTerminal(MessageRegistry()):
            raise Oops


# -- lifecycle --------------------------------------------------------------------------------


async def test_the_bus_is_closed_outside_the_block() -> None:
    registry = MessageRegistry()
    terminal = BusTerminal(registry)
    with pytest.raises(BusClosedError):
        _ = terminal.bus
    with anyio.fail_after(LIMIT):
        async with terminal:
            bus = terminal.bus
            with pytest.raises(BusError):
                await terminal.__aenter__()  # already running
        with pytest.raises(BusClosedError):
            await bus.publish(TodoCreated("late", ""))
        with pytest.raises(BusClosedError):
            await bus.emit(TodoCreated("late", ""))
        with pytest.raises(BusClosedError):
            bus.emit_nowait(TodoCreated("late", ""))
        with pytest.raises(BusClosedError):
            _ = terminal.bus
        # the statistics outlive the block
        assert terminal.statistics().published == 0


async def test_bus_terminal_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError):
        BusTerminal(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        BusTerminal(sinks=[object()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="shutdown_timeout"):
        BusTerminal(shutdown_timeout=-1)


async def test_several_registries_in_order() -> None:
    log: list[str] = []

    async def one(event: TodoCreated, ctx: MessageContext) -> None:
        log.append("one")

    async def two(event: TodoCreated, ctx: MessageContext) -> None:
        log.append("two")

    first, second = MessageRegistry(), MessageRegistry()
    second.register(two)
    first.register(one)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(first, second) as terminal:
            await terminal.bus.publish(TodoCreated("a", ""))
    assert log == ["one", "two"]


# -- introspection ----------------------------------------------------------------------------


async def test_handler_ref_snapshot_and_statistics() -> None:
    async def counted(event: TodoCreated, ctx: MessageContext, bus: EventBus) -> None:
        if event.name == "crash":
            raise ValueError("crash")

    registry = MessageRegistry()
    registry.register(counted, retries=0)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            ref = terminal.handler_ref(counted.__qualname__)
            assert ref is terminal.handler_ref(f"{__name__}.{counted.__qualname__}")
            with pytest.raises(KeyError):
                terminal.handler_ref("nobody")
            await terminal.bus.publish(TodoCreated("a", ""))
            await terminal.bus.emit(TodoCreated("b", ""))
            await terminal.bus.emit(TodoCreated("crash", ""))
            await terminal.drain()
            await terminal.bus.publish(TodoCreated("c", ""))  # served by the next incarnation
            stats = terminal.statistics()
            assert stats.published == 2
            # the bus's own notices (DeadLetter, HandlerRestarted) are emitted and, with no
            # subscriber, unrouted: what was emitted and routed is ours
            assert stats.emitted - stats.unrouted == 2
            assert stats.in_flight == 0
            assert stats.dead_letters == 1
            actor = ref.statistics()
            assert actor.processed == 3
            assert actor.failed == 1
            assert actor.incarnation == 2
            assert actor.alive
            snapshot = terminal.snapshot()
            assert "handlers" in repr(snapshot)


async def test_a_cancelled_exit_still_closes_the_bus() -> None:
    started = anyio.Event()

    async def stuck(event: TodoCreated, ctx: MessageContext) -> None:
        started.set()
        await anyio.sleep(1000)

    registry = MessageRegistry()
    registry.register(stuck)
    with anyio.fail_after(LIMIT):
        with anyio.CancelScope() as scope:
            async with BusTerminal(registry) as terminal:
                bus = terminal.bus
                await bus.emit(TodoCreated("a", ""))
                await bus.emit(TodoCreated("b", ""))
                await started.wait()
                scope.cancel()  # the exit's drain is cancelled
        assert scope.cancelled_caught
        with pytest.raises(BusClosedError):
            await bus.emit(TodoCreated("late", ""))
        with pytest.raises(BusClosedError):
            await bus.publish(TodoCreated("late", ""))
        # what was queued was dead-lettered, not left in flight
        stats = terminal.statistics()
        assert stats.in_flight == 0
        assert stats.dead_letters == 2


async def test_a_terminal_entered_by_two_tasks_at_once_runs_once_and_refuses_the_other(tmp_path: Path) -> None:
    seen: list[str] = []

    async def listen(event: TodoCreated) -> None:
        seen.append(event.name)

    registry = MessageRegistry()
    registry.register(listen)
    # a sink makes the start await (its file opens in a thread), so the two starts overlap
    terminal = BusTerminal(registry, sinks=[SQLiteSink(tmp_path / "e.db")])
    outcomes: dict[str, str] = {}

    async def user(name: str) -> None:
        try:
            async with terminal:
                await anyio.sleep(0.1)
                await terminal.bus.publish(TodoCreated(name, ""))
            outcomes[name] = "ran"
        except BusError as exc:
            outcomes[name] = "refused" if "already running" in str(exc) else repr(exc)

    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(user, "a")
            tg.start_soon(user, "b")
        assert sorted(outcomes.values()) == ["ran", "refused"]
        assert len(seen) == 1
        # and it can run again afterwards
        async with terminal:
            await terminal.bus.publish(TodoCreated("again", ""))
    assert seen[-1] == "again"


async def test_a_start_error_raised_from_aenter_keeps_its_own_cause_and_context() -> None:
    registry = MessageRegistry()

    @registry.factory
    def make_repo() -> Repo:
        try:
            raise KeyError("the driver's own error")
        except KeyError as exc:
            raise ProviderFailed("database is down") from exc

    @registry.factory
    def make_cache() -> Cache:
        try:
            raise OSError("first attempt")
        except OSError:
            raise ProviderFailed("cache is down") from None

    @registry.register
    async def needs_repo(event: TodoCreated, ctx: MessageContext, repo: Repo) -> None: ...

    with anyio.fail_after(LIMIT), pytest.raises(ProviderFailed, match="^database is down$") as info:
        async with BusTerminal(registry):
            pytest.fail("the terminal must not start")
    # the bus used to raise it "from None", wiping the provider's own chain
    assert isinstance(info.value.__cause__, KeyError)

    registry = MessageRegistry()
    registry.factory(make_cache)

    @registry.register
    async def needs_cache(event: TodoCreated, ctx: MessageContext, cache: Cache) -> None: ...

    with anyio.fail_after(LIMIT), pytest.raises(ProviderFailed, match="^cache is down$") as info:
        async with BusTerminal(registry):
            pytest.fail("the terminal must not start")
    assert info.value.__cause__ is None
    assert isinstance(info.value.__context__, OSError)  # kept, though not shown (from None)

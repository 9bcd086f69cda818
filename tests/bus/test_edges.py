"""Edges a new user hits: sync handlers that emit, BaseExceptions, threads past their shutdown
timeout, drain around a handler's last restart, a class passed for an event, the tree after exit."""

from __future__ import annotations

import threading

import anyio
import pytest

from bus import BusTerminal, Event, EventBus, HandlerRestarted, MessageRegistry, RegistrationError

pytestmark = pytest.mark.anyio


class Ordered(Event):
    n: int


class Shipped(Event):
    n: int


class Halt(BaseException):
    """A BaseException that is not an Exception (like SystemExit)."""


async def test_emit_nowait_from_a_sync_handler_is_delivered_while_the_thread_still_runs() -> None:
    shipped = threading.Event()

    def order(event: Ordered, ctx: object, bus: EventBus) -> None:
        bus.emit_nowait(Shipped(event.n))
        # the emitted event must be handled now, not once this thread returns
        assert shipped.wait(timeout=30), "the emit from the worker thread was not delivered"

    async def ship(event: Shipped) -> None:
        shipped.set()

    registry = MessageRegistry()
    registry.register(order, ship)
    async with BusTerminal(registry) as terminal:
        await terminal.bus.publish(Ordered(1))
        await terminal.drain()
    assert shipped.is_set()


async def test_a_base_exception_raised_in_the_block_leaves_it_as_itself() -> None:
    with pytest.raises(Halt, match="stop here"):
        async with BusTerminal(MessageRegistry()):
            raise Halt("stop here")


async def test_a_base_exception_from_a_handler_reaches_the_publisher_and_leaves_the_block_as_itself() -> None:
    async def halt(event: Ordered) -> None:
        raise Halt(f"halt at {event.n}")

    registry = MessageRegistry()
    registry.register(halt)
    reached: list[str] = []
    with pytest.raises(Halt, match="halt at 1"):
        async with BusTerminal(registry) as terminal:
            try:
                await terminal.bus.publish(Ordered(1))
            except Halt as exc:
                reached.append(str(exc))
                raise
    assert reached == ["halt at 1"]


async def test_a_sync_handler_past_its_shutdown_timeout_is_abandoned_not_waited_for() -> None:
    started = threading.Event()
    release = threading.Event()
    finished = threading.Event()

    def stuck(event: Ordered) -> None:
        started.set()
        release.wait(timeout=60)
        finished.set()

    registry = MessageRegistry()
    registry.register(stuck, shutdown_timeout=0.1)
    try:
        async with BusTerminal(registry, shutdown_timeout=0.1) as terminal:
            terminal.bus.emit_nowait(Ordered(1))
            await anyio.to_thread.run_sync(started.wait, 30)
            statistics_before_exit = terminal.statistics()
        # the terminal stopped while the thread was still blocked: it was abandoned
        assert not finished.is_set()
        assert statistics_before_exit.in_flight == 1
        assert terminal.statistics().dead_letters == 1
    finally:
        release.set()


async def test_drain_waits_for_the_restart_that_follows_a_last_failed_attempt() -> None:
    restarts: list[HandlerRestarted] = []

    async def always_fails(event: Ordered) -> None:
        raise ValueError(f"no {event.n}")

    async def on_restart(notice: HandlerRestarted) -> None:
        restarts.append(notice)

    registry = MessageRegistry()
    registry.register(always_fails, retries=1, retry_backoff=0.001, max_restarts=5)
    registry.register(on_restart)
    async with BusTerminal(registry) as terminal:
        terminal.bus.emit_nowait(Ordered(1))
        await terminal.drain()
        # two attempts, two crashes, two restarts: all announced before drain() returned
        assert [notice.restarts for notice in restarts] == [1, 2]


async def test_publishing_an_event_class_instead_of_an_instance_says_so() -> None:
    async with BusTerminal(MessageRegistry()) as terminal:
        with pytest.raises(TypeError, match=r"got the class Ordered itself: pass an instance, Ordered\(\.\.\.\)"):
            await terminal.bus.publish(Ordered)  # type: ignore[arg-type]


async def test_the_snapshot_after_exit_shows_the_stopped_tree() -> None:
    async def noop(event: Ordered) -> None: ...

    registry = MessageRegistry()
    registry.register(noop)
    terminal = BusTerminal(registry)
    async with terminal:
        pass
    tree = terminal.snapshot()
    assert tree.state == "stopped"
    assert {node.state for node in tree.walk()[1:]} == {"stopped"}
    assert any(node.id.endswith("noop") for node in tree.walk())


async def test_registering_while_a_terminal_runs_is_refused_and_allowed_again_after() -> None:
    async def first(event: Ordered) -> None: ...

    async def late(event: Ordered) -> None: ...

    registry = MessageRegistry()
    registry.register(first)
    async with BusTerminal(registry):
        with pytest.raises(RegistrationError, match="running BusTerminal"):
            registry.register(late)
    registry.register(late)
    assert [h.spec.qualname.rsplit(".", 1)[-1] for h in registry.handlers] == ["first", "late"]

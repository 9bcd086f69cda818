"""Threads: sync handlers have their own worker pool, and the bus refuses foreign threads and loops
(issue 7, items 7 and 8)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest

from bus import BusError, BusTerminal, Event, EventBus, MessageRegistry
from bus.sinks import JSONLinesSink
from tests.supervisor.test_idle_actors import call_outside_any_task

pytestmark = pytest.mark.anyio


class Ordered(Event):
    n: int


def sinking_handler(index: int) -> Callable[..., None]:
    def handler(event: Ordered, ctx: Any, bus: EventBus) -> None:
        anyio.from_thread.run(bus.sink, event)

    handler.__qualname__ = handler.__name__ = f"sinking_{index}"
    return handler


async def test_many_busy_sync_handlers_that_sink_never_starve_the_sink(tmp_path: Path) -> None:
    registry = MessageRegistry()
    registry.register(*(sinking_handler(i) for i in range(45)))
    with anyio.fail_after(30):
        async with BusTerminal(registry, sinks=[JSONLinesSink(tmp_path / "events.jsonl")]) as terminal:
            await terminal.bus.emit(Ordered(1))
            await terminal.drain()
            assert terminal.statistics().sunk == 45


async def test_sync_handler_threads_bounds_how_many_sync_handlers_run_at_once() -> None:
    lock = threading.Lock()
    release = threading.Event()
    state = {"active": 0, "most": 0}

    def make(index: int) -> Callable[..., None]:
        def handler(event: Ordered, ctx: Any) -> None:
            with lock:
                state["active"] += 1
                state["most"] = max(state["most"], state["active"])
            release.wait(timeout=30)
            with lock:
                state["active"] -= 1

        handler.__qualname__ = handler.__name__ = f"blocking_{index}"
        return handler

    registry = MessageRegistry()
    registry.register(*(make(i) for i in range(6)))
    with anyio.fail_after(30):
        async with BusTerminal(registry, sync_handler_threads=2) as terminal:
            await terminal.bus.emit(Ordered(1))
            while state["active"] < 2:  # noqa: ASYNC110 - set by worker threads
                await anyio.sleep(0.01)
            await anyio.sleep(0.2)  # time for a third to start, were it allowed to
            assert state["most"] == 2
            release.set()
            await terminal.drain()
    assert state["most"] == 2


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (2.5, TypeError), (True, TypeError)])
def test_sync_handler_threads_must_be_a_positive_int(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="sync_handler_threads"):
        BusTerminal(MessageRegistry(), sync_handler_threads=value)


def in_own_loop(make: Callable[[], Coroutine[Any, Any, None]]) -> BaseException | None:
    """Run ``make()`` in a fresh asyncio loop in this (worker) thread; return what it raised."""
    try:
        asyncio.run(make())
    except BaseException as exc:  # noqa: BLE001 - returned for the assertions
        return exc
    return None


async def discard(call: Awaitable[object]) -> None:
    await call


async def test_every_bus_method_called_from_another_event_loop_raises_bus_error(tmp_path: Path) -> None:
    handled: list[int] = []

    async def handler(event: Ordered, ctx: Any) -> None:
        handled.append(event.n)

    async def nowait(bus: EventBus) -> None:
        bus.emit_nowait(Ordered(4))

    registry = MessageRegistry()
    registry.register(handler)
    async with BusTerminal(registry, sinks=[JSONLinesSink(tmp_path / "e.jsonl")]) as terminal:
        bus = terminal.bus
        calls: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "publish": lambda: bus.publish(Ordered(1)),
            "emit": lambda: bus.emit(Ordered(2)),
            "sink": lambda: bus.sink(Ordered(3)),
            "emit_nowait": lambda: nowait(bus),
            "sink_many": lambda: discard(bus.sink_many([Ordered(7)])),
            "drain": terminal.drain,
        }
        for method, make in calls.items():
            error = await anyio.to_thread.run_sync(in_own_loop, make)
            assert isinstance(error, BusError), (method, error)
            assert "from_thread" in str(error), (method, error)
        # nothing was queued or corrupted: the bus works as before
        await bus.publish(Ordered(5))
        await bus.emit(Ordered(6))
        await terminal.drain()
        assert terminal.statistics().sunk == 0
    assert handled == [5, 6]


async def test_emit_nowait_from_a_thread_the_bus_does_not_know_raises_bus_error() -> None:
    registry = MessageRegistry()
    errors: list[BaseException] = []
    async with BusTerminal(registry) as terminal:

        def foreign() -> None:
            try:
                terminal.bus.emit_nowait(Ordered(1))
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                errors.append(exc)

        thread = threading.Thread(target=foreign)
        thread.start()
        await anyio.to_thread.run_sync(thread.join)
    assert len(errors) == 1
    assert isinstance(errors[0], BusError)


async def test_emit_nowait_from_an_event_loop_callback_outside_any_task_is_delivered() -> None:
    """A signal handler (``loop.add_signal_handler``), a ``call_soon`` callback or a protocol's
    callback runs in the loop's thread but in no task. An emit from there to an idle handler used
    to fail half-way on asyncio: counted as in flight but never queued, so drain() never returned."""
    handled: list[int] = []
    errors: list[BaseException] = []

    async def handler(event: Ordered) -> None:
        handled.append(event.n)

    registry = MessageRegistry()
    registry.register(handler)
    with anyio.fail_after(30):
        async with BusTerminal(registry) as terminal:

            def emit(n: int) -> None:
                try:
                    terminal.bus.emit_nowait(Ordered(n))
                except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                    errors.append(exc)

            call_outside_any_task(emit, 1)
            with anyio.fail_after(10):
                while not (handled or errors):  # noqa: ASYNC110 - nothing to wait on but the list
                    await anyio.sleep(0.001)
            await terminal.drain()
            assert errors == []
            assert handled == [1]
            assert terminal.statistics().in_flight == 0

"""Nothing fails silently: the bus logs what it swallows (issue 7, item 10)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from actors import Actor
from bus import BusTerminal, DeadLetter, Event, MessageContext, MessageRegistry
from supervisor import ChildSpec, Intensity, SupervisorSpec

pytestmark = pytest.mark.anyio


class Job(Event):
    n: int


class Boom(Exception):
    pass


class Connection:
    pass


def records(caplog: pytest.LogCaptureFixture, logger: str, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno == level]


def test_the_bus_logger_has_a_null_handler_and_no_other() -> None:
    handlers = logging.getLogger("bus").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
    assert logging.getLogger("bus.handlers").parent is logging.getLogger("bus")


async def test_a_restart_is_logged_at_info_with_the_handler_name(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bus")

    async def once(job: Job, ctx: MessageContext) -> None:
        if ctx.attempt == 1:
            raise Boom("first attempt fails")

    registry = MessageRegistry()
    registry.register(once, retry_backoff=0.0)
    async with BusTerminal(registry) as terminal:
        await terminal.bus.emit(Job(1))
        await terminal.drain()
    (record,) = records(caplog, "bus.handlers", logging.INFO)
    assert record.handler.endswith("once")  # type: ignore[attr-defined]
    assert "first attempt fails" in record.getMessage()


@pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mockclock")],
)
async def test_a_handler_stopped_for_good_is_logged_at_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bus")

    async def broken(job: Job, ctx: Any) -> None:
        raise Boom("always")

    registry = MessageRegistry()
    registry.register(broken, retries=0, max_restarts=1)
    async with BusTerminal(registry) as terminal:
        for n in range(3):
            await terminal.bus.emit(Job(n))
        await terminal.drain()
    (record,) = records(caplog, "bus.handlers", logging.ERROR)
    assert "stopped for good" in record.getMessage()
    assert "Boom: always" in record.getMessage()
    assert record.handler.endswith("broken")  # type: ignore[attr-defined]


async def test_a_provider_teardown_error_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    def connection() -> Iterator[Connection]:
        yield Connection()
        raise OSError("cannot close the connection")

    async def use(job: Job, ctx: Any, conn: Connection) -> None:
        pass

    registry = MessageRegistry()
    registry.factory(connection)
    registry.register(use)
    async with BusTerminal(registry) as terminal:
        await terminal.bus.publish(Job(1))
    (record,) = records(caplog, "bus.handlers", logging.ERROR)
    assert "teardown failed" in record.getMessage()
    assert record.exc_info is not None
    assert "cannot close the connection" in str(record.exc_info[1])


async def test_a_dead_letter_that_cannot_become_a_notice_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def failing_subscriber(letter: DeadLetter, ctx: Any) -> None:
        raise Boom("cannot take dead letters")

    async def poison(job: Job, ctx: Any) -> None:
        raise Boom("poison")

    registry = MessageRegistry()
    registry.register(failing_subscriber, poison, retries=0, retry_backoff=0.0)
    async with BusTerminal(registry) as terminal:
        await terminal.bus.emit(Job(1))
        await terminal.drain()
        await anyio.sleep(0.1)
        await terminal.drain()
    (record,) = records(caplog, "bus.notices", logging.WARNING)
    assert record.handler.endswith("failing_subscriber")  # type: ignore[attr-defined]
    assert record.attempt == 1  # type: ignore[attr-defined]
    assert isinstance(record.message_id, str)  # type: ignore[attr-defined]
    assert "cannot take dead letters" in record.getMessage()


async def test_an_abandoned_sync_handler_thread_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    started = threading.Event()
    release = threading.Event()

    def stuck(job: Job) -> None:
        started.set()
        release.wait(timeout=60)

    registry = MessageRegistry()
    registry.register(stuck, shutdown_timeout=0.1)
    try:
        async with BusTerminal(registry, shutdown_timeout=0.1) as terminal:
            terminal.bus.emit_nowait(Job(1))
            await anyio.to_thread.run_sync(started.wait, 30)
    finally:
        release.set()
    (record,) = records(caplog, "bus.handlers", logging.WARNING)
    assert "abandoned" in record.getMessage()
    assert record.handler.endswith("stuck")  # type: ignore[attr-defined]


class Fragile(Actor):
    async def receive(self, message: Any) -> None:
        raise RuntimeError("fragile")


async def test_a_supervisor_that_gives_up_is_logged_at_error(caplog: pytest.LogCaptureFixture) -> None:
    workers = ChildSpec("workers", SupervisorSpec([ChildSpec("w", Fragile)], intensity=Intensity(0, 5.0)))
    async with BusTerminal(MessageRegistry(), children=[workers]) as terminal:
        terminal.supervisor.supervisor("workers").ref("w").tell_nowait("x")
        with anyio.fail_after(10):
            while not records(caplog, "bus", logging.ERROR):  # noqa: ASYNC110 - a log record, no event
                await anyio.sleep(0.01)
    (record,) = records(caplog, "bus", logging.ERROR)
    assert "workers" in record.getMessage()


@pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mockclock")],
)
async def test_a_notice_for_a_subscriber_stopped_for_good_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def broken_subscriber(letter: DeadLetter, ctx: Any) -> None:
        raise Boom("cannot take dead letters")

    async def poison(job: Job, ctx: Any) -> None:
        raise Boom("poison")

    registry = MessageRegistry()
    registry.register(broken_subscriber, retries=0, max_restarts=1)
    registry.register(poison, retries=0)
    async with BusTerminal(registry) as terminal:
        for n in range(3):  # two dead letters stop the subscriber; the third finds it stopped
            await terminal.bus.emit(Job(n))
            await terminal.drain()
        assert not terminal.handler_ref(broken_subscriber.__qualname__).alive
    undelivered = [r for r in records(caplog, "bus.notices", logging.WARNING) if "it is stopped" in r.getMessage()]
    assert len(undelivered) == 1
    assert undelivered[0].handler.endswith("broken_subscriber")  # type: ignore[attr-defined]

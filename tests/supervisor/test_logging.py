"""Logging: loggers ``actors`` and ``supervisor`` with a ``NullHandler``; restarts at INFO, give-ups at
ERROR, and every error the runtime swallows (watchers, dead-letter and give-up listeners, a temporary
child's crash) logged with structured ``extra`` fields."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from actors import Actor, DeadLetters, Terminated
from supervisor import ChildSpec, Intensity, Restart, RestartIntensityExceeded, open_supervisor
from tests.actors.helpers import CRASH, STOP, WHO, Boom, Journal, expect_failure, wait_until, worker

pytestmark = pytest.mark.anyio


def records(caplog: pytest.LogCaptureFixture, logger: str, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno == level]


def test_each_package_logger_has_a_null_handler() -> None:
    import actors
    import supervisor

    for package in (actors, supervisor):
        handlers = logging.getLogger(package.__name__).handlers
        assert any(isinstance(h, logging.NullHandler) for h in handlers)


async def test_a_restart_is_logged_at_info_with_the_child_and_attempt(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="supervisor")
    journal = Journal()
    async with open_supervisor([worker("A", journal)], name="top") as sup:
        sup.ref("A").tell_nowait(CRASH)
        assert await sup.ref("A").ask(WHO) == 2
    [record] = records(caplog, "supervisor", logging.INFO)
    assert (record.supervisor, record.child, record.attempt) == ("top", "A", 1)  # type: ignore[attr-defined]
    assert isinstance(record.error, Boom)  # type: ignore[attr-defined]
    assert "'A'" in record.getMessage()


async def test_a_supervisor_giving_up_is_logged_at_error(caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal()
    with pytest.raises(RestartIntensityExceeded):
        async with open_supervisor([worker("A", journal)], intensity=Intensity(0, 5.0)) as sup:
            sup.ref("A").tell_nowait(CRASH)
            await expect_failure()
    [record] = records(caplog, "supervisor", logging.ERROR)
    assert (record.supervisor, record.child) == ("root", "A")  # type: ignore[attr-defined]
    assert "gave up" in record.getMessage()


async def test_a_child_past_its_own_intensity_is_logged_at_error(caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal()
    notices: list[Terminated] = []
    async with open_supervisor([worker("A", journal, intensity=Intensity(0, 5.0))], intensity=None) as sup:
        sup.ref("A").watch(notices.append)
        sup.ref("A").tell_nowait(CRASH)
        await wait_until(lambda: bool(notices))
    [record] = records(caplog, "supervisor", logging.ERROR)
    assert record.child == "A"  # type: ignore[attr-defined]
    assert "gave up" in record.getMessage()


async def test_a_give_up_listener_that_raises_is_logged_and_the_give_up_still_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(name: str, error: RestartIntensityExceeded) -> None:
        raise RuntimeError("bug in a listener")

    journal = Journal()
    with pytest.raises(RestartIntensityExceeded):
        async with open_supervisor([worker("A", journal)], intensity=Intensity(0, 5.0), on_give_up=broken) as sup:
            sup.ref("A").tell_nowait(CRASH)
            await expect_failure()
    logged = [r for r in records(caplog, "supervisor", logging.ERROR) if r.exc_info]
    assert [type(r.exc_info[1]) for r in logged if r.exc_info] == [RuntimeError]


async def test_a_temporary_childs_crash_is_logged_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal()
    notices: list[Terminated] = []
    async with open_supervisor([worker("T", journal, restart=Restart.TEMPORARY)]) as sup:
        sup.ref("T").watch(notices.append)
        sup.ref("T").tell_nowait(CRASH)
        await wait_until(lambda: bool(notices))
    [record] = records(caplog, "supervisor", logging.WARNING)
    assert record.child == "T"  # type: ignore[attr-defined]
    assert isinstance(record.error, Boom)  # type: ignore[attr-defined]


async def test_watcher_errors_are_logged_and_the_tree_carries_on(caplog: pytest.LogCaptureFixture) -> None:
    def broken(notice: Terminated) -> None:
        raise RuntimeError("bug in a watcher")

    def cancelled_result(notice: Terminated) -> None:
        # a cancellation raised by a callback (the result of a cancelled future) is logged too
        future: asyncio.Future[None] = asyncio.Future(loop=asyncio.new_event_loop())
        future.cancel()
        future.result()

    journal = Journal()
    async with open_supervisor([worker("T", journal, restart=Restart.TRANSIENT), worker("U", journal)]) as sup:
        sup.ref("T").watch(broken)
        sup.ref("T").watch(cancelled_result)
        sup.ref("T").tell_nowait(STOP)
        await wait_until(lambda: not sup.ref("T").alive)
        assert await sup.ref("U").ask(WHO) == 1
        assert sup.snapshot().state == "running"
    logged = records(caplog, "actors", logging.ERROR)
    assert [type(r.exc_info[1]) for r in logged if r.exc_info] == [RuntimeError, asyncio.CancelledError]
    assert all(r.actor == "T" for r in logged)  # type: ignore[attr-defined]


async def test_a_supervisor_watcher_error_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken(notice: Terminated) -> None:
        raise RuntimeError("bug in a watcher")

    async with open_supervisor([]) as sup:
        sup.watch(broken)
    [record] = records(caplog, "supervisor", logging.ERROR)
    assert record.supervisor == "root"  # type: ignore[attr-defined]


async def test_a_dead_letter_listener_error_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Quiet(Actor):
        async def receive(self, message: Any) -> None:
            pass

    def broken(letter: Any) -> None:
        raise RuntimeError("bug in a listener")

    hub = DeadLetters()
    hub.subscribe(broken)
    async with open_supervisor([ChildSpec("Q", Quiet, restart=Restart.TRANSIENT)], dead_letters=hub) as sup:
        await sup.terminate_child("Q")
        sup.ref("Q").tell_nowait("late")
    assert hub.listener_errors == 1
    [record] = records(caplog, "actors", logging.ERROR)
    assert record.actor == "Q"  # type: ignore[attr-defined]


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ fails")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ fails")


class RaisesUnprintable(Actor):
    async def receive(self, message: Any) -> Any:
        if message == CRASH:
            raise Unprintable
        return "ok"


async def test_a_child_crashing_with_an_exception_that_cannot_be_printed_is_restarted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="supervisor")
    async with open_supervisor([ChildSpec("odd", RaisesUnprintable)], name="top") as sup:
        sup.ref("odd").tell_nowait(CRASH)
        assert await sup.ref("odd").ask("hello") == "ok"
        assert [child.restarts for child in sup.which_children()] == [1]
    [record] = records(caplog, "supervisor", logging.INFO)
    assert "Unprintable: <str() failed: RuntimeError>" in record.getMessage()

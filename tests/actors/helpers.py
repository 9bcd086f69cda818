"""Test kit for the actor and supervisor tests (tests/actors, tests/supervisor, tests/property).

- ``Journal``: an ordered record of lifecycle hooks ("start"/"stop" with the actor's name) and of the
  messages each actor processed.
- ``Scripted``: an actor driven by its messages: ``CRASH`` raises ``Boom``, ``STOP`` exits normally,
  ``Sleep(s)`` stays busy in ``receive`` for ``s`` seconds, ``WHO`` answers with the incarnation, anything
  else is recorded and echoed.
- ``wait_until``: poll a condition with a generous bound (never a tight wall-clock assertion);
  ``expect_failure``: wait, with a bound, for the supervisor to fail and cancel the block.
- ``bounded``: what the conftest of tests/actors and tests/supervisor wraps every async test in, so that
  a regression that leaves a test waiting forever fails it instead of hanging the suite.
- ``mock_clock``: the ``anyio_backend`` parameter that runs a test on trio with a fresh ``MockClock``
  whose time jumps as soon as every task is blocked.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from typing import Any, NoReturn

import anyio
import attrs
import pytest
from trio.testing import MockClock

from actors import Actor, DeadLetter, DeadLetters
from supervisor import ChildSpec

CRASH = "crash"
STOP = "stop"
WHO = "who"


class Boom(Exception):
    """The scripted crash."""


@attrs.frozen
class Sleep:
    """Keep ``receive`` busy for ``seconds`` (ignoring stop requests meanwhile)."""

    seconds: float


class Journal:
    """What happened, in order: ``events`` holds ("start" | "stop", name) pairs, ``received`` the
    messages each actor processed."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.received: defaultdict[str, list[Any]] = defaultdict(list)

    def record(self, what: str, who: str) -> None:
        self.events.append((what, who))

    def of(self, what: str) -> list[str]:
        """The names that ran hook ``what``, in order."""
        return [who for kind, who in self.events if kind == what]

    def count(self, what: str, who: str) -> int:
        return self.events.count((what, who))

    def clear(self) -> None:
        self.events.clear()
        self.received.clear()


class Scripted(Actor):
    """Records its hooks and the messages it processed; see the module docstring for its script."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def on_start(self) -> None:
        self.journal.record("start", self.context.name)

    async def on_stop(self) -> None:
        self.journal.record("stop", self.context.name)

    async def receive(self, message: Any) -> Any:
        if message == CRASH:
            raise Boom(f"{self.context.name} crashed")
        if message == STOP:
            self.context.stop()
            return None
        if message == WHO:
            return self.context.incarnation
        if isinstance(message, Sleep):
            self.journal.record("busy", self.context.name)
            await anyio.sleep(message.seconds)
        self.journal.received[self.context.name].append(message)
        return message


def scripted(journal: Journal) -> Callable[[], Actor]:
    """A factory of fresh ``Scripted`` actors writing to ``journal``."""
    return functools.partial(Scripted, journal)


def worker(child_id: str, journal: Journal, **options: Any) -> ChildSpec:
    """A ``ChildSpec`` running a ``Scripted`` actor."""
    return ChildSpec(child_id, scripted(journal), **options)


def collect_dead_letters() -> tuple[DeadLetters, list[DeadLetter]]:
    """A ``DeadLetters`` hub and the list its subscriber fills."""
    hub = DeadLetters()
    letters: list[DeadLetter] = []
    hub.subscribe(letters.append)
    return hub, letters


async def wait_until(
    condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.001
) -> None:
    """Yield until ``condition()`` holds, checking every ``interval`` s; fail (TimeoutError) if it
    does not within ``timeout`` s."""
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - the state polled has no event of its own
            await anyio.sleep(interval)


async def expect_failure(timeout: float = 10.0) -> NoReturn:
    """The body of an ``async with open_supervisor(...)`` that must fail: the supervisor's failure
    cancels this wait; if it does not come within ``timeout`` seconds, the test fails (not hangs)."""
    await anyio.sleep(timeout)
    raise AssertionError(f"the supervisor did not fail within {timeout} s")


def mock_clock() -> Any:
    """``@pytest.mark.parametrize("anyio_backend", [mock_clock()])``: trio with a fresh autojumping
    ``MockClock``, so ``anyio.current_time``, ``anyio.sleep`` and timeouts run on virtual time."""
    return pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mockclock")


async def leak_cancellation() -> NoReturn:
    """Let a cancellation escape that no enclosing cancel scope asked for, as buggy user code does.

    asyncio: await a future that someone else cancelled (``CancelledError``). trio: re-raise the
    ``trio.Cancelled`` caught inside an inner scope the code cancelled itself, outside that scope (a
    ``Cancelled`` cannot be made any other way).
    """
    import sniffio

    if sniffio.current_async_library() == "asyncio":
        import asyncio

        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future
        raise AssertionError("unreachable: the cancelled future raised")
    import trio

    caught: BaseException | None = None
    with trio.CancelScope() as inner:
        inner.cancel()
        try:
            await trio.sleep(1)
        except trio.Cancelled as exc:
            caught = exc
    assert caught is not None
    raise caught

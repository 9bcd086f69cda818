"""One-shot futures that work on asyncio and trio without anyio.Event's cost.

A mailbox parks its actor on one of these when it is empty, and an ``ask`` parks the asker on one until
the reply arrives. ``anyio.Event`` would do, but it costs three to four times a plain future per wake-up,
and those wake-ups are the hot path of every round trip. The factory is chosen once, when an actor or a
supervisor is created inside a running event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any, Protocol


class OneShot(Protocol):
    """A single-waiter future: the part of ``asyncio.Future`` the runtime uses (an ``ask``'s reply, a
    parked mailbox); on trio ``TrioFuture`` provides it."""

    def done(self) -> bool: ...
    def cancelled(self) -> bool: ...
    def set_result(self, result: Any, /) -> None: ...
    def set_exception(self, exception: BaseException, /) -> None: ...
    def result(self) -> Any: ...
    def __await__(self) -> Generator[Any, None, Any]: ...


class FutureFactory(Protocol):
    """Makes a fresh ``OneShot`` for the running event loop (see ``current_future_factory``)."""

    def __call__(self) -> OneShot: ...


class TrioFuture:
    """A single-waiter future for trio, built on ``wait_task_rescheduled``."""

    __slots__ = ("_cancelled", "_done", "_error", "_result", "_task")

    def __init__(self) -> None:
        self._done = False
        self._cancelled = False
        self._result: Any = None
        self._error: BaseException | None = None
        self._task: Any = None

    def done(self) -> bool:
        """True once a result or an exception is set, or the waiter was cancelled."""
        return self._done

    def cancelled(self) -> bool:
        """True when the waiter was cancelled before a result arrived."""
        return self._cancelled

    def result(self) -> Any:
        """The result, or raise the exception that was set."""
        if not self._done:
            raise asyncio.InvalidStateError("result is not set")
        if self._error is not None:
            raise self._error
        return self._result

    def set_result(self, result: Any, /) -> None:
        """Complete with ``result`` and wake the waiter."""
        if self._done:
            raise asyncio.InvalidStateError("future is already done")
        self._done = True
        self._result = result
        self._wake()

    def set_exception(self, exception: BaseException, /) -> None:
        """Complete with ``exception`` (raised in the waiter) and wake it."""
        if self._done:
            raise asyncio.InvalidStateError("future is already done")
        self._done = True
        self._error = exception
        self._wake()

    def _wake(self) -> None:
        task = self._task
        if task is not None:
            import outcome
            import trio

            self._task = None
            value = outcome.Error(self._error) if self._error is not None else outcome.Value(self._result)
            trio.lowlevel.reschedule(task, value)

    async def _wait(self) -> Any:
        if self._done:
            return self.result()
        import trio

        self._task = trio.lowlevel.current_task()

        def abort(_: Any) -> Any:
            self._task = None
            self._done = True
            self._cancelled = True
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wait().__await__()


def current_future_factory() -> FutureFactory:
    """Return the cheapest one-shot future for the event loop running in this thread."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return TrioFuture
    return loop.create_future

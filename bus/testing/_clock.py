"""Run async code under a virtual clock: trio's `MockClock`, so sleeps and backoffs take no time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


def backend_options(backend: str) -> dict[str, Any]:
    """anyio backend options for ``backend``: on trio, a `MockClock` that jumps ahead as soon as
    every task waits (``autojump_threshold=0``); on asyncio, none (real time)."""
    if backend != "trio":
        return {}
    from trio.testing import MockClock

    return {"clock": MockClock(autojump_threshold=0)}


def run(func: Callable[..., Awaitable[T]], *args: Any, backend: str = "trio") -> T:
    """``anyio.run(func, *args)`` on ``backend``; on trio (the default) in virtual time, so retry
    backoffs and restart delays take no real time and a run replays the same way."""
    return anyio.run(func, *args, backend=backend, backend_options=backend_options(backend))

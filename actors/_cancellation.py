"""Telling a cancellation meant for us (a kill, a shutdown) from one that merely escaped user code, and
calling user callbacks that must not break the runtime."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from actors._errors import ActorCrashedError

_log = logging.getLogger("actors")
_T = TypeVar("_T")


def escaped_cancellation(name: str, error: BaseException) -> ActorCrashedError | None:
    """The crash to raise instead of ``error`` when it is a cancellation that no enclosing cancel scope
    asked for (user code awaited a future cancelled elsewhere, or re-raised a ``trio.Cancelled`` caught
    from its own inner scope); None when ``error`` is not a cancellation or really is ours. An
    ``asyncio.CancelledError`` on trio is never ours.

    A cancelled enclosing scope (the actor's own, its supervisor's task group, or anything above it)
    makes anyio's effective deadline ``-inf`` (a passed
    deadline counts too): that is how a real kill or shutdown is recognised, on
    asyncio and trio alike.

    A ``GeneratorExit`` that left user code is a crash too: it belongs to the generator that
    received it, and handed on as itself through a future (to an asker, to the supervisor awaiting
    a start) asyncio would throw it into the waiting task, which closes that task's coroutines
    instead of raising in them.
    """
    if isinstance(error, GeneratorExit):
        return ActorCrashedError(name, error)
    if not isinstance(error, (asyncio.CancelledError, anyio.get_cancelled_exc_class())):
        return None
    if anyio.current_effective_deadline() <= anyio.current_time():
        return None
    return ActorCrashedError(name, error)


def call_listener(listener: Callable[[_T], Any], notice: _T, what: str, name: str) -> bool:
    """Call a user's synchronous callback (watcher, listener) that must not break the runtime; log what
    it raises (``what % name`` is the message) and return False then.

    A callback runs at no await point, so a cancellation from it is never ours (``future.result()`` of
    a cancelled future raises one): it is logged like any other error.
    """
    try:
        listener(notice)
    except (Exception, asyncio.CancelledError, anyio.get_cancelled_exc_class()):
        _log.exception(what, name, extra={"actor": name, "listener": repr(listener)})
        return False
    return True

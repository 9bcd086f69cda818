"""A handler whose call returns an awaitable is awaited, never skipped (issue 7, item 3)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from bus import BusTerminal, Event, MessageRegistry
from bus._handlers import parse_handler

pytestmark = pytest.mark.anyio


class Noted(Event):
    text: str


def logged(func: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """A decorator as users write them: a plain ``def`` wrapper around an ``async def``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Awaitable[None]:
        return func(*args, **kwargs)

    return wrapper


seen: list[str] = []


@logged
async def wrapped(event: Noted, ctx: Any) -> None:
    await anyio.lowlevel.checkpoint()
    seen.append(f"wrapped:{event.text}")


async def tagged(tag: str, event: Noted, ctx: Any) -> None:
    await anyio.lowlevel.checkpoint()
    seen.append(f"{tag}:{event.text}")


class AsyncCallable:
    async def __call__(self, event: Noted, ctx: Any) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(f"object:{event.text}")


def returns_a_coroutine(event: Noted, ctx: Any) -> Awaitable[None]:
    """No ``functools.wraps``: only its result shows it is asynchronous."""
    return tagged("undecorated", event, ctx)


HANDLERS: list[Callable[..., object]] = [
    wrapped,
    functools.partial(tagged, "partial"),
    functools.partial(logged(tagged), "wrapped-partial"),
    AsyncCallable(),
    returns_a_coroutine,
]


@pytest.fixture(autouse=True)
def _clear() -> None:
    seen.clear()


@pytest.mark.parametrize("handler", HANDLERS, ids=lambda h: type(h).__name__)
async def test_a_handler_that_returns_an_awaitable_runs_under_publish_and_emit(
    handler: Callable[..., object],
) -> None:
    registry = MessageRegistry()
    registry.register(handler)
    with anyio.fail_after(30):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.publish(Noted("published"))
            assert len(seen) == 1, "publish returned before the handler's body ran"
            await terminal.bus.emit(Noted("emitted"))
            await terminal.drain()
    assert [entry.split(":")[1] for entry in seen] == ["published", "emitted"]


def test_a_functools_wraps_wrapper_around_an_async_def_is_registered_as_async() -> None:
    assert parse_handler(wrapped).is_async
    assert parse_handler(functools.partial(logged(tagged), "x")).is_async
    assert not parse_handler(returns_a_coroutine).is_async


async def test_the_error_of_an_awaited_wrapper_reaches_the_publisher() -> None:
    @logged
    async def fails(event: Noted, ctx: Any) -> None:
        raise ValueError("from the wrapped body")

    registry = MessageRegistry()
    registry.register(fails)
    async with BusTerminal(registry) as terminal:
        with pytest.raises(ValueError, match="from the wrapped body"):
            await terminal.bus.publish(Noted("x"))

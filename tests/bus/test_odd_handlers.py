"""Handlers that do odd things a new user's code does by mistake: raise signal-like exceptions that
must not travel to another task as themselves, ... The bus treats them as crashes of that handler
alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.from_thread
import pytest

from actors import ActorCrashedError
from bus import BusError, BusTerminal, DeadLetter, Event, HandlerRestarted, MessageRegistry

pytestmark = pytest.mark.anyio

LIMIT = 30


class Ping(Event):
    n: int


class Conn:
    pass


def conn() -> Iterator[Conn]:
    yield Conn()


def generator_exit_handlers() -> dict[str, Callable[..., Any]]:
    """One handler of each shape the bus calls differently, each raising GeneratorExit on n == 1."""

    async def bare(event: Ping) -> None:
        if event.n == 1:
            raise GeneratorExit

    async def with_context(event: Ping, ctx: object) -> None:
        if event.n == 1:
            raise GeneratorExit

    async def with_dependency(event: Ping, ctx: object, c: Conn) -> None:
        if event.n == 1:
            raise GeneratorExit

    def sync(event: Ping) -> None:
        if event.n == 1:
            raise GeneratorExit

    return {"bare": bare, "with_context": with_context, "with_dependency": with_dependency, "sync": sync}


SHAPES = tuple(generator_exit_handlers())


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_handler_raising_generator_exit_fails_the_publish_with_runtime_error_and_the_block_exits_cleanly(
    shape: str,
) -> None:
    handler = generator_exit_handlers()[shape]
    seen: list[int] = []

    async def sibling(event: Ping) -> None:
        seen.append(event.n)

    registry = MessageRegistry()
    registry.factory(conn)
    registry.register(handler, sibling)
    with anyio.fail_after(LIMIT):
        # the error leaves the block as an ordinary exception: on asyncio a GeneratorExit handed to
        # the publisher's task used to close its coroutines, so the block's exit failed with
        # "coroutine ignored GeneratorExit"
        with pytest.raises(RuntimeError, match="raised GeneratorExit") as caught:
            async with BusTerminal(registry, shutdown_timeout=5) as terminal:
                with pytest.raises(RuntimeError, match="raised GeneratorExit") as inner:
                    await terminal.bus.publish(Ping(1))
                assert isinstance(inner.value.__cause__, GeneratorExit)
                assert seen == []  # later handlers do not get a failed publish's event
                # the handler was restarted like after any crash and the bus still works
                await terminal.bus.publish(Ping(2))
                assert seen == [2]
                raise inner.value
    assert isinstance(caught.value.__cause__, GeneratorExit)


@pytest.mark.parametrize("shape", SHAPES)
async def test_an_emitted_message_whose_handler_raises_generator_exit_is_retried_then_dead_lettered(
    shape: str,
) -> None:
    handler = generator_exit_handlers()[shape]
    letters: list[DeadLetter] = []

    async def on_letter(letter: DeadLetter) -> None:
        letters.append(letter)

    registry = MessageRegistry()
    registry.factory(conn)
    registry.register(handler, retries=2, retry_backoff=0.0)
    registry.register(on_letter)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry, shutdown_timeout=5) as terminal:
            await terminal.bus.emit(Ping(1))
            await terminal.bus.emit(Ping(2))
            await terminal.drain()
            statistics = terminal.statistics()
    [letter] = letters
    assert (letter.event, letter.reason, letter.attempts) == (Ping(1), "retries_exhausted", 3)
    assert "GeneratorExit" in letter.error
    assert statistics.in_flight == 0


async def test_sys_exit_in_an_emitted_handler_leaves_the_block_even_when_it_leaves_right_after_drain() -> None:
    """``drain`` returns once the message is dead-lettered; leaving the block at once used to lose
    the ``SystemExit`` (its supervisor was already stopping the handler)."""
    ran: list[int] = []

    async def stop_the_program(event: Ping) -> None:
        ran.append(event.n)
        raise SystemExit(3)

    registry = MessageRegistry()
    registry.register(stop_the_program)
    with anyio.fail_after(LIMIT):
        with pytest.raises(SystemExit) as raised:
            async with BusTerminal(registry, shutdown_timeout=5) as terminal:
                await terminal.bus.emit(Ping(1))
                await terminal.drain()
    assert raised.value.code == 3
    assert ran == [1]


async def test_drain_called_from_a_handler_raises_bus_error_instead_of_waiting_for_itself() -> None:
    errors: list[str] = []
    terminal = None

    async def waits_for_everything(event: Ping) -> None:
        assert terminal is not None
        try:
            await terminal.drain()
        except BusError as exc:
            errors.append(str(exc))

    def sync_waits_for_everything(event: Ping) -> None:
        assert terminal is not None
        try:
            anyio.from_thread.run(terminal.drain)
        except BusError as exc:
            errors.append(str(exc))

    registry = MessageRegistry()
    registry.register(waits_for_everything, sync_waits_for_everything)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(Ping(1))
            await terminal.drain()  # returns: the handlers were told at once
            await terminal.bus.publish(Ping(2))
    assert len(errors) == 4
    assert all("drain() called from inside handler" in e for e in errors)


async def test_a_provider_raising_generator_exit_fails_the_start_naming_the_handler() -> None:
    def broken() -> Iterator[Conn]:
        raise GeneratorExit
        yield Conn()  # a generator provider that never gets to yield

    async def uses(event: Ping, ctx: object, c: Conn) -> None: ...

    registry = MessageRegistry()
    registry.factory(broken)
    registry.register(uses)
    with anyio.fail_after(LIMIT):
        # on asyncio it used to reach the starting task as itself and break the event loop
        with pytest.raises(ActorCrashedError, match="uses") as caught:
            async with BusTerminal(registry):
                pytest.fail("the block must not run")
    assert isinstance(caught.value.__cause__, GeneratorExit)


async def test_a_handler_error_with_a_huge_text_gives_dead_letters_and_restart_notices_of_bounded_size() -> None:
    letters: list[DeadLetter] = []
    restarts: list[HandlerRestarted] = []

    async def huge(event: Ping) -> None:
        raise ValueError("x" * 5_000_000)

    async def on_letter(letter: DeadLetter) -> None:
        letters.append(letter)

    async def on_restart(notice: HandlerRestarted) -> None:
        restarts.append(notice)

    registry = MessageRegistry()
    registry.register(huge, retries=1, retry_backoff=0.0)
    registry.register(on_letter, on_restart)
    with anyio.fail_after(LIMIT):
        async with BusTerminal(registry) as terminal:
            await terminal.bus.emit(Ping(1))
            await terminal.drain()
    [letter] = letters
    assert letter.error.startswith("ValueError: xxx")
    assert len(letter.error) < 2100
    assert restarts
    assert all(len(notice.error) < 2100 for notice in restarts)

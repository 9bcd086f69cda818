"""BaseExceptions that are not Exceptions (SystemExit, KeyboardInterrupt, ...) end the tree and are
raised as themselves, never wrapped in an ExceptionGroup."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import Actor
from supervisor import ChildSpec, SupervisorSpec, open_supervisor

pytestmark = pytest.mark.anyio


class Halt(BaseException):
    pass


class Halting(Actor):
    async def receive(self, message: Any) -> None:
        raise Halt(f"halt on {message!r}")


async def test_a_base_exception_in_a_nested_actor_leaves_open_supervisor_as_itself() -> None:
    nested = ChildSpec("mid", SupervisorSpec([ChildSpec("w", Halting)]))
    asked: list[str] = []
    with pytest.raises(Halt, match="halt on 'go'"):
        async with open_supervisor([nested]) as root:
            try:
                await root.supervisor("mid").ref("w").ask("go")
            except Halt as exc:
                asked.append(str(exc))
                raise
    assert asked == ["halt on 'go'"]


async def test_a_base_exception_in_the_block_stops_the_tree_and_leaves_as_itself() -> None:
    stopped: list[str] = []

    class Recording(Actor):
        async def on_stop(self) -> None:
            stopped.append("a")

        async def receive(self, message: Any) -> None: ...

    with pytest.raises(Halt):
        async with open_supervisor([ChildSpec("a", Recording)]):
            raise Halt
    assert stopped == ["a"]


@pytest.mark.parametrize("error", [Halt("from actor"), SystemExit(3)], ids=["custom", "system-exit"])
async def test_a_base_exception_from_an_actor_stops_the_others_in_order_then_leaves_as_itself(
    error: BaseException,
) -> None:
    stopped: list[str] = []

    class Worker(Actor):
        async def on_stop(self) -> None:
            stopped.append(self.context.name)

        async def receive(self, message: Any) -> None:
            if message == "raise":
                raise error

    asked: list[BaseException] = []
    with pytest.raises(type(error)) as raised:
        async with open_supervisor([ChildSpec(n, Worker) for n in ("a", "k", "z")]) as root:
            try:
                await root.ref("k").ask("raise")
            except BaseException as exc:
                asked.append(exc)
                raise
    assert raised.value is error
    assert asked == [error]
    # k's incarnation ended with the exception (its on_stop does not run: it did not crash with an
    # Exception); the others stop newest-first, each with its end hook
    assert stopped == ["z", "a"]


@pytest.mark.parametrize("where", ["message", "on_stop"])
async def test_a_base_exception_raised_while_the_tree_stops_still_leaves_as_itself(where: str) -> None:
    """The block leaves while an actor finishes its last message (or runs its ``on_stop``) and
    raises ``SystemExit``: the exception is not lost because its supervisor was stopping it."""
    release = anyio.Event()
    stopped: list[str] = []

    class Exiting(Actor):
        async def on_stop(self) -> None:
            stopped.append(self.context.name)
            if where == "on_stop":
                raise SystemExit(3)

        async def receive(self, message: Any) -> None:
            await release.wait()
            if where == "message":
                raise SystemExit(3)

    class Worker(Actor):
        async def on_stop(self) -> None:
            stopped.append(self.context.name)

        async def receive(self, message: Any) -> None: ...

    nested = ChildSpec("mid", SupervisorSpec([ChildSpec("x", Exiting)]))
    with pytest.raises(SystemExit) as raised:
        async with open_supervisor([ChildSpec("first", Worker), nested, ChildSpec("last", Worker)]) as root:
            await root.supervisor("mid").ref("x").tell("go")
            release.set()  # x raises while the tree stops, not before
    assert raised.value.code == 3
    # the tree still stopped in order, newest first
    assert stopped[0] == "last"
    assert stopped[-1] == "first"


async def test_a_base_exception_from_a_told_actor_cancels_the_block_and_leaves_as_itself() -> None:
    """Nobody asked: the tree ends, the block is cancelled, and the exception leaves the
    ``async with`` (on asyncio it used to leave the event loop from the root's task instead)."""

    class Exiting(Actor):
        async def receive(self, message: Any) -> None:
            raise SystemExit(3)

    reached: list[str] = []
    with pytest.raises(SystemExit) as raised:
        async with open_supervisor([ChildSpec("x", Exiting)]) as root:
            await root.ref("x").tell("go")
            await anyio.sleep_forever()
    reached.append("after the block")
    assert raised.value.code == 3
    assert reached == ["after the block"]


async def test_a_base_exception_from_on_start_leaves_open_supervisor_as_itself() -> None:
    class Exiting(Actor):
        async def on_start(self) -> None:
            raise SystemExit(4)

        async def receive(self, message: Any) -> None: ...

    entered: list[str] = []
    with pytest.raises(SystemExit) as raised:
        async with open_supervisor([ChildSpec("x", Exiting)]):
            entered.append("body")
    assert raised.value.code == 4
    assert entered == []

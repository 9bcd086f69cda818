"""BaseExceptions that are not Exceptions (SystemExit, KeyboardInterrupt, ...) end the tree and are
raised as themselves, never wrapped in an ExceptionGroup."""

from __future__ import annotations

from typing import Any

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

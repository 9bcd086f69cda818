"""An ``ActorCell`` made from a setup object (what a supervisor does with its ``ChildSpec``) reads the
actor factory and the redelivery policy from it, for every incarnation."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import Actor, ActorCell, Redelivery

pytestmark = pytest.mark.anyio


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        return message


class Setup:
    """Any object with ``start`` and ``redelivery`` will do."""

    def __init__(self) -> None:
        self.redelivery = Redelivery(max_redeliveries=2)
        self.made = 0

    def start(self) -> Actor:
        self.made += 1
        return Echo()


def unused_factory() -> Actor:
    raise AssertionError("the setup's start is used, not the factory")


async def test_a_cell_reads_its_actor_factory_and_redelivery_from_its_setup() -> None:
    setup = Setup()
    cell = ActorCell("echo", unused_factory, setup=setup)
    assert cell.setup is setup
    assert cell.redelivery is setup.redelivery
    for incarnation in (1, 2):
        async with anyio.create_task_group() as tg:
            started = anyio.Event()
            tg.start_soon(cell.run, started.set)
            await started.wait()
            assert await cell.ref.ask(incarnation) == incarnation
            cell.request_stop()
    assert setup.made == 2


async def test_a_cell_without_a_setup_uses_its_factory_and_redelivery() -> None:
    policy = Redelivery(max_redeliveries=1)
    cell = ActorCell("echo", Echo, redelivery=policy)
    assert cell.redelivery is policy
    assert cell.setup.redelivery is policy
    assert cell.mailbox is cell  # one object: the cell is its own mailbox
    async with anyio.create_task_group() as tg:
        started = anyio.Event()
        tg.start_soon(cell.run, started.set)
        await started.wait()
        assert await cell.ref.ask("hello") == "hello"
        cell.request_stop()

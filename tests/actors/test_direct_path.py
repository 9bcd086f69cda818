"""Actor.direct: a fast path the loop awaits in place of receive for plain tells, with receive's
per-message guarantees (order, counters, crash handling, redelivery, kill)."""

from collections.abc import Awaitable
from typing import Any

import anyio
import pytest

from actors import Actor, ActorStoppedError, DeadLetterReason, DirectPath, Redelivery
from supervisor import BRUTAL_KILL, ChildSpec, open_supervisor
from tests.actors.helpers import Boom, collect_dead_letters, mock_clock, wait_until

pytestmark = pytest.mark.anyio


class Replaced(Exception):
    """What ``failed`` raises in place of the original error, for messages that ask for it."""


class Direct(Actor):
    """Takes ints the direct way (strings go to ``receive``). ``log`` records (path, attempt,
    message); ``done`` the messages ``done`` was called for. An int 2 crashes at its first
    attempt, a negative int sleeps for ever, and 3 crashes with an error ``failed`` replaces."""

    def __init__(self, log: list[tuple[str, int, Any]], done: list[Any]) -> None:
        self.log = log
        self.done = done
        self.activations = 0

    def direct(self) -> DirectPath | None:
        self.activations += 1
        return DirectPath(self._start, self.done.append, self._failed)

    def _start(self, message: Any) -> Awaitable[Any] | None:
        if type(message) is int:
            return self._handle(message)
        return None

    async def _handle(self, message: int) -> None:
        self.log.append(("direct", self.context.attempt, message))
        if message < 0:
            await anyio.sleep_forever()
        if message == 2 and self.context.attempt == 1:
            raise Boom("two")
        if message == 3:
            raise Boom("three")

    def _failed(self, message: Any, error: BaseException) -> BaseException:
        self.log.append(("failed", self.context.attempt, message))
        if message == 3:
            return Replaced(f"replaced {error}")
        return error

    async def receive(self, message: Any) -> Any:
        self.log.append(("receive", self.context.attempt, message))
        if message == 2 and self.context.attempt == 1:
            raise Boom("two")
        return message


async def test_plain_tells_go_the_direct_way_in_order_and_each_one_is_counted_and_done() -> None:
    log: list[tuple[str, int, Any]] = []
    done: list[Any] = []
    async with open_supervisor([ChildSpec("A", lambda: Direct(log, done))]) as sup:
        ref = sup.ref("A")
        for message in (1, "a", 4, 5, "b", 6):
            ref.tell_nowait(message)
        assert await ref.ask(7) == 7  # an ask always goes to receive
        stats = ref.statistics()
    assert log == [
        ("direct", 1, 1),
        ("receive", 1, "a"),
        ("direct", 1, 4),
        ("direct", 1, 5),
        ("receive", 1, "b"),
        ("direct", 1, 6),
        ("receive", 1, 7),
    ]
    assert done == [1, 4, 5, 6]
    assert (stats.processed, stats.failed, stats.mailbox_depth) == (7, 0, 0)


async def test_a_direct_crash_is_redelivered_through_receive_with_its_next_attempt() -> None:
    log: list[tuple[str, int, Any]] = []
    done: list[Any] = []
    hub, letters = collect_dead_letters()
    spec = ChildSpec("A", lambda: Direct(log, done), redelivery=Redelivery(max_redeliveries=1))
    async with open_supervisor([spec], dead_letters=hub) as sup:
        ref = sup.ref("A")
        for message in (1, 2, 4):
            ref.tell_nowait(message)
        assert await ref.ask("end") == "end"
        stats = ref.statistics()
    assert log == [
        ("direct", 1, 1),
        ("direct", 1, 2),
        ("failed", 1, 2),
        ("receive", 2, 2),
        ("direct", 1, 4),
        ("receive", 1, "end"),
    ]
    assert done == [1, 4]  # not the crash: receive took its redelivery
    assert (stats.incarnation, stats.processed, stats.failed) == (2, 4, 1)
    assert letters == []


async def test_the_error_failed_returns_is_the_crash_and_its_cause_is_the_original() -> None:
    log: list[tuple[str, int, Any]] = []
    done: list[Any] = []
    hub, letters = collect_dead_letters()
    async with open_supervisor([ChildSpec("A", lambda: Direct(log, done))], dead_letters=hub) as sup:
        ref = sup.ref("A")
        ref.tell_nowait(3)
        ref.tell_nowait(1)
        assert await ref.ask("end") == "end"
        stats = ref.statistics()
    assert [(letter.message, letter.reason, letter.attempts) for letter in letters] == [
        (3, DeadLetterReason.CRASHED, 1)
    ]
    error = letters[0].error
    assert isinstance(error, Replaced)
    assert isinstance(error.__cause__, Boom)
    assert done == [1]
    assert (stats.incarnation, stats.processed, stats.failed) == (2, 2, 1)


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_kill_during_a_direct_message_dead_letters_it_as_killed_without_done() -> None:
    log: list[tuple[str, int, Any]] = []
    done: list[Any] = []
    hub, letters = collect_dead_letters()
    spec = ChildSpec("A", lambda: Direct(log, done), shutdown=BRUTAL_KILL)
    async with open_supervisor([spec], dead_letters=hub) as sup:
        sup.ref("A").tell_nowait(-1)
        await wait_until(lambda: log == [("direct", 1, -1)])
        await sup.terminate_child("A")
    assert [(letter.message, letter.reason) for letter in letters] == [(-1, DeadLetterReason.KILLED)]
    # a kill is not a crash: failed saw the cancellation and passed it on unchanged
    assert log == [("direct", 1, -1), ("failed", 1, -1)]
    assert done == []


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_the_direct_path_is_asked_again_at_each_activation_of_an_idle_incarnation() -> None:
    log: list[tuple[str, int, Any]] = []
    done: list[Any] = []
    actors: list[Direct] = []

    def make() -> Direct:
        actors.append(Direct(log, done))
        return actors[-1]

    async with open_supervisor([ChildSpec("A", make)], linger=1.0) as sup:
        ref = sup.ref("A")
        ref.tell_nowait(1)
        await wait_until(lambda: done == [1])
        await wait_until(lambda: ref.statistics().idle, timeout=100)
        ref.tell_nowait(4)
        await wait_until(lambda: done == [1, 4])
    assert len(actors) == 1  # one incarnation
    assert actors[0].activations >= 2
    assert log == [("direct", 1, 1), ("direct", 1, 4)]


class DirectAsks(Direct):
    """``Direct`` that also answers asks of ints the direct way (doubled); other asks go to
    ``receive``. An ask of 3 crashes with an error ``failed`` replaces, -1 sleeps for ever."""

    def direct(self) -> DirectPath | None:
        self.activations += 1
        return DirectPath(self._start, self.done.append, self._failed, self._ask)

    def _ask(self, message: Any) -> Awaitable[Any] | None:
        if type(message) is int:
            return self._answer(message)
        return None

    async def _answer(self, message: int) -> int:
        self.log.append(("ask", self.context.attempt, message))
        if message < 0:
            await anyio.sleep_forever()
        if message == 3:
            raise Boom("three")
        return 2 * message


async def test_asks_go_the_direct_way_when_offered_and_their_result_is_the_reply() -> None:
    log: list[tuple[str, int, Any]] = []
    done: list[Any] = []
    async with open_supervisor([ChildSpec("A", lambda: DirectAsks(log, done))]) as sup:
        ref = sup.ref("A")
        ref.tell_nowait(1)
        assert await ref.ask(5) == 10
        assert await ref.ask("s") == "s"  # ask returned None: receive answers
        assert await ref.ask_nowait(6) == 12
        stats = ref.statistics()
    assert log == [("direct", 1, 1), ("ask", 1, 5), ("receive", 1, "s"), ("ask", 1, 6)]
    assert done == [1]  # done is for tells only
    assert (stats.processed, stats.failed, stats.mailbox_depth) == (4, 0, 0)


async def test_a_direct_ask_that_crashes_raises_what_failed_returns_to_the_asker_once() -> None:
    log: list[tuple[str, int, Any]] = []
    done: list[Any] = []
    hub, letters = collect_dead_letters()
    spec = ChildSpec("A", lambda: DirectAsks(log, done), redelivery=Redelivery(max_redeliveries=2))
    async with open_supervisor([spec], dead_letters=hub) as sup:
        ref = sup.ref("A")
        with pytest.raises(Replaced) as caught:
            await ref.ask(3)
        assert isinstance(caught.value.__cause__, Boom)
        assert await ref.ask(4) == 8
        stats = ref.statistics()
    # never redelivered (asks are not), never dead-lettered: the asker got the error
    assert log == [("ask", 1, 3), ("failed", 1, 3), ("ask", 1, 4)]
    assert letters == []
    assert (stats.incarnation, stats.processed, stats.failed) == (2, 1, 1)


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_kill_during_a_direct_ask_fails_the_asker_and_the_next_incarnation_answers() -> None:
    log: list[tuple[str, int, Any]] = []
    done: list[Any] = []
    spec = ChildSpec("A", lambda: DirectAsks(log, done), shutdown=BRUTAL_KILL)
    async with open_supervisor([spec]) as sup:
        ref = sup.ref("A")
        outcome: list[BaseException] = []

        async def asker() -> None:
            try:
                await ref.ask(-1)
            except Exception as exc:  # noqa: BLE001 - recorded for the assertion below
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(asker)
            await wait_until(lambda: log == [("ask", 1, -1)])
            await sup.terminate_child("A")
        assert [type(error) for error in outcome] == [ActorStoppedError]
        await sup.restart_child("A")
        assert await ref.ask(2) == 4
    assert log == [("ask", 1, -1), ("failed", 1, -1), ("ask", 1, 2)]

"""A cancellation that escapes an actor's code without coming from its own cancel scope (a kill, a
shutdown, its supervisor stopping) is an ordinary crash of that one actor: restarted per policy, its
siblings untouched, the snapshot truthful, and its asker gets ``ActorCrashedError`` (the cancellation
as ``__cause__``) instead of a bare cancellation that would cancel the asker's own task."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from actors import Actor, ActorCrashedError, DeadLetterReason, Redelivery, escaped_cancellation
from supervisor import (
    ChildSpec,
    ChildStartError,
    Intensity,
    RestartIntensityExceeded,
    open_supervisor,
)
from tests.actors.helpers import WHO, collect_dead_letters, expect_failure, leak_cancellation

pytestmark = pytest.mark.anyio

LEAK = "leak"


class Leaky(Actor):
    """Lets a foreign cancellation escape on ``LEAK``; answers ``WHO`` with its incarnation."""

    def __init__(self, seen: list[Any] | None = None) -> None:
        self.seen = seen if seen is not None else []

    async def receive(self, message: Any) -> Any:
        self.seen.append(message)
        if message == LEAK:
            await leak_cancellation()
        if message == WHO:
            return self.context.incarnation
        return message


async def test_an_ask_whose_actor_let_a_cancellation_escape_raises_actor_crashed_error_to_the_asker() -> None:
    async with open_supervisor([ChildSpec("a", Leaky), ChildSpec("b", Leaky)]) as sup:
        with pytest.raises(ActorCrashedError) as caught:
            await sup.ref("a").ask(LEAK, timeout=5)
        assert isinstance(caught.value.__cause__, anyio.get_cancelled_exc_class())
        assert caught.value.actor == "a"
        # the asker's own task was not cancelled: it goes on awaiting
        await anyio.lowlevel.checkpoint()
        assert await sup.ref("a").ask(WHO, timeout=5) == 2  # restarted once


async def test_the_actor_that_let_a_cancellation_escape_is_restarted_alone_and_the_snapshot_tells_the_truth() -> (
    None
):
    async with open_supervisor([ChildSpec("a", Leaky), ChildSpec("b", Leaky)]) as sup:
        sup.ref("a").tell_nowait(LEAK)
        assert await sup.ref("a").ask(WHO, timeout=5) == 2
        assert await sup.ref("b").ask(WHO, timeout=5) == 1  # the sibling never restarted
        nodes = {node.id: node for node in sup.snapshot().walk()}
        assert nodes["root"].state == "running"
        assert (nodes["a"].state, nodes["a"].restarts, nodes["a"].failed) == ("running", 1, 1)
        assert (nodes["b"].state, nodes["b"].restarts, nodes["b"].failed) == ("running", 0, 0)
        # every child shown running really answers
        for node in sup.snapshot().children:
            assert await sup.ref(node.id).ask("ping", timeout=5) == "ping"


async def test_a_told_message_that_let_a_cancellation_escape_is_retried_then_dead_lettered_as_crashed() -> None:
    hub, letters = collect_dead_letters()
    seen: list[Any] = []
    spec = ChildSpec("a", lambda: Leaky(seen), redelivery=Redelivery(max_redeliveries=2))
    async with open_supervisor([spec], dead_letters=hub, intensity=Intensity(10, 5.0)) as sup:
        sup.ref("a").tell_nowait(LEAK)
        sup.ref("a").tell_nowait("after")
        assert await sup.ref("a").ask(WHO, timeout=5) == 4
    assert seen[:4] == [LEAK, LEAK, LEAK, "after"]
    assert len(letters) == 1
    letter = letters[0]
    assert (letter.message, letter.reason, letter.attempts) == (LEAK, DeadLetterReason.CRASHED, 3)
    assert isinstance(letter.error, ActorCrashedError)


async def test_cancellations_escaping_past_the_intensity_make_open_supervisor_raise_never_return_quietly() -> None:
    with pytest.raises(RestartIntensityExceeded) as caught:
        async with open_supervisor([ChildSpec("a", Leaky)], intensity=Intensity(1, 60.0)) as sup:
            for _ in range(3):
                sup.ref("a").tell_nowait(LEAK)
            await expect_failure()
    assert isinstance(caught.value.__cause__, ActorCrashedError)


async def test_a_cancellation_escaping_on_start_fails_the_start_with_actor_crashed_error() -> None:
    class LeakyStart(Actor):
        async def on_start(self) -> None:
            await leak_cancellation()

        async def receive(self, message: Any) -> None:
            raise AssertionError("never started")

    with pytest.raises(ChildStartError) as caught:
        async with open_supervisor([ChildSpec("a", LeakyStart)]):
            raise AssertionError("the start must fail")
    assert isinstance(caught.value.__cause__, ActorCrashedError)


async def test_a_cancellation_escaping_on_stop_is_reported_as_a_crash_of_that_incarnation() -> None:
    stops: list[int] = []

    class LeakyStop(Actor):
        async def on_stop(self) -> None:
            stops.append(self.context.incarnation)
            if self.context.incarnation == 1:
                await leak_cancellation()

        async def receive(self, message: Any) -> Any:
            if message == "exit":
                self.context.stop()
            return self.context.incarnation

    async with open_supervisor([ChildSpec("a", LeakyStop)]) as sup:
        sup.ref("a").tell_nowait("exit")
        assert await sup.ref("a").ask(WHO, timeout=5) == 2
        assert sup.ref("a").statistics().alive
    assert stops == [1, 2]


async def test_a_real_kill_is_not_mistaken_for_an_escaped_cancellation() -> None:
    verdicts: list[object] = []
    with anyio.CancelScope() as scope:
        scope.cancel()
        try:
            await anyio.sleep(1)
        except anyio.get_cancelled_exc_class() as exc:
            verdicts.append(escaped_cancellation("a", exc))
            raise
    assert verdicts == [None]
    assert escaped_cancellation("a", ValueError("not a cancellation")) is None


async def test_an_asyncio_cancelled_error_raised_by_hand_is_an_ordinary_crash_on_either_backend() -> None:
    import asyncio

    class RaisesByHand(Actor):
        async def receive(self, message: Any) -> Any:
            if message == LEAK:
                raise asyncio.CancelledError("raised by hand")
            return self.context.incarnation

    async with open_supervisor([ChildSpec("a", RaisesByHand)]) as sup:
        with pytest.raises(ActorCrashedError) as caught:
            await sup.ref("a").ask(LEAK, timeout=5)
        assert isinstance(caught.value.__cause__, asyncio.CancelledError)
        assert await sup.ref("a").ask(WHO, timeout=5) == 2


class Closing(Actor):
    """Raises ``GeneratorExit`` (as code driving a generator by hand may let one out) on ``LEAK``,
    or from ``on_start`` when told to."""

    def __init__(self, in_start: bool = False) -> None:
        self.in_start = in_start

    async def on_start(self) -> None:
        if self.in_start:
            raise GeneratorExit

    async def receive(self, message: Any) -> Any:
        if message == LEAK:
            raise GeneratorExit
        if message == WHO:
            return self.context.incarnation
        return message


async def test_a_generator_exit_escaping_receive_is_a_crash_and_its_asker_gets_actor_crashed_error() -> None:
    # on asyncio a GeneratorExit handed to the asker's task as itself closed its coroutines, so the
    # block's exit failed with "coroutine ignored GeneratorExit"
    async with open_supervisor([ChildSpec("a", Closing), ChildSpec("b", Closing)]) as sup:
        with pytest.raises(ActorCrashedError) as caught:
            await sup.ref("a").ask(LEAK, timeout=5)
        assert isinstance(caught.value.__cause__, GeneratorExit)
        await anyio.lowlevel.checkpoint()
        assert await sup.ref("a").ask(WHO, timeout=5) == 2  # restarted once
        assert await sup.ref("b").ask(WHO, timeout=5) == 1


async def test_a_generator_exit_escaping_on_start_fails_the_start_with_actor_crashed_error() -> None:
    with pytest.raises(ChildStartError) as caught:
        async with open_supervisor([ChildSpec("a", lambda: Closing(in_start=True))]):
            pytest.fail("the block must not run")
    assert isinstance(caught.value.__cause__, ActorCrashedError)
    assert isinstance(caught.value.__cause__.__cause__, GeneratorExit)


def test_escaped_cancellation_counts_a_generator_exit_as_a_crash_outside_any_loop() -> None:
    crash = escaped_cancellation("a", GeneratorExit())
    assert isinstance(crash, ActorCrashedError)
    assert "GeneratorExit" in str(crash)

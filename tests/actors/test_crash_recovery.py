"""A crash ends the incarnation, not the queue: the mailbox survives, the failing message is
dead-lettered or redelivered first, and the next incarnation is a fresh instance."""

from typing import Any

import anyio
import pytest

from actors import Actor, DeadLetterReason, Redelivery
from supervisor import ChildSpec, open_supervisor
from tests.actors.helpers import Boom, collect_dead_letters, mock_clock

pytestmark = pytest.mark.anyio


class CrashesOnTwo(Actor):
    """Crashes on message 2 at its first attempt. Records (incarnation, how many messages this very
    instance saw before, message): a fresh instance starts counting from 0 again."""

    def __init__(self, log: list[tuple[int, int, Any]]) -> None:
        self.log = log
        self.seen = 0

    async def receive(self, message: Any) -> Any:
        if message == 2 and self.context.attempt == 1:
            raise Boom("two")
        self.log.append((self.context.incarnation, self.seen, message))
        self.seen += 1
        return message


async def test_a_crash_mid_queue_dead_letters_the_message_and_the_next_incarnation_takes_the_rest() -> None:
    log: list[tuple[int, int, Any]] = []
    hub, letters = collect_dead_letters()
    async with open_supervisor([ChildSpec("A", lambda: CrashesOnTwo(log))], dead_letters=hub) as sup:
        for n in range(1, 11):
            sup.ref("A").tell_nowait(n)
        assert await sup.ref("A").ask("done") == "done"  # behind 1..10 in the surviving mailbox
    assert log == [(1, 0, 1)] + [(2, i, n) for i, n in enumerate([*range(3, 11), "done"])]
    assert len(letters) == 1
    letter = letters[0]
    assert (letter.message, letter.reason, letter.recipient, letter.attempts) == (
        2,
        DeadLetterReason.CRASHED,
        "A",
        1,
    )
    assert isinstance(letter.error, Boom)


async def test_with_redelivery_the_crashing_message_is_delivered_again_first() -> None:
    log: list[tuple[int, int, Any]] = []
    hub, letters = collect_dead_letters()
    spec = ChildSpec("A", lambda: CrashesOnTwo(log), redelivery=Redelivery(max_redeliveries=1))
    async with open_supervisor([spec], dead_letters=hub) as sup:
        for n in range(1, 11):
            sup.ref("A").tell_nowait(n)
        assert await sup.ref("A").ask("done") == "done"
    assert log == [(1, 0, 1)] + [(2, i, n) for i, n in enumerate([*range(2, 11), "done"])]
    assert letters == []


class AlwaysCrashesOnTwo(Actor):
    def __init__(self, log: list[tuple[int, Any]]) -> None:
        self.log = log

    async def receive(self, message: Any) -> Any:
        self.log.append((self.context.attempt, message))
        if message == 2:
            raise Boom("two again")
        return message


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_message_that_exhausts_its_redeliveries_is_dead_lettered_after_the_delays() -> None:
    log: list[tuple[int, Any]] = []
    hub, letters = collect_dead_letters()
    redelivery = Redelivery(max_redeliveries=2, delay=float)  # attempt n waits n s
    spec = ChildSpec("A", lambda: AlwaysCrashesOnTwo(log), redelivery=redelivery)
    async with open_supervisor([spec], intensity=None, dead_letters=hub) as sup:
        began = anyio.current_time()
        for n in (1, 2, 3):
            sup.ref("A").tell_nowait(n)
        assert await sup.ref("A").ask("done") == "done"
        # pauses before deliveries 2 and 3 of message 2: 2 s + 3 s
        assert anyio.current_time() - began == pytest.approx(5.0)
    assert log == [(1, 1), (1, 2), (2, 2), (3, 2), (1, 3), (1, "done")]
    assert [(dl.message, dl.reason, dl.attempts) for dl in letters] == [
        (2, DeadLetterReason.CRASHED, 3)
    ]

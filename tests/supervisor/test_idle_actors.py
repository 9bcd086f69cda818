"""Idle actors hold no task: an actor child whose mailbox stayed empty past its supervisor's linger gives
up its task, and its next message (or a stop request) gives it a new one. The incarnation lives on in
between: its state, one ``on_start`` and one ``on_stop`` per incarnation, and every supervision guarantee
(restarts, kills, shutdown timeouts, order, asks, watches, statistics)."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import tracemalloc
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import sniffio
import trio

from actors import Actor, Redelivery, Terminated
from supervisor import (
    BRUTAL_KILL,
    ChildSpec,
    Intensity,
    Strategy,
    SupervisorSpec,
    open_supervisor,
)
from tests.actors.helpers import (
    CRASH,
    WHO,
    Boom,
    Journal,
    Sleep,
    collect_dead_letters,
    mock_clock,
    scripted,
    wait_until,
    worker,
)

pytestmark = pytest.mark.anyio

LINGER = 1.0
PAST_LINGER = 2 * LINGER + 0.5  # the sweep retires a task parked for LINGER to 2 * LINGER seconds


class Tally(Actor):
    """Counts its messages in its own state, which must survive its task going away."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.count = 0

    async def on_start(self) -> None:
        self.journal.record("start", self.context.name)

    async def on_stop(self) -> None:
        self.journal.record("stop", self.context.name)

    async def receive(self, message: Any) -> Any:
        if message == CRASH:
            raise Boom("tally crashed")
        if isinstance(message, Sleep):
            await anyio.sleep(message.seconds)
        self.count += 1
        self.journal.received[self.context.name].append(message)
        return self.count


def tally(child_id: str, journal: Journal, **options: Any) -> ChildSpec:
    return ChildSpec(child_id, lambda: Tally(journal), **options)


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_an_actor_idle_past_the_linger_gives_up_its_task_and_its_next_message_brings_it_back() -> None:
    journal = Journal()
    async with open_supervisor([tally("A", journal)], linger=LINGER) as sup:
        a = sup.ref("A")
        assert a.statistics().idle  # started, nothing to do yet: no task
        assert await a.ask("one") == 1
        assert not a.statistics().idle
        await anyio.sleep(LINGER / 2)
        assert not a.statistics().idle  # not idle long enough
        await anyio.sleep(PAST_LINGER)
        stats = a.statistics()
        assert (stats.idle, stats.alive, stats.incarnation, stats.processed) == (True, True, 1, 1)
        assert [c.state for c in sup.which_children()] == ["running"]
        assert await a.ask("two") == 2  # the same incarnation, its state kept
        assert a.statistics().incarnation == 1
    assert journal.events == [("start", "A"), ("stop", "A")]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_on_start_and_on_stop_run_once_per_incarnation_however_many_activations() -> None:
    journal = Journal()
    async with open_supervisor([tally("A", journal)], linger=LINGER) as sup:
        for n in range(5):
            sup.ref("A").tell_nowait(n)
            await anyio.sleep(PAST_LINGER)
            assert sup.ref("A").statistics().idle
        assert await sup.ref("A").ask("last") == 6
    assert journal.events == [("start", "A"), ("stop", "A")]
    assert journal.received["A"] == [0, 1, 2, 3, 4, "last"]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_stopping_an_idle_actor_runs_its_on_stop_and_a_brutal_kill_does_not() -> None:
    journal = Journal()
    notices: list[Terminated] = []
    children = [tally("graceful", journal), tally("brutal", journal, shutdown=BRUTAL_KILL)]
    async with open_supervisor(children, linger=LINGER) as sup:
        for name in ("graceful", "brutal"):
            sup.ref(name).watch(notices.append)
            await sup.ref(name).ask("hello")
        await anyio.sleep(PAST_LINGER)
        assert all(sup.ref(name).statistics().idle for name in ("graceful", "brutal"))
        journal.clear()
        await sup.terminate_child("graceful")
        await sup.terminate_child("brutal")
        assert journal.events == [("stop", "graceful")]
        assert [c.state for c in sup.which_children()] == ["stopped", "stopped"]
        assert sorted(n.name for n in notices) == ["brutal", "graceful"]
        # and they come back as new incarnations
        await sup.restart_child("brutal")
        assert await sup.ref("brutal").ask("again") == 1
        assert sup.ref("brutal").statistics().incarnation == 2


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_reactivated_busy_actor_is_cancelled_when_its_shutdown_timeout_runs_out() -> None:
    journal = Journal()
    async with open_supervisor([tally("A", journal, shutdown=2.0)], linger=LINGER) as sup:
        await sup.ref("A").ask("hello")
        await anyio.sleep(PAST_LINGER)
        assert sup.ref("A").statistics().idle
        sup.ref("A").tell_nowait(Sleep(100.0))
        await anyio.sleep(0.1)
        began = anyio.current_time()
        await sup.terminate_child("A")
        assert anyio.current_time() - began == pytest.approx(2.0)
    assert journal.of("stop") == []  # killed: no on_stop


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_reactivated_actor_that_crashes_is_restarted_and_its_message_redelivered() -> None:
    journal = Journal()
    hub, letters = collect_dead_letters()
    spec = tally("A", journal, redelivery=Redelivery(max_redeliveries=1))
    async with open_supervisor([spec], linger=LINGER, dead_letters=hub) as sup:
        await sup.ref("A").ask("hello")
        await anyio.sleep(PAST_LINGER)
        sup.ref("A").tell_nowait(CRASH)
        sup.ref("A").tell_nowait("after")
        assert await sup.ref("A").ask(WHO) == 2  # count of the third incarnation: "after", WHO
        assert sup.ref("A").statistics().incarnation == 3
        assert sup.which_children()[0].restarts == 2
    assert journal.received["A"] == ["hello", "after", WHO]
    assert [letter.message for letter in letters] == [CRASH]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_an_ask_to_an_idle_actor_that_is_too_slow_times_out_and_the_actor_lives_on() -> None:
    journal = Journal()
    async with open_supervisor([tally("A", journal)], linger=LINGER) as sup:
        await anyio.sleep(PAST_LINGER)
        with pytest.raises(TimeoutError):
            await sup.ref("A").ask(Sleep(10.0), timeout=1.0)
        assert await sup.ref("A").ask("next") == 2


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_one_for_all_stops_idle_siblings_with_their_on_stop_and_restarts_them() -> None:
    journal = Journal()
    children = [worker(n, journal) for n in "ABC"]
    async with open_supervisor(children, strategy=Strategy.ONE_FOR_ALL, linger=LINGER) as sup:
        for n in "ABC":
            await sup.ref(n).ask(WHO)
        await anyio.sleep(PAST_LINGER)
        journal.clear()
        sup.ref("B").tell_nowait(CRASH)
        await wait_until(lambda: len(journal.of("start")) == 3)
        assert journal.events == [
            ("stop", "B"),
            ("stop", "C"),
            ("stop", "A"),
            ("start", "A"),
            ("start", "B"),
            ("start", "C"),
        ]
        assert [await sup.ref(n).ask(WHO) for n in "ABC"] == [2, 2, 2]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_nested_supervisors_retire_their_idle_actors_with_their_own_linger() -> None:
    journal = Journal()
    inner = SupervisorSpec([ChildSpec("x", scripted(journal))], linger=10.0)
    async with open_supervisor([ChildSpec("inner", inner)], linger=LINGER) as sup:
        x = sup.supervisor("inner").ref("x")
        await x.ask(WHO)
        await anyio.sleep(PAST_LINGER)
        assert not x.statistics().idle  # the inner linger is 10 s
        await anyio.sleep(20.0)
        assert x.statistics().idle
        assert await x.ask(WHO) == 1


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_with_linger_none_an_actor_keeps_its_task() -> None:
    journal = Journal()
    async with open_supervisor([tally("A", journal)], linger=None) as sup:
        assert not sup.ref("A").statistics().idle
        await sup.ref("A").ask("hello")
        await anyio.sleep(100.0)
        assert not sup.ref("A").statistics().idle


async def test_messages_sent_to_idle_actors_are_processed_in_the_order_sent() -> None:
    journal = Journal()
    linger = 0.02
    async with open_supervisor([tally(n, journal) for n in "AB"], linger=linger) as sup:
        for _round in range(3):
            await wait_until(lambda: all(sup.ref(n).statistics().idle for n in "AB"))
            for i in range(200):
                sup.ref("A").tell_nowait(i)
                await sup.ref("B").tell(i)
            assert await sup.ref("A").ask("end") == await sup.ref("B").ask("end")
        expected = [*range(200), "end"] * 3
        assert journal.received["A"] == journal.received["B"] == expected
        assert sup.ref("A").statistics().incarnation == 1
    assert journal.count("start", "A") == journal.count("stop", "A") == 1


async def test_many_idle_actors_wake_at_once_and_each_handles_its_message() -> None:
    journal = Journal()
    names = [f"a{i}" for i in range(300)]
    async with open_supervisor(
        [tally(n, journal) for n in names], linger=0.02, intensity=Intensity(0, 5.0)
    ) as sup:
        for expected in (1, 2):
            await wait_until(lambda: all(sup.ref(n).statistics().idle for n in names))
            for n in names:
                sup.ref(n).tell_nowait("ping")
            await wait_until(
                lambda want=expected: all(sup.ref(n).statistics().processed == want for n in names)  # type: ignore[misc]
            )
        snapshot = sup.snapshot()
        assert {node.state for node in snapshot.children} == {"running"}
    assert all(journal.count("start", n) == journal.count("stop", n) == 1 for n in names)


def test_linger_must_be_a_positive_number_of_seconds_or_none() -> None:
    for bad in (0, -1.0, float("inf"), float("nan"), "1"):
        with pytest.raises(ValueError, match="linger"):
            SupervisorSpec(linger=bad)  # type: ignore[arg-type]
    assert SupervisorSpec(linger=None).linger is None
    assert SupervisorSpec().linger == 1.0


WHERE: contextvars.ContextVar[str] = contextvars.ContextVar("WHERE", default="nowhere")


class Situated(Actor):
    """Sets a context variable in on_start and reports what receive sees."""

    async def on_start(self) -> None:
        WHERE.set(f"inside {self.context.name}")

    async def receive(self, message: Any) -> Any:
        return WHERE.get()


class Plain(Actor):
    async def receive(self, message: Any) -> Any:
        return WHERE.get()


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_reactivated_actor_sees_the_context_its_on_start_set_and_never_the_senders() -> None:
    children = [ChildSpec("situated", Situated), ChildSpec("plain", Plain)]
    async with open_supervisor(children, linger=LINGER) as sup:
        WHERE.set("the sender's")
        for _round in range(3):
            await anyio.sleep(PAST_LINGER)
            assert sup.ref("situated").statistics().idle
            assert await sup.ref("situated").ask("where") == "inside situated"
            assert await sup.ref("plain").ask("where") == "nowhere"


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_brutal_kill_right_after_a_message_woke_an_idle_actor_ends_it_without_on_stop() -> None:
    journal = Journal()
    notices: list[Terminated] = []
    async with open_supervisor([tally("A", journal, shutdown=BRUTAL_KILL)], linger=LINGER) as sup:
        a = sup.ref("A")
        a.watch(notices.append)
        assert a.statistics().idle
        a.tell_nowait(Sleep(10.0))  # its activation is asked for, and has not run yet
        await sup.terminate_child("A")
        assert [c.state for c in sup.which_children()] == ["stopped"]
        assert not a.alive
        # the supervisor goes on: another activation after the kill starts afresh
        await sup.restart_child("A")
        assert await sup.ref("A").ask("again") == 1
    # killed both times (the shutdown too is a brutal kill): two starts, never an on_stop
    assert journal.events == [("start", "A"), ("start", "A")]
    assert [n.name for n in notices] == ["A"]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_activations_end_and_begin_again_in_waves_while_busy_actors_keep_their_task() -> None:
    journal = Journal()
    names = [f"a{i}" for i in range(20)]
    async with open_supervisor([tally(n, journal) for n in [*names, "busy"]], linger=LINGER) as sup:
        busy = sup.ref("busy")
        busy.tell_nowait(Sleep(100.0))  # holds its activation through every wave below
        for wave in (1, 2, 3):
            for n in names:
                sup.ref(n).tell_nowait(wave)
            await anyio.sleep(PAST_LINGER)
            assert all(sup.ref(n).statistics().idle for n in names)
            assert all(sup.ref(n).statistics().processed == wave for n in names)
            assert not busy.statistics().idle
        assert await busy.ask("after the sleep") == 2
    assert all(journal.count("start", n) == journal.count("stop", n) == 1 for n in [*names, "busy"])


class Quiet(Actor):
    async def receive(self, message: Any) -> None:
        pass


async def test_an_idle_actor_child_costs_a_bounded_number_of_bytes() -> None:
    # a regression guard, not the benchmark (benchmarks/bench_memory.py): an idle actor child is one
    # object for its cell, mailbox, context and supervisor record, one ActorRef and its Actor, plus
    # its share of the tables of tasks that ran; 2,000 actors, so the tables weigh more than at 100,000
    n = 2_000
    specs = [ChildSpec(f"q{i}", Quiet) for i in range(n)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        async with open_supervisor(specs, linger=0.05, intensity=None) as sup:
            refs = [sup.ref(spec.id) for spec in specs]
            for ref in refs:
                ref.tell_nowait("one")
            await wait_until(lambda: all(r.statistics().processed == 1 and r.statistics().idle for r in refs))
            # an actor is idle just before its task ends: let the last tasks and their group exit
            await anyio.sleep(0.1)
            gc.collect()
            per_actor = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    assert per_actor < 700, f"{per_actor:.0f} bytes per idle actor"


class Activated(Actor):
    """Sets a context variable in on_activate (not on_start) and reports what receive sees."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def on_start(self) -> None:
        self.journal.record("start", self.context.name)

    def on_activate(self) -> None:
        self.journal.record("activate", self.context.name)
        WHERE.set(f"activated {self.context.name}")

    async def receive(self, message: Any) -> Any:
        return WHERE.get()


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_on_activate_runs_after_on_start_and_at_each_wake_up_in_the_task_that_receives() -> None:
    journal = Journal()
    async with open_supervisor([ChildSpec("A", lambda: Activated(journal))], linger=LINGER) as sup:
        a = sup.ref("A")
        WHERE.set("the sender's")
        for _round in range(3):
            assert await a.ask("where") == "activated A"
            await anyio.sleep(PAST_LINGER)
            assert a.statistics().idle
        # a variable set per activation leaves the incarnation no context of its own to keep
        assert sup._by_id["A"].task_context is None  # type: ignore[union-attr]
        assert WHERE.get() == "the sender's"
    assert journal.events[0] == ("start", "A")
    assert journal.count("start", "A") == 1
    # three wake-ups, and the task that ran its on_stop at the shutdown
    assert journal.count("activate", "A") == 4



class FailsToActivateTwice(Actor):
    activations = 0

    def on_activate(self) -> None:
        FailsToActivateTwice.activations += 1
        if FailsToActivateTwice.activations <= 2:
            raise RuntimeError("on_activate fails")

    async def receive(self, message: Any) -> Any:
        return message


async def test_an_on_activate_that_raises_crashes_the_incarnation_and_the_restart_takes_the_message() -> None:
    FailsToActivateTwice.activations = 0
    with anyio.fail_after(30):
        async with open_supervisor(
            [ChildSpec("flaky", FailsToActivateTwice)], intensity=Intensity(5, 60.0)
        ) as sup:
            assert await sup.ref("flaky").ask("hello", timeout=20) == "hello"
            assert [child.restarts for child in sup.which_children()] == [2]
    assert FailsToActivateTwice.activations == 3


def call_outside_any_task(function: Any, *args: Any) -> None:
    """Run ``function(*args)`` soon in the event loop's thread but in no task: an asyncio loop
    callback (as ``call_soon``, a signal handler or a protocol's runs), trio's ``run_sync_soon``."""
    if sniffio.current_async_library() == "asyncio":
        # in an empty context, as a callback set up by plain asyncio code (asyncio.run, uvicorn)
        # runs: under anyio's runner the callback would inherit the variable naming the library
        asyncio.get_running_loop().call_soon(function, *args, context=contextvars.Context())
    else:
        trio.lowlevel.current_trio_token().run_sync_soon(function, *args)


async def test_a_tell_from_outside_any_task_wakes_an_idle_actor() -> None:
    """On asyncio the activation used to fail there (anyio can start nothing outside a task): the
    message was lost, and the actor wedged for good (a mailbox no longer idle, with no task)."""
    journal = Journal()
    errors: list[BaseException] = []

    def tell(ref: Any, message: str) -> None:
        try:
            ref.tell_nowait(message)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)

    with anyio.fail_after(30):
        async with open_supervisor([ChildSpec("t", lambda: Tally(journal))], linger=LINGER) as root:
            ref = root.ref("t")
            assert ref.statistics().idle  # nothing to do yet: no task
            call_outside_any_task(tell, ref, "one")
            await wait_until(lambda: journal.received["t"] == ["one"] or bool(errors))
            assert errors == []
            # and it is not wedged: the next message, from a task, is processed as well
            assert await ref.ask("two", timeout=10) == 2


async def test_an_actor_woken_from_outside_any_task_just_before_the_tree_stops_is_stopped_in_order() -> None:
    """Its activation may still be to come when the stop begins: it runs its ``on_stop`` all the
    same, and the message that woke it is processed or dead-lettered, never dropped unseen."""
    journal = Journal()
    hub, letters = collect_dead_letters()
    with anyio.fail_after(30):
        async with open_supervisor(
            [ChildSpec("t", lambda: Tally(journal))], linger=LINGER, dead_letters=hub
        ) as root:
            ref = root.ref("t")
            call_outside_any_task(ref.tell_nowait, "one")
            # the callback runs at the next turn of the loop, the stop request right after it
            await anyio.lowlevel.checkpoint()
    assert journal.of("stop") == ["t"]
    assert journal.received["t"] == ["one"] or [letter.message for letter in letters] == ["one"]

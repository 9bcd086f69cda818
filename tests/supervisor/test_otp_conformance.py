"""OTP conformance: one test per rule of Erlang/OTP's ``supervisor`` module (strategies, restart types,
intensity and period, shutdown, start and stop order, the child-management calls and their error cases,
escalation), plus the odd exits a Python child can produce (BaseExceptions, exception groups,
exceptions that cannot be printed, hooks that raise or hang) and refs used from a foreign thread.

Where actorbus departs from OTP on purpose, docs/supervision.md says so and the test checks our rule.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import anyio
import pytest

from actors import Actor, ActorRef, ActorStoppedError, Terminated, WrongThreadError
from supervisor import (
    BRUTAL_KILL,
    INFINITY,
    Backoff,
    ChildNotFoundError,
    ChildSpec,
    ChildStartError,
    Intensity,
    Restart,
    RestartIntensityExceeded,
    Strategy,
    Supervisor,
    SupervisorSpec,
    open_supervisor,
)
from tests.actors.helpers import (
    CRASH,
    STOP,
    WHO,
    Boom,
    Journal,
    Scripted,
    Sleep,
    expect_failure,
    mock_clock,
    wait_until,
    worker,
)

pytestmark = pytest.mark.anyio


def states(sup: Supervisor) -> dict[str, str]:
    return {c.id: c.state for c in sup.which_children()}


def incarnations(sup: Supervisor) -> dict[str, int]:
    return {c.id: c.restarts + 1 for c in sup.which_children()}


class SlowStart(Scripted):
    """Its ``on_start`` takes ``seconds`` and records "started" once done."""

    def __init__(self, journal: Journal, seconds: float) -> None:
        super().__init__(journal)
        self.seconds = seconds

    async def on_start(self) -> None:
        await super().on_start()
        await anyio.sleep(self.seconds)
        self.journal.record("started", self.context.name)


class StartFails(Scripted):
    """Its ``on_start`` raises from incarnation ``failing_from`` on."""

    def __init__(self, journal: Journal, failing_from: int = 1) -> None:
        super().__init__(journal)
        self.failing_from = failing_from

    async def on_start(self) -> None:
        await super().on_start()
        if self.context.incarnation >= self.failing_from:
            raise Boom(f"{self.context.name} cannot start")


# -- strategies ------------------------------------------------------------------------------------


async def test_one_for_one_restarts_only_the_child_that_exited() -> None:
    journal = Journal()
    async with open_supervisor([worker(n, journal) for n in "ABC"], strategy=Strategy.ONE_FOR_ONE) as sup:
        journal.clear()
        sup.ref("B").tell_nowait(CRASH)
        assert await sup.ref("B").ask(WHO) == 2
        assert journal.events == [("stop", "B"), ("start", "B")]
        assert [await sup.ref(n).ask(WHO) for n in "AC"] == [1, 1]


async def test_one_for_all_terminates_the_others_in_reverse_start_order_then_restarts_all_in_start_order() -> None:
    journal = Journal()
    async with open_supervisor([worker(n, journal) for n in "ABCD"], strategy=Strategy.ONE_FOR_ALL) as sup:
        journal.clear()
        sup.ref("B").tell_nowait(CRASH)
        await wait_until(lambda: len(journal.of("start")) == 4)
        assert journal.events == [
            ("stop", "B"), ("stop", "D"), ("stop", "C"), ("stop", "A"),
            ("start", "A"), ("start", "B"), ("start", "C"), ("start", "D"),
        ]  # fmt: skip
        assert [await sup.ref(n).ask(WHO) for n in "ABCD"] == [2, 2, 2, 2]


async def test_rest_for_one_restarts_the_child_and_those_started_after_it_leaving_earlier_ones() -> None:
    journal = Journal()
    async with open_supervisor([worker(n, journal) for n in "ABCD"], strategy=Strategy.REST_FOR_ONE) as sup:
        journal.clear()
        sup.ref("B").tell_nowait(CRASH)
        await wait_until(lambda: len(journal.of("start")) == 3)
        assert journal.events == [
            ("stop", "B"), ("stop", "D"), ("stop", "C"),
            ("start", "B"), ("start", "C"), ("start", "D"),
        ]  # fmt: skip
        assert [await sup.ref(n).ask(WHO) for n in "ABCD"] == [1, 2, 2, 2]


async def test_rest_for_one_restarts_only_the_last_child_when_the_last_child_exits() -> None:
    journal = Journal()
    async with open_supervisor([worker(n, journal) for n in "ABC"], strategy=Strategy.REST_FOR_ONE) as sup:
        journal.clear()
        sup.ref("C").tell_nowait(CRASH)
        assert await sup.ref("C").ask(WHO) == 2
        assert journal.events == [("stop", "C"), ("start", "C")]


@pytest.mark.parametrize("strategy", [Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE])
async def test_children_added_with_start_child_belong_to_the_strategy_group(strategy: Strategy) -> None:
    journal = Journal()
    async with open_supervisor([worker("A", journal)], strategy=strategy) as sup:
        await sup.start_child(worker("dyn", journal))
        journal.clear()
        sup.ref("A").tell_nowait(CRASH)
        await wait_until(lambda: len(journal.of("start")) == 2)
        assert journal.events == [("stop", "A"), ("stop", "dyn"), ("start", "A"), ("start", "dyn")]
        assert await sup.ref("dyn").ask(WHO) == 2


async def test_a_group_restart_counts_as_one_restart_toward_the_intensity() -> None:
    journal = Journal()
    children = [worker(n, journal) for n in "ABC"]
    async with open_supervisor(children, strategy=Strategy.ONE_FOR_ALL, intensity=Intensity(1, 60.0)) as sup:
        sup.ref("A").tell_nowait(CRASH)
        await wait_until(lambda: len(journal.of("start")) == 6)
        assert sup.restarts == 1
        assert [c.restarts for c in sup.which_children()] == [1, 1, 1]
        assert states(sup) == {"A": "running", "B": "running", "C": "running"}


async def test_a_permanent_childs_normal_exit_restarts_its_whole_one_for_all_group() -> None:
    journal = Journal()
    async with open_supervisor([worker(n, journal) for n in "AB"], strategy=Strategy.ONE_FOR_ALL) as sup:
        journal.clear()
        sup.ref("A").tell_nowait(STOP)
        await wait_until(lambda: len(journal.of("start")) == 2)
        assert journal.events == [("stop", "A"), ("stop", "B"), ("start", "A"), ("start", "B")]


@pytest.mark.parametrize("strategy", [Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE])
async def test_a_temporary_childs_crash_restarts_no_sibling_whatever_the_strategy(strategy: Strategy) -> None:
    journal = Journal()
    children = [worker("tmp", journal, restart=Restart.TEMPORARY), worker("B", journal)]
    async with open_supervisor(children, strategy=strategy) as sup:
        journal.clear()
        sup.ref("tmp").tell_nowait(CRASH)
        await wait_until(lambda: "tmp" not in states(sup))
        assert await sup.ref("B").ask(WHO) == 1
        assert journal.events == [("stop", "tmp")]
        assert sup.restarts == 0


@pytest.mark.parametrize("strategy", [Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE])
async def test_a_group_restart_leaves_a_child_stopped_by_terminate_child_stopped(strategy: Strategy) -> None:
    # a departure from OTP, whose group restart starts such a child again (docs/supervision.md)
    journal = Journal()
    async with open_supervisor([worker(n, journal) for n in "ABC"], strategy=strategy) as sup:
        await sup.terminate_child("C")
        journal.clear()
        sup.ref("A").tell_nowait(CRASH)
        await wait_until(lambda: len(journal.of("start")) == 2)
        assert journal.events == [("stop", "A"), ("stop", "B"), ("start", "A"), ("start", "B")]
        assert states(sup) == {"A": "running", "B": "running", "C": "stopped"}
        assert await sup.restart_child("C") is sup.ref("C")


async def test_a_group_member_failing_to_restart_restarts_the_group_again_and_counts_toward_the_intensity() -> None:
    journal = Journal()

    class FailsSecondStart(Scripted):
        async def on_start(self) -> None:
            await super().on_start()
            if self.context.incarnation == 2:
                raise Boom("second start fails")

    failing = ChildSpec("B", functools.partial(FailsSecondStart, journal))
    children = [worker("A", journal), failing, worker("C", journal)]
    async with open_supervisor(children, strategy=Strategy.ONE_FOR_ALL, intensity=Intensity(2, 60.0)) as sup:
        journal.clear()
        sup.ref("A").tell_nowait(CRASH)
        await wait_until(lambda: states(sup) == dict.fromkeys("ABC", "running") and journal.count("start", "C") == 1)
        # A and B restart, B fails; then the whole group again: A, B (its third start), C
        assert journal.of("start") == ["A", "B", "A", "B", "C"]
        assert sup.restarts == 2
        assert [await sup.ref(n).ask(WHO) for n in "ABC"] == [3, 3, 2]


# -- restart types --------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", [CRASH, STOP], ids=["crash", "normal-exit"])
async def test_a_permanent_child_is_always_restarted(ending: str) -> None:
    journal = Journal()
    async with open_supervisor([worker("P", journal, restart=Restart.PERMANENT)]) as sup:
        sup.ref("P").tell_nowait(ending)
        assert await sup.ref("P").ask(WHO) == 2
        assert states(sup) == {"P": "running"}


async def test_a_transient_child_is_restarted_only_after_an_abnormal_exit_and_keeps_its_spec() -> None:
    journal = Journal()
    async with open_supervisor([worker("T", journal, restart=Restart.TRANSIENT)]) as sup:
        ref = sup.ref("T")
        ref.tell_nowait(CRASH)
        assert await ref.ask(WHO) == 2
        ref.tell_nowait(STOP)
        await wait_until(lambda: states(sup) == {"T": "stopped"})
        assert not ref.alive
        assert sup.restarts == 1  # the normal exit was no restart
        assert await sup.restart_child("T") is ref  # the spec stays: OTP keeps a transient child's spec


@pytest.mark.parametrize("ending", [CRASH, STOP], ids=["crash", "normal-exit"])
async def test_a_temporary_child_is_never_restarted_and_its_spec_is_deleted_when_it_exits(ending: str) -> None:
    journal = Journal()
    async with open_supervisor([worker("tmp", journal, restart=Restart.TEMPORARY), worker("other", journal)]) as sup:
        ref = sup.ref("tmp")
        ref.tell_nowait(ending)
        await wait_until(lambda: "tmp" not in states(sup))
        assert not ref.alive
        assert sup.restarts == 0
        for call in (sup.restart_child, sup.delete_child, sup.terminate_child):
            with pytest.raises(ChildNotFoundError):
                await call("tmp")
        assert journal.count("start", "tmp") == 1


async def test_terminating_a_temporary_child_deletes_its_spec() -> None:
    journal = Journal()
    async with open_supervisor([worker("tmp", journal, restart=Restart.TEMPORARY)]) as sup:
        await sup.terminate_child("tmp")
        assert sup.which_children() == []
        with pytest.raises(ChildNotFoundError):
            await sup.restart_child("tmp")


@pytest.mark.parametrize("restart", [Restart.TRANSIENT, Restart.TEMPORARY])
async def test_an_exit_that_is_not_restarted_never_counts_toward_the_intensity(restart: Restart) -> None:
    journal = Journal()
    ending = STOP if restart is Restart.TRANSIENT else CRASH
    async with open_supervisor(
        [worker("X", journal, restart=restart), worker("other", journal)], intensity=Intensity(0, 60.0)
    ) as sup:
        sup.ref("X").tell_nowait(ending)
        await wait_until(lambda: states(sup).get("X", "stopped") == "stopped")
        assert await sup.ref("other").ask(WHO) == 1
        assert sup.snapshot().state == "running"


# -- restart intensity and period -------------------------------------------------------------------


async def test_max_restarts_within_the_period_are_survived_and_one_more_stops_all_children_newest_first() -> None:
    journal = Journal()
    notices: list[Terminated] = []
    with pytest.raises(RestartIntensityExceeded) as failure:
        async with open_supervisor([worker(n, journal) for n in "ABC"], intensity=Intensity(3, 60.0)) as sup:
            sup.watch(notices.append)
            for incarnation in (2, 3, 4):
                sup.ref("B").tell_nowait(CRASH)
                assert await sup.ref("B").ask(WHO) == incarnation
            journal.clear()
            sup.ref("B").tell_nowait(CRASH)
            await expect_failure()
    assert journal.events == [("stop", "B"), ("stop", "C"), ("stop", "A")]
    assert isinstance(failure.value.__cause__, Boom)
    assert notices == [Terminated("root", failure.value)]
    assert set(states(sup).values()) == {"stopped"}


async def test_restarts_of_different_children_add_up_toward_the_one_intensity_of_their_supervisor() -> None:
    journal = Journal()
    with pytest.raises(RestartIntensityExceeded):
        async with open_supervisor([worker(n, journal) for n in "AB"], intensity=Intensity(1, 60.0)) as sup:
            sup.ref("A").tell_nowait(CRASH)
            assert await sup.ref("A").ask(WHO) == 2
            sup.ref("B").tell_nowait(CRASH)
            await expect_failure()
    assert journal.of("stop") == ["A", "B", "A"]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_restart_exactly_period_seconds_old_still_counts_as_in_otp() -> None:
    journal = Journal()
    with pytest.raises(RestartIntensityExceeded):
        async with open_supervisor([worker("W", journal)], intensity=Intensity(1, 5.0)) as sup:
            sup.ref("W").tell_nowait(CRASH)
            assert await sup.ref("W").ask(WHO) == 2
            await anyio.sleep(5.0)
            sup.ref("W").tell_nowait(CRASH)
            await expect_failure()


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_restarts_older_than_the_period_no_longer_count() -> None:
    journal = Journal()
    async with open_supervisor([worker("W", journal)], intensity=Intensity(1, 5.0)) as sup:
        for incarnation in range(2, 8):
            sup.ref("W").tell_nowait(CRASH)
            assert await sup.ref("W").ask(WHO) == incarnation
            await anyio.sleep(5.01)
        assert sup.snapshot().state == "running"


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_the_period_is_a_sliding_window_not_a_fixed_interval() -> None:
    journal = Journal()
    with pytest.raises(RestartIntensityExceeded):
        async with open_supervisor([worker("W", journal)], intensity=Intensity(2, 10.0)) as sup:
            # restarts at t=0, 6, 12: never more than 2 within 10 s
            for incarnation in (2, 3, 4):
                sup.ref("W").tell_nowait(CRASH)
                assert await sup.ref("W").ask(WHO) == incarnation
                await anyio.sleep(6.0)
            # t=18 and t=19 with t=12: three within 10 s
            await anyio.sleep(0.0)
            sup.ref("W").tell_nowait(CRASH)
            assert await sup.ref("W").ask(WHO) == 5
            await anyio.sleep(1.0)
            sup.ref("W").tell_nowait(CRASH)
            await expect_failure()


async def test_an_intensity_of_zero_gives_up_on_the_first_restart() -> None:
    journal = Journal()
    with pytest.raises(RestartIntensityExceeded):
        async with open_supervisor([worker("W", journal)], intensity=Intensity(0, 60.0)) as sup:
            sup.ref("W").tell_nowait(CRASH)
            await expect_failure()
    assert journal.count("start", "W") == 1


async def test_a_nested_supervisor_that_gives_up_escalates_and_its_parent_restarts_it_with_fresh_children() -> None:
    journal = Journal()
    inner = SupervisorSpec([worker("x", journal), worker("y", journal)], intensity=Intensity(0, 60.0))
    async with open_supervisor([ChildSpec("inner", inner), worker("z", journal)]) as root:
        first = root.supervisor("inner")
        old_x = first.ref("x")
        old_x.tell_nowait(CRASH)
        await wait_until(lambda: first.incarnation == 2 and states(root)["inner"] == "running")
        assert root.restarts == 1
        assert not old_x.alive
        assert [await first.ref(n).ask(WHO) for n in "xy"] == [1, 1]
        assert await root.ref("z").ask(WHO) == 1


async def test_escalation_reaches_the_root_when_every_level_gives_up() -> None:
    journal = Journal()
    leaf = SupervisorSpec([worker("x", journal)], intensity=Intensity(0, 60.0))
    mid = SupervisorSpec([ChildSpec("leaf", leaf)], intensity=Intensity(0, 60.0))
    with pytest.raises(RestartIntensityExceeded) as failure:
        async with open_supervisor([ChildSpec("mid", mid), worker("z", journal)], intensity=Intensity(0, 60.0)) as root:
            root.supervisor("mid").supervisor("leaf").ref("x").tell_nowait(CRASH)
            await expect_failure()
    # root <- mid <- leaf <- x's crash
    assert failure.value.supervisor == "root"
    chain: list[BaseException] = []
    error: BaseException | None = failure.value
    while error is not None:
        chain.append(error)
        error = error.__cause__
    assert [getattr(e, "supervisor", None) for e in chain[:3]] == ["root", "mid", "leaf"]
    assert isinstance(chain[-1], Boom)
    assert journal.of("stop") == ["x", "z"]


# -- start and stop order, shutdown ---------------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_children_start_one_at_a_time_in_order_each_after_the_previous_start_completed() -> None:
    journal = Journal()
    children = [ChildSpec(n, functools.partial(SlowStart, journal, 1.0)) for n in "ABC"]
    async with open_supervisor(children):
        assert journal.events == [
            ("start", "A"), ("started", "A"),
            ("start", "B"), ("started", "B"),
            ("start", "C"), ("started", "C"),
        ]  # fmt: skip


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_nested_supervisor_starts_all_its_children_before_its_next_sibling_starts() -> None:
    journal = Journal()
    inner = SupervisorSpec([ChildSpec(n, functools.partial(SlowStart, journal, 1.0)) for n in ("i1", "i2")])
    children = [worker("A", journal), ChildSpec("inner", inner), worker("B", journal)]
    async with open_supervisor(children):
        assert journal.of("start") == ["A", "i1", "i2", "B"]
        assert journal.of("started") == ["i1", "i2"]


async def test_children_stop_in_reverse_start_order_dynamic_ones_first() -> None:
    journal = Journal()
    async with open_supervisor([worker(n, journal) for n in "AB"]) as sup:
        await sup.start_child(worker("C", journal))
        await sup.start_child(worker("D", journal))
    assert journal.of("stop") == ["D", "C", "B", "A"]


async def test_a_nested_supervisor_stops_all_its_children_before_its_earlier_siblings_stop() -> None:
    journal = Journal()
    inner = SupervisorSpec([worker(n, journal) for n in ("i1", "i2")])
    async with open_supervisor([worker("A", journal), ChildSpec("inner", inner), worker("B", journal)]):
        pass
    assert journal.of("stop") == ["B", "i2", "i1", "A"]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_brutal_kill_ends_the_child_at_once_without_its_stop_hook() -> None:
    journal = Journal()
    async with open_supervisor([worker("K", journal, shutdown=BRUTAL_KILL)]) as sup:
        ref = sup.ref("K")
        await sup.terminate_child("K")  # idle
        assert not ref.alive
        await sup.restart_child("K")
        ref.tell_nowait(Sleep(1000))  # busy
        await wait_until(lambda: journal.count("busy", "K") == 1)
        began = anyio.current_time()
        await sup.terminate_child("K")
        assert anyio.current_time() == began
    assert journal.of("stop") == []


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_shutdown_timeout_lets_a_child_stop_gracefully_and_kills_it_when_it_runs_out() -> None:
    journal = Journal()
    children = [worker("quick", journal, shutdown=10.0), worker("slow", journal, shutdown=10.0)]
    async with open_supervisor(children) as sup:
        began = anyio.current_time()
        await sup.terminate_child("quick")
        assert anyio.current_time() == began
        sup.ref("slow").tell_nowait(Sleep(1000))
        await wait_until(lambda: journal.count("busy", "slow") == 1)
        began = anyio.current_time()
        await sup.terminate_child("slow")
        assert anyio.current_time() - began == pytest.approx(10.0)
    assert journal.of("stop") == ["quick"]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_an_infinity_shutdown_waits_as_long_as_the_child_takes() -> None:
    journal = Journal()
    async with open_supervisor([worker("W", journal, shutdown=INFINITY)]) as sup:
        sup.ref("W").tell_nowait(Sleep(50_000))
        await wait_until(lambda: journal.count("busy", "W") == 1)
        began = anyio.current_time()
    assert anyio.current_time() - began == pytest.approx(50_000, abs=1)
    assert journal.received["W"] == [Sleep(50_000)]
    assert journal.of("stop") == ["W"]


def test_a_nested_supervisor_defaults_to_an_infinity_shutdown_and_an_actor_to_five_seconds() -> None:
    assert ChildSpec("sup", SupervisorSpec()).shutdown == INFINITY
    assert ChildSpec("actor", Scripted).shutdown == 5.0
    assert ChildSpec("sup", SupervisorSpec(), shutdown=2.0).shutdown == 2.0


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_nested_supervisor_with_the_default_shutdown_waits_for_its_slow_children() -> None:
    journal = Journal()
    inner = SupervisorSpec([worker("slow", journal, shutdown=INFINITY)])
    async with open_supervisor([ChildSpec("inner", inner)]) as root:
        root.supervisor("inner").ref("slow").tell_nowait(Sleep(60))
        await wait_until(lambda: journal.count("busy", "slow") == 1)
    assert journal.received["slow"] == [Sleep(60)]
    assert journal.of("stop") == ["slow"]


async def test_a_child_failing_to_start_aborts_the_supervisor_start_and_stops_the_started_ones_newest_first() -> None:
    journal = Journal()
    children = [
        worker("A", journal),
        worker("B", journal),
        ChildSpec("F", functools.partial(StartFails, journal)),
        worker("C", journal),
    ]
    with pytest.raises(ChildStartError) as failure:
        async with open_supervisor(children):
            pytest.fail("the body must not run")
    assert failure.value.child_id == "F"
    assert isinstance(failure.value.__cause__, Boom)
    assert journal.events == [("start", "A"), ("start", "B"), ("start", "F"), ("stop", "B"), ("stop", "A")]


async def test_a_nested_supervisor_whose_child_fails_to_start_fails_its_parents_start() -> None:
    journal = Journal()
    inner = SupervisorSpec([worker("i", journal), ChildSpec("F", functools.partial(StartFails, journal))])
    with pytest.raises(ChildStartError) as failure:
        async with open_supervisor([worker("A", journal), ChildSpec("inner", inner), worker("B", journal)]):
            pytest.fail("the body must not run")
    assert failure.value.child_id == "inner"
    cause = failure.value.__cause__
    assert isinstance(cause, ChildStartError)
    assert cause.child_id == "F"
    assert journal.events == [("start", "A"), ("start", "i"), ("start", "F"), ("stop", "i"), ("stop", "A")]


async def test_no_child_is_restarted_while_its_supervisor_shuts_down() -> None:
    journal = Journal()
    victim: list[ActorRef] = []

    class CrashesSiblingOnStop(Scripted):
        async def on_stop(self) -> None:
            await super().on_stop()
            victim[0].tell_nowait(CRASH)
            await anyio.sleep(0.01)

    async with open_supervisor([worker("victim", journal)]) as sup:
        victim.append(sup.ref("victim"))
        await sup.start_child(ChildSpec("last", functools.partial(CrashesSiblingOnStop, journal)))
        journal.clear()
    # the victim crashed while the tree stopped: its end hook ran, and nothing started again
    assert journal.of("stop") == ["last", "victim"]
    assert journal.of("start") == []
    assert not victim[0].alive


def test_specs_with_a_wrong_type_are_refused_naming_the_child_and_the_field() -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({"restart": "permanent"}, "restart must be a Restart"),
        ({"shutdown": "5"}, "shutdown must be >= 0"),
        ({"shutdown": -1.0}, "shutdown must be >= 0"),
        ({"backoff": 1.0}, "backoff must be a Backoff or None"),
        ({"intensity": (3, 5.0)}, "intensity must be an Intensity or None"),
        ({"mailbox": 10}, "mailbox must be a MailboxSpec"),
    ]
    for options, message in bad:
        with pytest.raises((TypeError, ValueError), match=message) as refused:
            ChildSpec("w", Scripted, **options)
        assert str(refused.value).startswith("child 'w': ")
    with pytest.raises(ValueError, match="child id must be a non-empty string"):
        ChildSpec("", Scripted)
    with pytest.raises(TypeError, match="child 'w': start must be an Actor factory or a SupervisorSpec"):
        ChildSpec("w", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="strategy must be a Strategy"):
        SupervisorSpec(strategy="one_for_all")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="intensity must be an Intensity or None"):
        SupervisorSpec(intensity=(3, 5.0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="supervisor children must be ChildSpec"):
        SupervisorSpec([Scripted])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="duplicate child id 'w'"):
        SupervisorSpec([ChildSpec("w", Scripted), ChildSpec("w", Scripted)])
    for intensity, error, message in [
        ((2.5, 5.0), TypeError, "max_restarts must be an int"),
        ((True, 5.0), TypeError, "max_restarts must be an int"),
        ((1, "5"), TypeError, "within must be a number"),
        ((-1, 5.0), ValueError, "max_restarts must be >= 0"),
        ((1, 0), ValueError, "within must be > 0 seconds"),
    ]:
        with pytest.raises(error, match=message):
            Intensity(*intensity)


async def test_a_factory_that_does_not_return_an_actor_fails_the_start_naming_the_child() -> None:
    with pytest.raises(ChildStartError) as failure:
        async with open_supervisor([ChildSpec("w", lambda: None)]):  # type: ignore[arg-type,return-value]
            pass
    assert isinstance(failure.value.__cause__, TypeError)
    assert "'w'" in str(failure.value.__cause__)
    assert "not an Actor" in str(failure.value.__cause__)


async def test_a_factory_that_raises_fails_the_start_like_on_start() -> None:
    def factory() -> Actor:
        raise Boom("no actor today")

    with pytest.raises(ChildStartError) as failure:
        async with open_supervisor([ChildSpec("w", factory)]):
            pass
    assert isinstance(failure.value.__cause__, Boom)


# -- child management calls -------------------------------------------------------------------------


async def test_start_child_adds_the_child_last_and_refuses_an_id_that_is_running_or_present() -> None:
    journal = Journal()
    async with open_supervisor([worker("A", journal)]) as sup:
        ref = await sup.start_child(worker("B", journal))
        assert isinstance(ref, ActorRef)
        assert [c.id for c in sup.which_children()] == ["A", "B"]
        with pytest.raises(ValueError, match="already has a child 'B'"):  # OTP: already_started
            await sup.start_child(worker("B", journal))
        await sup.terminate_child("B")
        with pytest.raises(ValueError, match="already has a child 'B'"):  # OTP: already_present
            await sup.start_child(worker("B", journal))
        assert states(sup) == {"A": "running", "B": "stopped"}


async def test_start_child_whose_start_fails_raises_and_adds_nothing() -> None:
    journal = Journal()
    async with open_supervisor([worker("A", journal)]) as sup:
        with pytest.raises(ChildStartError) as failure:
            await sup.start_child(ChildSpec("F", functools.partial(StartFails, journal)))
        assert failure.value.child_id == "F"
        assert [c.id for c in sup.which_children()] == ["A"]
        assert sup.restarts == 0
        # the id is free again
        await sup.start_child(worker("F", journal))


async def test_terminate_child_of_an_unknown_id_raises_and_of_a_stopped_child_is_a_no_op() -> None:
    journal = Journal()
    async with open_supervisor([worker("A", journal)]) as sup:
        with pytest.raises(ChildNotFoundError):
            await sup.terminate_child("nope")
        notices: list[Terminated] = []
        sup.ref("A").watch(notices.append)
        await sup.terminate_child("A")
        await sup.terminate_child("A")
        assert notices == [Terminated("A")]
        assert journal.count("stop", "A") == 1
        assert states(sup) == {"A": "stopped"}


async def test_restart_child_refuses_a_running_or_unknown_child_and_restarts_a_stopped_one_with_the_same_ref() -> None:
    journal = Journal()
    async with open_supervisor([worker("A", journal)]) as sup:
        with pytest.raises(ChildNotFoundError, match="running"):
            await sup.restart_child("A")
        with pytest.raises(ChildNotFoundError):
            await sup.restart_child("nope")
        ref = sup.ref("A")
        await sup.terminate_child("A")
        assert await sup.restart_child("A") is ref
        assert ref.alive
        assert await ref.ask(WHO) == 2


async def test_restart_child_whose_start_fails_raises_and_leaves_the_child_stopped() -> None:
    journal = Journal()
    async with open_supervisor([ChildSpec("F", functools.partial(StartFails, journal, failing_from=2))]) as sup:
        await sup.terminate_child("F")
        with pytest.raises(ChildStartError):
            await sup.restart_child("F")
        assert states(sup) == {"F": "stopped"}
        await sup.delete_child("F")
        assert sup.which_children() == []


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_restart_child_and_delete_child_refuse_a_child_waiting_out_its_restart_backoff() -> None:
    journal = Journal()
    backoff = Backoff(min=10.0, max=10.0, jitter=0.0)
    async with open_supervisor([worker("A", journal, backoff=backoff)]) as sup:
        sup.ref("A").tell_nowait(CRASH)
        await wait_until(lambda: states(sup) == {"A": "restarting"})
        for call in (sup.restart_child, sup.delete_child):
            with pytest.raises(ChildNotFoundError, match="restarting"):
                await call("A")
        assert sup.count_children().active == 1
        await anyio.sleep(11.0)
        assert await sup.ref("A").ask(WHO) == 2


async def test_delete_child_refuses_a_running_or_unknown_child_and_frees_the_id_of_a_stopped_one() -> None:
    journal = Journal()
    async with open_supervisor([worker("A", journal)]) as sup:
        with pytest.raises(ChildNotFoundError, match="running"):
            await sup.delete_child("A")
        with pytest.raises(ChildNotFoundError):
            await sup.delete_child("nope")
        await sup.terminate_child("A")
        await sup.delete_child("A")
        assert sup.which_children() == []
        with pytest.raises(ChildNotFoundError):
            sup.ref("A")
        await sup.start_child(worker("A", journal))
        assert states(sup) == {"A": "running"}


async def test_which_children_lists_every_child_with_its_kind_state_and_handle() -> None:
    journal = Journal()
    inner = SupervisorSpec([worker("i", journal)])
    async with open_supervisor([worker("A", journal), ChildSpec("inner", inner), worker("B", journal)]) as sup:
        await sup.terminate_child("B")
        rows = sup.which_children()
        assert [(r.id, r.kind, r.state) for r in rows] == [
            ("A", "actor", "running"),
            ("inner", "supervisor", "running"),
            ("B", "actor", "stopped"),
        ]
        assert rows[0].ref is sup.ref("A")
        assert rows[1].supervisor is sup.supervisor("inner")
        assert rows[1].ref is None
        assert rows[0].supervisor is None


async def test_count_children_counts_specs_active_children_supervisors_and_workers() -> None:
    journal = Journal()
    inner = SupervisorSpec([worker("i", journal)])
    async with open_supervisor([worker("A", journal), ChildSpec("inner", inner), worker("B", journal)]) as sup:
        await sup.terminate_child("B")
        counts = sup.count_children()
        assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (3, 2, 1, 2)


# -- odd exits ----------------------------------------------------------------------------------------


class Raising(Scripted):
    """Raises ``error`` (a fresh one from the factory) from ``receive`` on "raise"."""

    def __init__(self, journal: Journal, make: Any) -> None:
        super().__init__(journal)
        self.make = make

    async def receive(self, message: Any) -> Any:
        if message == "raise":
            raise self.make()
        return await super().receive(message)


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit], ids=lambda k: k.__name__)
async def test_a_base_exception_from_a_child_stops_the_tree_in_order_and_leaves_as_itself(kind: type) -> None:
    journal = Journal()
    error = kind()
    children = [worker("A", journal), ChildSpec("R", functools.partial(Raising, journal, lambda: error))]
    with pytest.raises(kind) as raised:
        async with open_supervisor([*children, worker("B", journal)]) as sup:
            journal.clear()
            sup.ref("R").tell_nowait("raise")
            await expect_failure()
    assert raised.value is error
    assert journal.of("stop") == ["B", "A"]
    assert journal.of("start") == []


async def test_an_exception_group_from_a_childs_task_group_is_an_ordinary_crash() -> None:
    journal = Journal()

    def group() -> BaseException:
        return ExceptionGroup("two", [Boom("one"), ValueError("two")])

    async with open_supervisor([ChildSpec("G", functools.partial(Raising, journal, group))]) as sup:
        with pytest.raises(ExceptionGroup) as raised:
            await sup.ref("G").ask("raise")
        assert [type(e) for e in raised.value.exceptions] == [Boom, ValueError]
        assert await sup.ref("G").ask(WHO) == 2


# asyncio stops its event loop with a KeyboardInterrupt or SystemExit raised in any task, here the
# task the actor's own task group started, before the runtime can see it (docs/supervision.md says so)
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_keyboard_interrupt_from_a_childs_task_group_stops_the_tree_and_leaves_unwrapped() -> None:
    journal = Journal()

    async def interrupted() -> None:
        raise KeyboardInterrupt

    class Grouped(Scripted):
        async def receive(self, message: Any) -> Any:
            if message == "raise":
                async with anyio.create_task_group() as tg:
                    tg.start_soon(interrupted)
            return await super().receive(message)

    # a group holding a single exception is unwrapped, however deep: `except KeyboardInterrupt` works
    with pytest.raises(KeyboardInterrupt):
        async with open_supervisor([worker("A", journal), ChildSpec("G", functools.partial(Grouped, journal))]) as sup:
            journal.clear()
            sup.ref("G").tell_nowait("raise")
            await expect_failure()
    assert journal.of("stop") == ["A"]
    assert journal.of("start") == []


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


async def test_a_child_crashing_with_an_unprintable_exception_is_restarted_and_can_tip_the_intensity() -> None:
    journal = Journal()
    spec = ChildSpec("U", functools.partial(Raising, journal, Unprintable))
    with pytest.raises(RestartIntensityExceeded) as failure:
        async with open_supervisor([spec], intensity=Intensity(1, 60.0)) as sup:
            with pytest.raises(Unprintable):
                await sup.ref("U").ask("raise")
            assert await sup.ref("U").ask(WHO) == 2
            sup.ref("U").tell_nowait("raise")
            await expect_failure()
    assert isinstance(failure.value.__cause__, Unprintable)
    assert "gave up" in str(failure.value)


async def test_an_on_start_raising_an_unprintable_exception_gives_a_readable_child_start_error() -> None:
    class BadStart(Actor):
        async def on_start(self) -> None:
            raise Unprintable

        async def receive(self, message: Any) -> None: ...

    with pytest.raises(ChildStartError, match="Unprintable") as failure:
        async with open_supervisor([ChildSpec("bad", BadStart)]):
            pass
    assert isinstance(failure.value.__cause__, Unprintable)


async def test_an_on_stop_raising_during_shutdown_is_logged_and_the_others_still_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = Journal()

    class BadStop(Scripted):
        async def on_stop(self) -> None:
            await super().on_stop()
            raise Boom("on_stop failed")

    children = [worker("A", journal), ChildSpec("bad", functools.partial(BadStop, journal)), worker("B", journal)]
    async with open_supervisor(children) as sup:
        bad = sup.ref("bad")
    assert journal.of("stop") == ["B", "bad", "A"]
    assert not bad.alive
    assert journal.of("start") == ["A", "bad", "B"]  # nothing restarted
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "supervisor"]
    assert [(r.child, "on_stop failed" in r.getMessage()) for r in warnings] == [("bad", True)]


async def test_an_on_stop_raising_during_a_group_restart_does_not_stop_the_restart() -> None:
    journal = Journal()

    class BadStop(Scripted):
        async def on_stop(self) -> None:
            await super().on_stop()
            raise Boom("on_stop failed")

    children = [worker("A", journal), ChildSpec("bad", functools.partial(BadStop, journal))]
    async with open_supervisor(children, strategy=Strategy.ONE_FOR_ALL, intensity=Intensity(1, 60.0)) as sup:
        sup.ref("A").tell_nowait(CRASH)
        await wait_until(lambda: len(journal.of("start")) == 4)
        assert sup.restarts == 1
        assert [await sup.ref(n).ask(WHO) for n in ("A", "bad")] == [2, 2]


async def test_an_on_stop_raising_after_a_crash_still_restarts_the_child_and_the_asker_gets_the_crash() -> None:
    journal = Journal()

    class BadStop(Scripted):
        async def on_stop(self) -> None:
            await super().on_stop()
            raise ValueError("on_stop failed")

    async with open_supervisor([ChildSpec("bad", functools.partial(BadStop, journal))]) as sup:
        with pytest.raises(Boom):
            await sup.ref("bad").ask(CRASH)
        assert await sup.ref("bad").ask(WHO) == 2
        assert sup.restarts == 1


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_an_on_stop_hanging_past_the_shutdown_timeout_is_killed_and_the_shutdown_goes_on() -> None:
    journal = Journal()

    class HangingStop(Scripted):
        async def on_stop(self) -> None:
            await super().on_stop()
            await anyio.sleep_forever()

    children = [worker("A", journal), ChildSpec("hang", functools.partial(HangingStop, journal), shutdown=3.0)]
    async with open_supervisor(children):
        began = anyio.current_time()
    assert anyio.current_time() - began == pytest.approx(3.0)
    assert journal.of("stop") == ["hang", "A"]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_an_on_start_hanging_during_a_restart_is_killed_after_its_shutdown_timeout_at_shutdown() -> None:
    journal = Journal()

    class HangsOnRestart(Scripted):
        async def on_start(self) -> None:
            await super().on_start()
            if self.context.incarnation > 1:
                await anyio.sleep_forever()

    children = [worker("A", journal), ChildSpec("H", functools.partial(HangsOnRestart, journal), shutdown=4.0)]
    async with open_supervisor(children) as sup:
        sup.ref("H").tell_nowait(CRASH)
        await wait_until(lambda: journal.count("start", "H") == 2)
        assert states(sup)["H"] == "starting"
        began = anyio.current_time()
    assert anyio.current_time() - began == pytest.approx(4.0)
    assert journal.of("stop") == ["H", "A"]  # H's stop hook ran at its crash; the killed start runs none
    assert set(states(sup).values()) == {"stopped"}


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_start_child_cancelled_by_its_caller_leaves_no_child_behind() -> None:
    journal = Journal()
    spec = ChildSpec("slow", functools.partial(SlowStart, journal, 100.0))
    async with open_supervisor([worker("A", journal)]) as sup:
        with anyio.move_on_after(1.0):
            await sup.start_child(spec)
        await anyio.sleep(200.0)
        assert "slow" not in states(sup)
        assert journal.of("started") == []
        await sup.start_child(worker("slow", journal))  # the id is free
        assert states(sup) == {"A": "running", "slow": "running"}


# -- foreign threads ---------------------------------------------------------------------------------


async def test_every_actor_ref_call_from_a_foreign_thread_raises_wrong_thread_error_and_queues_nothing() -> None:
    journal = Journal()
    async with open_supervisor([worker("A", journal)]) as sup:
        ref = sup.ref("A")
        errors: dict[str, BaseException] = {}

        def from_thread() -> None:
            calls: dict[str, Any] = {
                "tell_nowait": lambda: ref.tell_nowait("x"),
                "ask_nowait": lambda: ref.ask_nowait("x"),
                "tell": lambda: anyio.run(ref.tell, "x"),
                "ask": lambda: anyio.run(ref.ask, "x"),
                "watch": lambda: ref.watch(lambda _: None),
            }
            for name, call in calls.items():
                try:
                    call()
                except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                    errors[name] = exc

        thread = threading.Thread(target=from_thread)
        thread.start()
        await anyio.to_thread.run_sync(thread.join)
        assert {name: type(e) for name, e in errors.items()} == dict.fromkeys(
            ("tell_nowait", "ask_nowait", "tell", "ask", "watch"), WrongThreadError
        )
        assert ref.statistics().mailbox_depth == 0
        assert await ref.ask(WHO) == 1
        assert journal.received["A"] == []


async def test_a_worker_thread_reaches_an_actor_through_the_event_loop() -> None:
    journal = Journal()
    async with open_supervisor([worker("A", journal)]) as sup:
        ref = sup.ref("A")
        await anyio.to_thread.run_sync(lambda: anyio.from_thread.run_sync(ref.tell_nowait, "hello"))
        assert await ref.ask("sync") == "sync"
        assert journal.received["A"] == ["hello", "sync"]


async def test_an_ask_to_a_child_stopped_for_good_fails_at_once() -> None:
    journal = Journal()
    async with open_supervisor([worker("A", journal)]) as sup:
        ref = sup.ref("A")
        await sup.terminate_child("A")
        with pytest.raises(ActorStoppedError):
            await ref.ask(WHO)


# -- BaseExceptions from hooks, starts cut short by a stop ------------------------------------------


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit], ids=lambda k: k.__name__)
async def test_a_base_exception_from_on_start_stops_the_started_children_and_leaves_as_itself(kind: type) -> None:
    journal = Journal()
    error = kind()

    class Interrupting(Scripted):
        async def on_start(self) -> None:
            await super().on_start()
            raise error

    children = [worker("A", journal), ChildSpec("I", functools.partial(Interrupting, journal)), worker("B", journal)]
    with pytest.raises(kind) as raised:
        async with open_supervisor(children):
            pytest.fail("the body must not run")
    assert raised.value is error
    assert journal.events == [("start", "A"), ("start", "I"), ("stop", "A")]


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit], ids=lambda k: k.__name__)
async def test_a_base_exception_from_a_restarts_on_start_stops_the_tree_in_order_and_leaves_as_itself(
    kind: type,
) -> None:
    journal = Journal()
    error = kind()

    class InterruptsOnRestart(Scripted):
        async def on_start(self) -> None:
            await super().on_start()
            if self.context.incarnation > 1:
                raise error

    children = [worker("A", journal), ChildSpec("I", functools.partial(InterruptsOnRestart, journal))]
    with pytest.raises(kind) as raised:
        async with open_supervisor([*children, worker("B", journal)]) as sup:
            journal.clear()
            sup.ref("I").tell_nowait(CRASH)
            await expect_failure()
    assert raised.value is error
    assert journal.events == [("stop", "I"), ("start", "I"), ("stop", "B"), ("stop", "A")]


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit], ids=lambda k: k.__name__)
async def test_a_base_exception_from_on_stop_during_shutdown_still_leaves_as_itself_after_the_others_stopped(
    kind: type,
) -> None:
    journal = Journal()
    error = kind()

    class InterruptsOnStop(Scripted):
        async def on_stop(self) -> None:
            await super().on_stop()
            raise error

    interrupting = ChildSpec("I", functools.partial(InterruptsOnStop, journal))
    children = [worker("A", journal), interrupting, worker("B", journal)]
    with pytest.raises(kind) as raised:
        async with open_supervisor(children):
            pass
    assert raised.value is error
    assert journal.of("stop") == ["B", "I", "A"]


async def test_a_base_exception_from_on_stop_during_terminate_child_ends_the_tree_in_order() -> None:
    journal = Journal()
    error = SystemExit(2)

    class InterruptsOnStop(Scripted):
        async def on_stop(self) -> None:
            await super().on_stop()
            raise error

    interrupting = ChildSpec("I", functools.partial(InterruptsOnStop, journal))
    children = [worker("A", journal), interrupting, worker("B", journal)]
    with pytest.raises(SystemExit) as raised:
        async with open_supervisor(children) as sup:
            await sup.terminate_child("I")
            await expect_failure()
    assert raised.value is error
    assert journal.of("stop") == ["I", "B", "A"]


class HangingStart(Scripted):
    """Its ``on_start`` never returns from incarnation ``hanging_from`` on."""

    def __init__(self, journal: Journal, hanging_from: int = 1) -> None:
        super().__init__(journal)
        self.hanging_from = hanging_from

    async def on_start(self) -> None:
        await super().on_start()
        if self.context.incarnation >= self.hanging_from:
            await anyio.sleep_forever()


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_start_that_hangs_can_be_cancelled_from_outside_the_async_with() -> None:
    journal = Journal()
    children = [worker("A", journal), ChildSpec("H", functools.partial(HangingStart, journal))]
    with anyio.move_on_after(30.0) as waited:
        async with open_supervisor(children):
            pytest.fail("the body must not run")
    assert waited.cancelled_caught
    assert journal.of("start") == ["A", "H"]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_start_child_hanging_when_the_tree_stops_is_stopped_within_its_shutdown() -> None:
    journal = Journal()
    failures: list[BaseException] = []
    spec = ChildSpec("H", functools.partial(HangingStart, journal), shutdown=7.0)

    async def add() -> None:
        try:
            await sup.start_child(spec)
        except ChildStartError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as tg, open_supervisor([worker("A", journal)]) as sup:
        tg.start_soon(add)
        await wait_until(lambda: journal.count("start", "H") == 1)
        began = anyio.current_time()
    assert anyio.current_time() - began == pytest.approx(7.0)
    assert [type(f.__cause__) for f in failures] == [ActorStoppedError]
    assert journal.of("stop") == ["A"]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_start_that_completes_within_the_shutdown_after_a_stop_request_runs_the_stop_hook() -> None:
    journal = Journal()
    children = [worker("A", journal), ChildSpec("S", functools.partial(SlowStart, journal, 3.0), shutdown=10.0)]
    async with open_supervisor(children) as sup:
        sup.ref("S").tell_nowait(CRASH)
        await wait_until(lambda: journal.count("start", "S") == 2)
        began = anyio.current_time()
    # S finished its start (3 s), then stopped at once with its stop hook; it was not killed at 10 s
    assert anyio.current_time() - began == pytest.approx(3.0, abs=0.01)
    assert journal.of("started") == ["S", "S"]
    assert journal.of("stop") == ["S", "S", "A"]


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_nested_supervisor_restarting_a_child_that_hangs_in_on_start_still_stops_with_the_tree() -> None:
    journal = Journal()
    inner = SupervisorSpec([ChildSpec("H", functools.partial(HangingStart, journal, hanging_from=2), shutdown=2.0)])
    async with open_supervisor([worker("A", journal), ChildSpec("inner", inner)]) as root:
        root.supervisor("inner").ref("H").tell_nowait(CRASH)
        await wait_until(lambda: journal.count("start", "H") == 2)
        began = anyio.current_time()
    assert anyio.current_time() - began == pytest.approx(2.0)
    assert journal.of("stop") == ["H", "A"]
    assert states(root) == {"A": "stopped", "inner": "stopped"}


@pytest.mark.parametrize("anyio_backend", [mock_clock()])
async def test_a_nested_supervisor_stopped_while_its_child_hangs_in_on_start_stops_within_the_childs_shutdown() -> None:
    journal = Journal()
    failures: list[BaseException] = []
    hanging = ChildSpec("H", functools.partial(HangingStart, journal), shutdown=2.0)
    inner = SupervisorSpec([worker("i", journal), hanging])

    async def add() -> None:
        try:
            await sup.start_child(ChildSpec("inner", inner))
        except ChildStartError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as tg, open_supervisor([worker("A", journal)]) as sup:
        tg.start_soon(add)
        await wait_until(lambda: journal.count("start", "H") == 1)
        began = anyio.current_time()
    assert anyio.current_time() - began == pytest.approx(2.0)
    assert journal.of("stop") == ["i", "A"]
    assert [f.child_id for f in failures] == ["inner"]  # type: ignore[attr-defined]


async def test_a_base_exception_raised_while_a_supervisor_gives_up_outranks_the_give_up() -> None:
    journal = Journal()
    error = SystemExit(3)

    class InterruptsOnStop(Scripted):
        async def on_stop(self) -> None:
            await super().on_stop()
            raise error

    children = [ChildSpec("I", functools.partial(InterruptsOnStop, journal)), worker("C", journal)]
    with pytest.raises(SystemExit) as raised:
        async with open_supervisor(children, intensity=Intensity(0, 60.0)) as sup:
            sup.ref("C").tell_nowait(CRASH)
            await expect_failure()
    assert raised.value is error
    assert journal.of("stop") == ["C", "I"]

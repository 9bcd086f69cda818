"""A one-for-one supervisor checked against a model of OTP supervision (Hypothesis state machine).

Rules start, terminate, restart and delete children, crash them, make them exit normally and send
them messages. After every rule the real tree must settle into the model's state:

- ``which_children()`` lists the model's children in order, with their states and restart counts,
  and each actor is on the incarnation the model expects;
- the supervisor fails exactly when the model's restart budget (``MAX_RESTARTS`` within a window far
  longer than the test) is exceeded;
- no child outlives its supervisor: once it stopped, every ref ever handed out is dead and no
  incarnation is running (each ``on_start`` was matched by an ``on_stop``);
- no message is lost: each message sent was processed or reported as a dead letter, exactly once.

The async runtime lives in a blocking portal (one event loop thread per example, on asyncio and on
trio); the supervisor is entered through the portal and every call into it runs on the loop.
"""

from __future__ import annotations

from collections import Counter
from contextlib import AbstractContextManager
from typing import Any

import anyio
import attrs
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import event, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from actors import Actor, ActorRef, DeadLetter, DeadLetters, Terminated
from supervisor import (
    ChildSpec,
    Intensity,
    Restart,
    RestartIntensityExceeded,
    Supervisor,
    open_supervisor,
)
from tests.strategies import dynamic_child_ids, restart_types

MAX_RESTARTS = 4
STATIC = ("s0", "s1")
SETTLE_TIMEOUT = 5.0


class Crash(Exception):
    """The modelled crash."""


class Recorder:
    """Shared by the actors of one example: what each processed, and how many incarnations of each
    are running (``on_start`` adds one, ``on_stop`` takes it back)."""

    def __init__(self) -> None:
        self.processed: list[tuple[str, Any]] = []
        self.live: Counter[str] = Counter()


class ModelActor(Actor):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def on_start(self) -> None:
        self.recorder.live[self.context.name] += 1

    async def on_stop(self) -> None:
        self.recorder.live[self.context.name] -= 1

    async def receive(self, message: Any) -> Any:
        kind, _ = message
        if kind == "crash":
            raise Crash(message)
        self.recorder.processed.append((self.context.name, message))
        if kind == "exit":
            self.context.stop()


@attrs.define
class ModelChild:
    restart: Restart
    state: str = "running"
    restarts: int = 0
    incarnation: int = 1


class SupervisionModel(RuleBasedStateMachine):
    backend = "asyncio"
    #: the supervisor's linger; the Idle variants make actors give up their task between most steps
    linger: float | None = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.recorder = Recorder()
        self.dead: list[DeadLetter] = []
        self.root_notices: list[Terminated] = []
        self.sent: list[tuple[str, Any]] = []
        self.counter = 0
        self.refs: dict[str, ActorRef] = {}
        self.all_refs: list[ActorRef] = []
        self.hub = DeadLetters()
        self.hub.subscribe(self.dead.append)
        self.portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal(self.backend)
        self.portal = self.portal_cm.__enter__()
        try:
            self.open_tree()
        except BaseException:
            self.portal_cm.__exit__(None, None, None)
            raise

    def open_tree(self) -> None:
        """Start a supervisor with the static children, and a fresh model of it."""
        self.model: dict[str, ModelChild] = {cid: ModelChild(Restart.PERMANENT) for cid in STATIC}
        self.restarts_used = 0
        self.failed = False
        self.root_notices.clear()
        children = [ChildSpec(cid, self.factory) for cid in STATIC]
        self.sup_cm = self.portal.wrap_async_context_manager(
            open_supervisor(
                children,
                intensity=Intensity(MAX_RESTARTS, within=1e9),
                dead_letters=self.hub,
                linger=self.linger,
            )
        )
        self.sup: Supervisor = self.sup_cm.__enter__()
        self.portal.call(self.sup.watch, self.root_notices.append)
        for cid in STATIC:
            self.remember(cid, self.portal.call(self.sup.ref, cid))

    def close_tree(self) -> None:
        """Leave the supervisor's block (it raises if the supervisor failed); nothing may outlive it."""
        if self.failed:
            with pytest.raises(RestartIntensityExceeded):
                self.sup_cm.__exit__(None, None, None)
        else:
            self.sup_cm.__exit__(None, None, None)
        self.assert_nothing_outlives_the_supervisor()
        assert len(self.root_notices) == 1

    def factory(self) -> Actor:
        return ModelActor(self.recorder)

    def remember(self, cid: str, ref: ActorRef) -> None:
        self.refs[cid] = ref
        if ref not in self.all_refs:
            self.all_refs.append(ref)

    # -- driving the real tree (all on the portal's event loop) ----------------------------------

    def send(self, cid: str, kind: str) -> None:
        self.counter += 1
        message = (kind, self.counter)
        self.sent.append((cid, message))
        self.portal.call(self.refs[cid].tell_nowait, message)

    def observed(self) -> dict[str, Any]:
        """What the tree looks like now (called on the event loop)."""
        return {
            "children": [
                (c.id, c.state, c.restarts, c.ref.statistics().incarnation if c.ref else None)
                for c in self.sup.which_children()
            ],
            "failed": bool(self.root_notices),
            "accounted": Counter(self.recorder.processed)
            + Counter((dl.recipient, dl.message) for dl in self.dead),
            "live": +self.recorder.live,
        }

    def expected(self) -> dict[str, Any]:
        return {
            "children": [
                (cid, m.state, m.restarts, m.incarnation) for cid, m in self.model.items()
            ],
            "failed": self.failed,
            "accounted": Counter(self.sent),
            "live": Counter({cid: 1 for cid, m in self.model.items() if m.state == "running"}),
        }

    async def settle(self) -> dict[str, Any]:
        """Give the tree time to reach the model's state (generous bound); return what it reached."""
        expected = self.expected()
        with anyio.move_on_after(SETTLE_TIMEOUT):
            while self.observed() != expected:  # noqa: ASYNC110 - polling the whole tree's state
                await anyio.sleep(0.001)
        return self.observed()

    # -- the model ---------------------------------------------------------------------------------

    def restart_budget_spent(self, cid: str) -> None:
        """A restart the supervisor must make: counted; one too many fails the supervisor."""
        self.restarts_used += 1
        if self.restarts_used > MAX_RESTARTS:
            event("the supervisor gave up")
            self.failed = True
            # children stopped newest-first; temporary ones are forgotten as they stop
            self.model = {
                other: attrs.evolve(m, state="stopped")
                for other, m in self.model.items()
                if m.restart is not Restart.TEMPORARY
            }
        else:
            child = self.model[cid]
            child.restarts += 1
            child.incarnation += 1

    def ids(self, state: str | None = None) -> list[str]:
        return [cid for cid, m in self.model.items() if state is None or m.state == state]

    # -- rules ---------------------------------------------------------------------------------------

    @precondition(lambda self: not self.failed)
    @rule(cid=dynamic_child_ids(), restart=restart_types())
    def start_child(self, cid: str, restart: str) -> None:
        spec = ChildSpec(cid, self.factory, restart=Restart(restart))
        if cid in self.model:
            with pytest.raises(ValueError, match="already has a child"):
                self.portal.call(self.sup.start_child, spec)
            return
        ref = self.portal.call(self.sup.start_child, spec)
        assert isinstance(ref, ActorRef)
        self.remember(cid, ref)
        self.model[cid] = ModelChild(Restart(restart))

    @precondition(lambda self: not self.failed and bool(self.model))
    @rule(data=st.data())
    def terminate_child(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self.ids()), label="terminate")
        self.portal.call(self.sup.terminate_child, cid)
        if self.model[cid].restart is Restart.TEMPORARY:
            del self.model[cid]
        else:
            self.model[cid].state = "stopped"

    @precondition(lambda self: not self.failed and bool(self.ids("stopped")))
    @rule(data=st.data())
    def restart_child(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self.ids("stopped")), label="restart")
        ref = self.portal.call(self.sup.restart_child, cid)
        assert ref is self.refs[cid]  # the same identity, started again
        self.model[cid].state = "running"
        self.model[cid].incarnation += 1

    @precondition(lambda self: not self.failed and bool(self.ids("stopped")))
    @rule(data=st.data())
    def delete_child(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self.ids("stopped")), label="delete")
        self.portal.call(self.sup.delete_child, cid)
        del self.model[cid]

    @precondition(lambda self: not self.failed and bool(self.ids("running")))
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self.ids("running")), label="crash")
        self.send(cid, "crash")
        if self.model[cid].restart is Restart.TEMPORARY:
            del self.model[cid]
        else:
            self.restart_budget_spent(cid)

    @precondition(lambda self: not self.failed and bool(self.ids("running")))
    @rule(data=st.data())
    def exit_normally(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self.ids("running")), label="exit")
        self.send(cid, "exit")
        restart = self.model[cid].restart
        if restart is Restart.PERMANENT:
            self.restart_budget_spent(cid)
        elif restart is Restart.TRANSIENT:
            self.model[cid].state = "stopped"
        else:
            del self.model[cid]

    @precondition(lambda self: self.failed)
    @rule()
    def open_a_new_supervisor_after_the_failure(self) -> None:
        self.close_tree()
        self.open_tree()

    @precondition(lambda self: bool(self.refs))
    @rule(data=st.data(), count=st.integers(min_value=1, max_value=3))
    def send_messages(self, data: st.DataObject, count: int) -> None:
        """To any child ever known, running or not: a stopped one turns them into dead letters."""
        cid = data.draw(st.sampled_from(sorted(self.refs)), label="send to")
        for _ in range(count):
            self.send(cid, "msg")

    # -- invariants ------------------------------------------------------------------------------------

    @invariant()
    def the_tree_matches_the_model(self) -> None:
        observed = self.portal.call(self.settle)
        expected = self.expected()
        assert observed["children"] == expected["children"]
        assert observed["failed"] == expected["failed"]
        assert observed["accounted"] == expected["accounted"], "a message was lost or duplicated"
        assert observed["live"] == expected["live"]
        if self.failed:
            self.assert_nothing_outlives_the_supervisor()
            assert isinstance(self.root_notices[0].error, RestartIntensityExceeded)

    def assert_nothing_outlives_the_supervisor(self) -> None:
        assert self.portal.call(lambda: [ref.name for ref in self.all_refs if ref.alive]) == []
        assert +self.recorder.live == Counter()

    def teardown(self) -> None:
        try:
            self.close_tree()
        finally:
            self.portal_cm.__exit__(None, None, None)


class TrioSupervisionModel(SupervisionModel):
    backend = "trio"


class IdleSupervisionModel(SupervisionModel):
    linger = 0.001


class IdleTrioSupervisionModel(SupervisionModel):
    backend = "trio"
    linger = 0.001


for _model in (SupervisionModel, TrioSupervisionModel, IdleSupervisionModel, IdleTrioSupervisionModel):
    _model.TestCase.settings = settings(max_examples=15, stateful_step_count=20)
TestSupervisorFollowsTheModelOnAsyncio = SupervisionModel.TestCase
TestSupervisorFollowsTheModelOnTrio = TrioSupervisionModel.TestCase
TestSupervisorWithIdleActorsFollowsTheModelOnAsyncio = IdleSupervisionModel.TestCase
TestSupervisorWithIdleActorsFollowsTheModelOnTrio = IdleTrioSupervisionModel.TestCase

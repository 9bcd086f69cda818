"""`BusStateMachine`: a Hypothesis state machine that drives your terminal and checks the bus's
guarantees as invariants. Needs Hypothesis (the ``testing`` extra).

Hypothesis runs state machines synchronously; the terminal runs in an event loop in another thread
(anyio's blocking portal), on trio in virtual time by default, and each step calls into it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any, ClassVar

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bus import BusTerminal, Event, HandlerStoppedError, MailboxFullError, MessageRegistry
from bus.testing._assertions import (
    DeliveryAssertionError,
    assert_causal_order,
    assert_delivery_guarantees,
    assert_fifo_per_sender,
    assert_nothing_after_stop,
    assert_publish_order,
)
from bus.testing._clock import backend_options
from bus.testing._faults import FaultKind
from bus.testing._recorder import Recorder
from bus.testing._records import InjectedFault

__all__ = ("BusStateMachine",)

#: seconds one step may take before it counts as hung (virtual seconds on trio)
STEP_LIMIT = 600.0


def _events(machine: Any) -> st.SearchStrategy[Event]:
    strategy: st.SearchStrategy[Event] = machine.event_strategy()
    return strategy


def _senders(machine: Any) -> st.SearchStrategy[str]:
    return st.sampled_from(list(machine.senders))


def _handlers(machine: Any) -> st.SearchStrategy[str]:
    return st.sampled_from(list(machine.recorder.handler_names))


class BusStateMachine(RuleBasedStateMachine):
    """Subclass it, give it your registry and your events, and run its ``TestCase``::

        class TodoMachine(BusStateMachine):
            def make_registries(self):
                return registry

            def event_strategy(self):
                return events(TodoCreated)

        TestTodos = TodoMachine.TestCase

    Rules: ``publish``, ``emit`` and ``emit_nowait`` an event as one of `senders`, ``drain``, and
    ``inject_crash`` (a transient or permanent fault on a handler's next message, at most
    `max_injected` of them). After each step, FIFO per sender, publish order, causal order and
    nothing after a stop are checked; at the end, after a drain, every guarantee
    (`assert_delivery_guarantees`) and that no handler raised anything unexpected. Override
    `check` to add your own invariant (it runs after each step, in the event loop).
    """

    #: the anyio backend; on trio the terminal runs in virtual time (`MockClock`)
    backend: ClassVar[str] = "trio"
    #: names of the senders the rules send as
    senders: ClassVar[Sequence[str]] = ("alice", "bob")
    #: fault kinds ``inject_crash`` uses, and how many faults it injects at most
    fault_kinds: ClassVar[Sequence[FaultKind]] = ("transient", "permanent")
    max_injected: ClassVar[int] = 3
    #: handler exceptions that are part of your handlers' contract (not a failure)
    expected_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    #: options for `BusTerminal`
    terminal_options: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        registries = self.make_registries()
        if isinstance(registries, MessageRegistry):
            registries = (registries,)
        #: the recorder whose record the invariants check
        self.recorder = Recorder(*registries)
        self.recorder.allow_errors(*self.expected_errors)
        self.injected = 0
        self._stack = ExitStack()
        try:
            options = backend_options(self.backend)
            self._clock: Any = options.get("clock")
            self.portal: BlockingPortal = self._stack.enter_context(
                start_blocking_portal(self.backend, options)
            )
            self.terminal: BusTerminal[Any] = self._stack.enter_context(
                self.portal.wrap_async_context_manager(self.recorder.open(**self.terminal_options))
            )
            self._set_autojump(math.inf)
        except BaseException:
            self._close()
            raise

    def make_registries(self) -> MessageRegistry[Any] | Sequence[MessageRegistry[Any]]:
        """The registry (or registries) under test: override it."""
        raise NotImplementedError("override make_registries() to return your MessageRegistry")

    def event_strategy(self) -> st.SearchStrategy[Event]:
        """The events the rules send: override it (e.g. ``events(TodoCreated)``)."""
        raise NotImplementedError("override event_strategy(), e.g. return events(TodoCreated)")

    def check(self) -> None:
        """Your own invariant, run in the event loop after each step (default: nothing)."""

    # -- rules ------------------------------------------------------------------------------------

    def _set_autojump(self, threshold: float) -> None:
        # Between steps the loop thread idles while Hypothesis works in this one: a clock that
        # jumped then would let handlers run a real-time-dependent distance ahead, and an example
        # would not replay. So virtual time moves only during a step (threshold 0), and stands
        # still between steps (inf). Set in the loop's thread: the run loop caches it.
        if self._clock is None:
            return

        async def set_threshold() -> None:
            self._clock.autojump_threshold = threshold

        self.portal.call(set_threshold)

    def _close(self) -> None:
        # time moves again while the terminal shuts down (its drain may wait on backoffs)
        with contextlib.suppress(Exception):
            self._set_autojump(0)
        self._stack.close()

    def _call(self, step: Any, *args: Any) -> Any:
        async def bounded() -> Any:
            clock = self._clock
            if clock is not None:
                clock.autojump_threshold = 0
            try:
                with anyio.fail_after(STEP_LIMIT):
                    result = await step(*args)
                if clock is not None:
                    # end the step once every task waits (on a timer, a mailbox, ...): what runs
                    # between steps then depends on the steps alone
                    import trio.testing

                    await trio.testing.wait_all_tasks_blocked()
                return result
            finally:
                if clock is not None:
                    clock.autojump_threshold = math.inf

        return self.portal.call(bounded)

    def _tolerated(self) -> tuple[type[BaseException], ...]:
        return (InjectedFault, HandlerStoppedError, MailboxFullError, *self.expected_errors)

    @rule(event=st.runner().flatmap(_events), sender=st.runner().flatmap(_senders))
    def publish(self, event: Event, sender: str) -> None:
        """Publish ``event`` as ``sender``; an injected or expected error, a stopped handler or a
        full mailbox is the publisher's to handle, not a failure."""

        async def step() -> None:
            try:
                await self.recorder.sender(sender).publish(event)
            except self._tolerated():
                pass

        self._call(step)

    @rule(event=st.runner().flatmap(_events), sender=st.runner().flatmap(_senders))
    def emit(self, event: Event, sender: str) -> None:
        """Emit ``event`` as ``sender`` (a mailbox with ``overflow="fail"`` may refuse it)."""

        async def step() -> None:
            with contextlib.suppress(MailboxFullError):
                await self.recorder.sender(sender).emit(event)

        self._call(step)

    @rule(event=st.runner().flatmap(_events), sender=st.runner().flatmap(_senders))
    def emit_nowait(self, event: Event, sender: str) -> None:
        """``emit_nowait`` ``event`` as ``sender`` (a full mailbox's refusal is not a failure)."""

        async def step() -> None:
            # a full bounded mailbox refuses it: recorded as the send's error, nothing queued
            with contextlib.suppress(MailboxFullError):
                self.recorder.sender(sender).emit_nowait(event)

        self._call(step)

    @rule()
    def drain(self) -> None:
        """Wait until every emitted message has been processed or dead-lettered."""
        self._call(self.terminal.drain)

    @precondition(lambda self: self.injected < self.max_injected)
    @rule(handler=st.runner().flatmap(_handlers), data=st.data())
    def inject_crash(self, handler: str, data: st.DataObject) -> None:
        """Make ``handler`` raise on its next message (on one attempt, or on all of them)."""
        kind = data.draw(st.sampled_from(list(self.fault_kinds)), label="kind")
        self.recorder.inject(handler, kind)
        self.injected += 1

    # -- invariants -------------------------------------------------------------------------------

    @invariant()
    def ordering_holds(self) -> None:
        """FIFO per sender, publish order, causal order, nothing after a stop, your `check`."""

        async def step() -> None:
            assert_fifo_per_sender(self.recorder)
            assert_publish_order(self.recorder)
            assert_causal_order(self.recorder)
            assert_nothing_after_stop(self.recorder)
            self.check()

        self._call(step)

    def teardown(self) -> None:
        """Drain, check every guarantee and that nothing unexpected was raised, then stop."""
        try:
            self._call(self.terminal.drain)

            async def step() -> None:
                assert_delivery_guarantees(self.recorder, allow_dead_letters=True)
                unexpected = self.recorder.unexpected_errors()
                if unexpected:
                    raise DeliveryAssertionError(
                        "no unexpected errors",
                        f"{len(unexpected)} deliveries raised (see expected_errors)",
                        unexpected[:3],
                    )
                self.check()

            self._call(step)
        finally:
            self._close()

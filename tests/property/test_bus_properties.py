"""Properties of the bus over random handler sets and message scripts: publish follows registration
order, emit keeps per-sender FIFO (also across retries), every handler gets every event exactly
once when nothing fails and at least once (never zero) when handlers crash and are retried.

Dogfood: each property is also checked with `bus.testing`'s recorder and assertions, beside the
hand-written model checks (which stay, so the assertions are checked against them too)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Unpack

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, strategies as st

from bus import BusTerminal, MessageContext, MessageRegistry
from bus._policy import PolicyOptions
from bus.testing import (
    Recorder as BusRecorder,
    assert_delivery_guarantees,
    assert_exactly_once,
    assert_fifo_per_sender,
    assert_publish_order,
)
from tests.strategies import (
    BUS_SUBSCRIPTIONS,
    BusBase,
    BusLeft,
    BusLeftLeaf,
    BusRight,
    bus_emit_cases,
    bus_event_classes,
    bus_publish_failure_cases,
    bus_subscriptions,
)

pytestmark = pytest.mark.anyio

EmitCase = tuple[list[str], list[tuple[int, type[BusBase], dict[int, int]]]]

LIMIT = 20


class Planned(Exception):
    """The failure a plan asked for."""


class Recorder:
    """What the generated handlers did: every call, and every successful handling per handler."""

    def __init__(self, handlers: int) -> None:
        self.calls: list[tuple[int, int, int]] = []  # (handler, key, attempt)
        self.done: list[list[int]] = [[] for _ in range(handlers)]
        self.plans: dict[int, dict[int, int]] = {}  # key -> handler -> failures left

    def call(self, index: int, event: BusBase, ctx: MessageContext) -> None:
        self.calls.append((index, event.key, ctx.attempt))
        plan = self.plans.get(event.key)
        if plan and plan.get(index, 0) > 0:
            plan[index] -= 1
            raise Planned(f"handler {index} fails on {event.key}")
        self.done[index].append(event.key)


Handler = Callable[[BusBase, MessageContext], Awaitable[None]]


def make_handler(kind: str, index: int, recorder: Recorder) -> Handler:
    """A handler subscribed as ``kind`` says, named uniquely by its index."""
    if kind == "base":

        async def handler(event: BusBase, ctx: MessageContext) -> None:
            recorder.call(index, event, ctx)

    elif kind == "left":

        async def handler(event: BusLeft, ctx: MessageContext) -> None:  # type: ignore[misc]
            recorder.call(index, event, ctx)

    elif kind == "right":

        async def handler(event: BusRight, ctx: MessageContext) -> None:  # type: ignore[misc]
            recorder.call(index, event, ctx)

    elif kind == "left_or_right":

        async def handler(event: BusLeft | BusRight, ctx: MessageContext) -> None:  # type: ignore[misc]
            recorder.call(index, event, ctx)

    else:
        assert kind == "leaf_or_left"

        async def handler(event: BusLeftLeaf | BusLeft, ctx: MessageContext) -> None:  # type: ignore[misc]
            recorder.call(index, event, ctx)

    handler.__name__ = f"handler_{index}_{kind}"
    handler.__qualname__ = handler.__name__
    return handler


def registry_for(
    kinds: list[str], recorder: Recorder, **policy: Unpack[PolicyOptions]
) -> MessageRegistry:
    registry = MessageRegistry()
    for index, kind in enumerate(kinds):
        registry.register(make_handler(kind, index, recorder), **policy)
    return registry


def accepts(kind: str, event_class: type[BusBase]) -> bool:
    return event_class in BUS_SUBSCRIPTIONS[kind]


#: plenty of retries and restarts, no backoff: failures recover quickly
RETRYING: PolicyOptions = {"retries": 3, "retry_backoff": 0.0, "max_restarts": 1000}


@given(kinds=bus_subscriptions(), sent=st.lists(bus_event_classes(), min_size=1, max_size=5))
async def test_publish_follows_registration_order(
    kinds: list[str], sent: list[type[BusBase]]
) -> None:
    recorder = Recorder(len(kinds))
    recording = BusRecorder(registry_for(kinds, recorder))
    with anyio.fail_after(LIMIT):
        async with recording.open():
            for key, event_class in enumerate(sent):
                before = len(recorder.calls)
                await recording.sender().publish(event_class(key))
                # publish returned: exactly the subscribed handlers ran, in registration order
                expected = [i for i, kind in enumerate(kinds) if accepts(kind, event_class)]
                assert recorder.calls[before:] == [(i, key, 1) for i in expected]
    assert_publish_order(recording)
    assert_delivery_guarantees(recording)


@given(case=bus_publish_failure_cases())
async def test_publish_stops_at_the_first_failure(
    case: tuple[list[str], type[BusBase], dict[int, int]],
) -> None:
    kinds, event_class, plan = case
    recorder = Recorder(len(kinds))
    recorder.plans[0] = dict(plan)
    subscribed = [i for i, kind in enumerate(kinds) if accepts(kind, event_class)]
    failing = [i for i in subscribed if i in plan]
    recording = BusRecorder(registry_for(kinds, recorder, **RETRYING))
    recording.allow_errors(Planned)
    with anyio.fail_after(LIMIT):
        async with recording.open():
            bus = recording.sender()
            if failing:
                with pytest.raises(Planned, match=f"^handler {failing[0]} fails on 0$"):
                    await bus.publish(event_class(0))
                reached = subscribed[: subscribed.index(failing[0]) + 1]
            else:
                await bus.publish(event_class(0))
                reached = subscribed
    # no retries under publish, and nothing after the failing handler
    assert recorder.calls == [(i, 0, 1) for i in reached]
    assert_publish_order(recording)
    assert_delivery_guarantees(recording)


async def emit_script(
    terminal: BusTerminal,
    script: list[tuple[int, type[BusBase], dict[int, int]]],
    recording: BusRecorder,
) -> None:
    """Each sender emits its messages in script order, concurrently with the other senders."""
    senders = sorted({sender for sender, _, _ in script})

    async def send(sender: int) -> None:
        bus = recording.sender(f"sender{sender}")
        for key, (who, event_class, _) in enumerate(script):
            if who == sender:
                await bus.emit(event_class(key))
                await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for sender in senders:
            tg.start_soon(send, sender)
    await terminal.drain()


def check_fifo_per_sender(
    kinds: list[str],
    script: list[tuple[int, type[BusBase], dict[int, int]]],
    recorder: Recorder,
) -> None:
    for index, kind in enumerate(kinds):
        for sender in {who for who, _, _ in script}:
            expected = [
                key
                for key, (who, event_class, _) in enumerate(script)
                if who == sender and accepts(kind, event_class)
            ]
            sender_keys = set(expected)
            handled = [key for key in recorder.done[index] if key in sender_keys]
            assert handled == expected, f"handler {index}, sender {sender}"


@given(case=bus_emit_cases(max_failures=0))
async def test_emit_keeps_per_sender_fifo_and_delivers_exactly_once(case: EmitCase) -> None:
    kinds, script = case
    recorder = Recorder(len(kinds))
    recording = BusRecorder(registry_for(kinds, recorder, **RETRYING))
    with anyio.fail_after(LIMIT):
        async with recording.open() as terminal:
            await emit_script(terminal, script, recording)
            assert terminal.statistics().in_flight == 0
    check_fifo_per_sender(kinds, script, recorder)
    for index, kind in enumerate(kinds):
        expected = [key for key, (_, cls, _) in enumerate(script) if accepts(kind, cls)]
        # exactly once: every call succeeded, and each accepted event was handled once
        assert Counter(recorder.done[index]) == Counter(expected)
    assert all(attempt == 1 for _, _, attempt in recorder.calls)
    assert_fifo_per_sender(recording)
    assert_exactly_once(recording)
    assert_delivery_guarantees(recording)


@given(case=bus_emit_cases(max_failures=3))
async def test_emit_with_crashes_retries_in_place_and_never_loses_a_delivery(case: EmitCase) -> None:
    kinds, script = case
    recorder = Recorder(len(kinds))
    recorder.plans = {key: dict(plan) for key, (_, _, plan) in enumerate(script)}
    recording = BusRecorder(registry_for(kinds, recorder, **RETRYING))
    recording.allow_errors(Planned)
    with anyio.fail_after(LIMIT):
        async with recording.open() as terminal:
            await emit_script(terminal, script, recording)
            assert terminal.statistics().in_flight == 0
            assert terminal.statistics().dead_letters == 0
    check_fifo_per_sender(kinds, script, recorder)
    calls = Counter((index, key) for index, key, _ in recorder.calls)
    for index, kind in enumerate(kinds):
        for key, (_, event_class, plan) in enumerate(script):
            if not accepts(kind, event_class):
                assert calls[index, key] == 0
                continue
            # at least once, never zero: one call per planned failure, then the success
            assert calls[index, key] == plan.get(index, 0) + 1
            assert recorder.done[index].count(key) == 1
            attempts = [a for i, k, a in recorder.calls if (i, k) == (index, key)]
            assert attempts == list(range(1, plan.get(index, 0) + 2))
    # every failure retried in place and resolved, every message handled exactly once
    assert_delivery_guarantees(recording)
    assert not recording.unexpected_errors()

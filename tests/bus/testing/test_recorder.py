"""`Recorder`: wrapped handlers keep their names, policies and injected parameters; every attempt,
send and notice is recorded in order; fault plans raise or delay the deliveries they name."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import pytest
from trio.testing import MockClock

from bus import DeadLetter, Event, EventBus, MessageContext, MessageRegistry
from bus.testing import (
    Delivery,
    Fault,
    FaultPlan,
    InjectedFault,
    Notice,
    Recorder,
    Send,
    backend_options,
    run,
)

pytestmark = pytest.mark.anyio


class Placed(Event):
    order: int


class Shipped(Event):
    order: int


class Settings:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix


def virtual_trio() -> Any:
    return pytest.param(("trio", backend_options("trio")), id="trio-mockclock")


def shop(*, sync: bool = True, backoff: float = 0.01) -> tuple[MessageRegistry, list[str]]:
    """Handlers of every shape: no context, unannotated context, a dependency, the bus, sync.

    Virtual-time tests leave the sync handler out: while a worker thread runs, trio's autojumping
    MockClock sees every task waiting and jumps to the next deadline, the test's own limit too."""
    seen: list[str] = []
    registry = MessageRegistry()

    @registry.register(retries=2, retry_backoff=backoff)
    async def take(placed: Placed) -> None:
        seen.append(f"take {placed.order}")

    @registry.register
    async def ship(placed: Placed, ctx, bus: Annotated[EventBus, "bus"]) -> None:  # type: ignore[no-untyped-def]
        assert isinstance(ctx, MessageContext)
        await bus.emit(Shipped(placed.order))

    @registry.register
    async def label(shipped: Shipped, ctx: MessageContext, *, settings: Settings) -> None:
        seen.append(f"{settings.prefix} {shipped.order} caused by {ctx.causation_id is not None}")

    if sync:

        @registry.register
        def audit(event: Placed | Shipped, ctx: MessageContext) -> None:
            seen.append(f"audit {type(event).__name__}")

    @registry.factory
    def settings() -> Settings:
        return Settings("label")

    return registry, seen


async def test_wrapped_handlers_keep_their_names_policies_providers_and_injection() -> None:
    registry, seen = shop()
    recorder = Recorder(registry)
    original = {h.name: h.policy for h in registry.handlers}
    wrapped = {h.name: h.policy for h in recorder.registries[0].handlers if h.name in original}
    assert wrapped == original
    assert list(recorder.handler_names) == list(original)
    assert set(recorder.registries[0].providers) == {Settings}
    async with recorder.open() as terminal:
        await recorder.sender().emit(Placed(1))
        await terminal.drain()
    assert sorted(seen) == ["audit Placed", "audit Shipped", "label 1 caused by True", "take 1"]


async def test_every_attempt_is_recorded_with_its_sender_order_and_outcome() -> None:
    registry, _ = shop()
    recorder = Recorder(registry, faults=[Fault("take", 2, "transient", times=2)])
    async with recorder.open() as terminal:
        alice = recorder.sender("alice")
        await alice.publish(Placed(1))
        await alice.emit(Placed(2))
        await terminal.drain()
    sends = recorder.sends("alice")
    assert [(s.sender, s.seq, s.via, s.event) for s in sends] == [
        ("alice", 0, "publish", Placed(1)),
        ("alice", 1, "emit", Placed(2)),
    ]
    assert all(s.done and s.error is None for s in sends)
    take = recorder.deliveries("take")
    assert [(d.event, d.attempt, d.message, d.outcome, d.injected) for d in take] == [
        (Placed(1), 1, 1, "ok", False),
        (Placed(2), 1, 2, "raised", True),
        (Placed(2), 2, 2, "raised", True),
        (Placed(2), 3, 2, "ok", False),
    ]
    assert all(isinstance(d.error, InjectedFault) for d in take[1:3])
    assert [d.index for d in recorder.deliveries()] == sorted(
        d.index for d in recorder.deliveries()
    )
    assert recorder.handled("take") == [Placed(1), Placed(2)]
    assert [n.kind for n in recorder.notices()] == ["restarted", "restarted"]
    # the handlers' own sends are recorded too, with the handler as the sender
    shipped = recorder.sends(recorder.handler_name("ship"))
    assert [(s.seq, s.via, s.event) for s in shipped] == [
        (0, "emit", Shipped(1)),
        (1, "emit", Shipped(2)),
    ]
    labels = recorder.deliveries("label")
    assert {d.sender for d in labels} == {recorder.handler_name("ship")}
    assert sorted(d.seq for d in labels) == [0, 1]
    assert recorder.deliveries(event_type=Shipped) == [
        d for d in recorder.deliveries() if isinstance(d.event, Shipped)
    ]
    assert recorder.unexpected_errors() == []
    assert all(isinstance(e, Send | Delivery | Notice) for e in recorder.entries)


@pytest.mark.parametrize("anyio_backend", [virtual_trio()])
async def test_a_permanent_fault_dead_letters_the_message_in_virtual_time() -> None:
    registry, seen = shop(sync=False, backoff=1.0)
    recorder = Recorder(registry, faults=FaultPlan.of([Fault("take", 1, "permanent")]))
    started = anyio.current_time()
    async with recorder.open() as terminal:
        await recorder.sender().emit(Placed(7))
        await terminal.drain()
    # retries=2 with 1 s then 2 s backoff: three attempts, three virtual seconds
    assert anyio.current_time() - started >= 3.0
    take = recorder.deliveries("take")
    assert [d.outcome for d in take] == ["raised", "raised", "dead_lettered"]
    assert all(d.failed for d in take)
    assert (
        take[-1]
        .describe()
        .endswith(
            "raised InjectedFault('take raises on every attempt of its message 1'), then dead-lettered"
        )
    )
    (letter,) = recorder.notices("dead_letter")
    assert letter.handler == recorder.handler_name("take")
    assert letter.message_id == recorder.deliveries("take")[0].message_id
    assert letter.reason == "retries_exhausted"
    assert isinstance(letter.event, DeadLetter)
    assert "take 7" not in seen


@pytest.mark.parametrize("anyio_backend", [virtual_trio()])
async def test_a_slow_fault_delays_the_delivery_on_the_event_loop_clock() -> None:
    registry, _ = shop(sync=False)
    recorder = Recorder(registry)
    fault = recorder.inject("take", "slow", delay=30.0)
    assert fault == Fault(recorder.handler_name("take"), 1, "slow", 1, 30.0)
    started = anyio.current_time()
    async with recorder.open() as terminal:
        await recorder.sender().publish(Placed(1))
        assert anyio.current_time() - started >= 30.0
        await terminal.drain()
    assert all(d.outcome == "ok" for d in recorder.deliveries())


async def test_a_slow_fault_on_a_sync_handler_sleeps_on_the_event_loop() -> None:
    registry, _ = shop()
    recorder = Recorder(registry)
    recorder.inject("audit", "slow", delay=0.05)
    started = anyio.current_time()
    async with recorder.open():
        await recorder.sender().publish(Placed(1))
    assert anyio.current_time() - started >= 0.05
    assert recorder.deliveries("audit")[0].outcome == "ok"


async def test_inject_targets_the_next_message_the_handler_has_not_got() -> None:
    registry, _ = shop()
    recorder = Recorder(registry)
    async with recorder.open():
        bus = recorder.sender()
        await bus.publish(Placed(1))
        recorder.inject("take")
        recorder.inject("take")  # the one after
        with pytest.raises(InjectedFault, match="take raises on 1 attempt"):
            await bus.publish(Placed(2))
        with pytest.raises(InjectedFault):
            await bus.publish(Placed(3))
        await bus.publish(Placed(4))
    assert [d.outcome for d in recorder.deliveries("take")] == ["ok", "raised", "raised", "ok"]
    failed = [s for s in recorder.sends() if s.error is not None]
    assert [s.seq for s in failed] == [1, 2]


def test_handlers_are_named_by_function_full_name_or_short_name() -> None:
    registry, _ = shop()
    recorder = Recorder(registry)
    full = recorder.handler_names[0]
    assert recorder.handler_name("take") == full
    assert recorder.handler_name(full) == full
    assert recorder.handler_name(registry.handlers[0].spec.func) == full
    with pytest.raises(ValueError, match="'nope' names no handler; the handlers are: .*take"):
        recorder.handler_name("nope")
    with pytest.raises(ValueError, match="is not a handler of this recorder"):
        recorder.handler_name(print)
    with pytest.raises(ValueError, match="names no handler"):
        Recorder(registry, faults=[Fault("nope", 1)])


def test_bad_arguments_are_refused_with_the_reason() -> None:
    with pytest.raises(TypeError, match="at least one MessageRegistry"):
        Recorder()
    with pytest.raises(TypeError, match="MessageRegistry instances"):
        Recorder("registry")  # type: ignore[arg-type]
    recorder = Recorder(MessageRegistry())
    with pytest.raises(TypeError, match="expected a Fault"):
        recorder.add_fault("take")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="no terminal"):
        recorder.sender()
    for bad, match in [
        ({"handler": ""}, "handler's name"),
        ({"message": 0}, "counts from 1"),
        ({"kind": "sometimes"}, "kind must be one of"),
        ({"times": 0}, "times must be >= 1"),
        ({"delay": -1.0}, "delay must be >= 0"),
    ]:
        options: dict[str, Any] = {"handler": "h", "message": 1, **bad}
        with pytest.raises(ValueError, match=match):
            Fault(**options)
    with pytest.raises(TypeError, match="expected a Fault"):
        FaultPlan().add("h")  # type: ignore[arg-type]


def test_a_fault_plan_reads_as_a_list_of_faults() -> None:
    plan = FaultPlan.of(
        [Fault("m.b", 2, "permanent"), Fault("m.a", 1), Fault("m.a", 3, "slow", delay=2)]
    )
    assert repr(FaultPlan()) == "FaultPlan()"
    assert repr(plan) == (
        "FaultPlan.of([a raises on 1 attempt(s) of its message 1, a waits 2 s before its message 3, "
        "b raises on every attempt of its message 2])"
    )
    assert len(plan) == 3
    assert plan.get("m.a", 1) == Fault("m.a", 1)


def test_run_uses_a_virtual_clock_on_trio_and_real_time_on_asyncio() -> None:
    async def sleep_long() -> float:
        started = anyio.current_time()
        await anyio.sleep(3600)
        return anyio.current_time() - started

    assert run(sleep_long) >= 3600
    assert isinstance(backend_options("trio")["clock"], MockClock)
    assert backend_options("asyncio") == {}


async def test_sender_passes_headers_and_sinks_through() -> None:
    registry = MessageRegistry()
    contexts: list[MessageContext] = []

    @registry.register
    async def keep(placed: Placed, ctx: MessageContext) -> None:
        contexts.append(ctx)

    recorder = Recorder(registry)
    async with recorder.open() as terminal:
        bus = recorder.sender("api")
        assert bus.name == "api"
        assert bus.context is None
        assert "api" in repr(bus)
        await bus.emit(Placed(1), headers={"tenant": "t1"})
        bus.emit_nowait(Placed(2))
        await terminal.drain()
        with pytest.raises(Exception, match="no sink"):
            await bus.sink(Placed(3))
        with pytest.raises(TypeError):
            bus.emit_nowait("not an event")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await bus.emit("not an event")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await bus.publish("not an event")  # type: ignore[arg-type]
    assert contexts[0].headers["tenant"] == "t1"
    assert [c.headers["bus-testing-seq"] for c in contexts] == ["0", "1"]
    assert [s.error is not None for s in recorder.sends()] == [False, False, True, True, True]
    with pytest.raises(ValueError, match="non-empty str"):
        recorder.sender("")


class Shelf:
    """Class-based handlers: bound methods, registered one by one."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def on_placed(self, placed: Placed, *, ctx: MessageContext) -> None:
        self.seen.append(placed.order * 10 + ctx.attempt)


class Counter:
    """A callable instance as a handler."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, placed: Placed) -> None:
        self.count += 1


async def test_methods_callable_objects_and_any_parameter_names_are_wrapped() -> None:
    shelf, counter = Shelf(), Counter()
    registry = MessageRegistry()
    registry.register(shelf.on_placed, counter)
    seen: list[tuple[int, str]] = []

    # parameter names that a wrapper's own could clash with
    @registry.register
    async def clash(event: Placed, context: MessageContext, *, bus: EventBus, _i: int = 7) -> None:
        seen.append((event.order, type(bus).__name__))

    recorder = Recorder(registry)
    assert [h.rsplit(".", 1)[-1] for h in recorder.handler_names] == [
        "on_placed",
        "Counter",
        "clash",
    ]
    async with recorder.open() as terminal:
        await recorder.sender().publish(Placed(4))
        await terminal.drain()
    assert shelf.seen == [41]
    assert counter.count == 1
    assert seen == [(4, "SendingBus")]
    assert recorder.handler_name(shelf.on_placed) == recorder.handler_names[0]


@pytest.mark.parametrize("anyio_backend", [virtual_trio()])
async def test_a_slow_fault_delays_only_the_first_attempt() -> None:
    registry = MessageRegistry()

    @registry.register(retries=1, retry_backoff=1.0)
    async def flaky(placed: Placed, ctx: MessageContext) -> None:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails by itself")

    recorder = Recorder(registry, faults=[Fault("flaky", 1, "slow", delay=10.0)])
    recorder.allow_errors(RuntimeError)
    started = anyio.current_time()
    async with recorder.open() as terminal:
        await recorder.sender().emit(Placed(1))
        await terminal.drain()
    took = anyio.current_time() - started
    assert 11.0 <= took < 20.0  # 10 s slow + 1 s backoff, not slow twice
    assert [d.outcome for d in recorder.deliveries("flaky")] == ["raised", "ok"]
    assert recorder.unexpected_errors() == []


def busy_registry() -> MessageRegistry:
    """Four handlers of one event, each emitting follow-ups: plenty of interleaving."""
    registry = MessageRegistry()
    for index in range(4):

        async def handler(
            placed: Placed, ctx: MessageContext, bus: EventBus, _i: int = index
        ) -> None:
            if placed.order < 3:
                await bus.emit(Placed(placed.order + 10))

        handler.__name__ = handler.__qualname__ = f"busy_{index}"
        registry.register(handler)
    return registry


def test_a_run_replays_the_same_record_under_hypothesis() -> None:
    from hypothesis import Phase, example, given, settings, strategies as st

    records: list[list[str]] = []

    def one_run() -> list[str]:
        recorder = Recorder(
            busy_registry(), faults=[Fault("busy_1", 2), Fault("busy_2", 1, "slow")]
        )

        async def main() -> None:
            async with recorder.open() as terminal:
                for sender in ("a", "b"):
                    for order in range(3):
                        recorder.sender(sender).emit_nowait(Placed(order))
                await terminal.drain()

        run(main)
        return [entry.describe() for entry in recorder.entries]

    # Hypothesis seeds trio's scheduler for each example: the same example, the same record
    @settings(max_examples=1, database=None, phases=[Phase.explicit])
    @example(0)
    @given(st.integers())
    def replay(_: int) -> None:
        records.append(one_run())

    for _ in range(3):
        replay()
    assert len(records[0]) > 100
    assert records[1] == records[0]
    assert records[2] == records[0]

"""`BusStateMachine`: green on correct handlers (trio in virtual time, and asyncio), and it finds a
real ordering violation: a publish overtaken by the event its first handler emitted."""

from __future__ import annotations

from typing import ClassVar

import anyio
import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import run_state_machine_as_test

from bus import DeadLetter, Event, EventBus, MessageContext, MessageRegistry
from bus.testing import BusStateMachine, DeliveryAssertionError, events


class Placed(Event):
    order: int


class Shipped(Event):
    order: int


class Declined(Exception):
    pass


SETTINGS = settings(
    max_examples=12,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def shop(*, publish_safe: bool, backoff: float = 0.5) -> MessageRegistry:
    """Handlers that emit what they cause, fail by design (order 13), and take dead letters;
    ``backoff`` is the retry backoff (real seconds on asyncio, so short there)."""
    registry = MessageRegistry()

    @registry.register(retries=2, retry_backoff=backoff, max_restarts=1000)
    async def take(placed: Placed, ctx: MessageContext) -> None:
        if placed.order == 13:
            raise Declined("unlucky order")

    @registry.register(retry_backoff=backoff, max_restarts=1000)
    async def ship(placed: Placed, ctx: MessageContext, bus: EventBus) -> None:
        if publish_safe and ctx.headers.get("bus-testing-via") == "publish":
            return  # shipping is emitted only from emitted orders: no overtaking under publish
        await bus.emit(Shipped(placed.order))

    @registry.register(retry_backoff=backoff, max_restarts=1000)
    async def track(event: Placed | Shipped) -> None:
        pass

    @registry.register(retry_backoff=backoff)
    async def letters(letter: DeadLetter) -> None:
        pass

    return registry


class ShopMachine(BusStateMachine):
    expected_errors: ClassVar[tuple[type[BaseException], ...]] = (Declined,)

    def make_registries(self) -> MessageRegistry:
        return shop(publish_safe=True)

    def event_strategy(self) -> st.SearchStrategy[Event]:
        return events(Placed, order=st.integers(10, 14))


class ShopMachineAsyncio(ShopMachine):
    backend: ClassVar[str] = "asyncio"

    def make_registries(self) -> MessageRegistry:
        return shop(publish_safe=True, backoff=0.001)


class OvertakingMachine(ShopMachine):
    def make_registries(self) -> MessageRegistry:
        return shop(publish_safe=False)


def test_the_machine_is_green_on_correct_handlers_in_virtual_time() -> None:
    run_state_machine_as_test(ShopMachine, settings=SETTINGS)


def test_the_machine_is_green_on_correct_handlers_on_asyncio() -> None:
    run_state_machine_as_test(ShopMachineAsyncio, settings=SETTINGS)


def test_the_machine_finds_a_publish_overtaken_by_its_own_effect() -> None:
    with pytest.raises(DeliveryAssertionError, match="causal order: track got Shipped"):
        run_state_machine_as_test(OvertakingMachine, settings=SETTINGS)


class Unexpected(ShopMachine):
    expected_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    max_injected: ClassVar[int] = 0

    def event_strategy(self) -> st.SearchStrategy[Event]:
        return events(Placed, order=st.just(13))


def test_the_machine_fails_on_an_error_the_handlers_do_not_declare() -> None:
    # an emitted 13 fails at teardown, a published one reaches the publish rule as itself
    with pytest.raises((DeliveryAssertionError, Declined), match="no unexpected errors|unlucky"):
        run_state_machine_as_test(
            Unexpected, settings=settings(SETTINGS, report_multiple_bugs=False)
        )


class Checked(ShopMachine):
    def check(self) -> None:
        assert len(self.recorder.sends()) < 3, "the user's own invariant"


def test_the_users_check_runs_as_an_invariant() -> None:
    with pytest.raises(AssertionError, match="the user's own invariant"):
        run_state_machine_as_test(Checked, settings=SETTINGS)


def test_a_machine_must_say_what_it_tests() -> None:
    with pytest.raises(NotImplementedError, match="override make_registries"):
        BusStateMachine()

    class NoEvents(BusStateMachine):
        def make_registries(self) -> MessageRegistry:
            return shop(publish_safe=True)

    with pytest.raises(NotImplementedError, match="override event_strategy"):
        run_state_machine_as_test(NoEvents, settings=SETTINGS)


class Bounded(ShopMachine):
    """Tiny mailboxes that drop: emit_nowait may be refused, emits may be dropped."""

    max_injected: ClassVar[int] = 0

    def make_registries(self) -> MessageRegistry:
        registry = MessageRegistry()

        @registry.register(mailbox_capacity=1, overflow="fail")
        async def slow(placed: Placed) -> None:
            await anyio.sleep(1)

        return registry


def test_a_refused_emit_nowait_is_recorded_not_a_failure() -> None:
    run_state_machine_as_test(Bounded, settings=SETTINGS)

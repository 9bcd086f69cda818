"""The pytest plugin (loaded from the entry point): ``bus_recorder``/``bus_terminal`` open a terminal
for the test's registry on its anyio backend, close it, and fail a test that left messages in
flight or whose handlers raised unexpectedly."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

HEADER = """
import pytest
from bus import Event, MessageRegistry
from bus.testing import Fault, backend_options

pytestmark = pytest.mark.anyio


class Placed(Event):
    order: int


class Declined(Exception):
    pass


registry = MessageRegistry()


@registry.register(retries=1, retry_backoff=0.01)
async def take(placed: Placed) -> None:
    if placed.order < 0:
        raise Declined("negative")


@pytest.fixture(params=["asyncio", "trio", ("trio", backend_options("trio"))],
                ids=["asyncio", "trio", "trio-virtual"])
def anyio_backend(request):
    return request.param


@pytest.fixture
def bus_registry():
    return registry
"""


def run(pytester: pytest.Pytester, body: str) -> pytest.RunResult:
    pytester.makepyfile(test_user=HEADER + body)
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:randomly")


def test_a_drained_test_passes_on_every_backend(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
async def test_orders(bus_recorder, bus_terminal):
    await bus_recorder.sender().emit(Placed(1))
    await bus_terminal.drain()
    assert bus_recorder.handled("take") == [Placed(1)]
    assert bus_recorder.terminal is bus_terminal
""",
    )
    result.assert_outcomes(passed=3)


def test_a_test_that_leaves_messages_in_flight_fails(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.fixture
def bus_faults():
    return [Fault("take", 1, "slow", delay=0.5)]


async def test_forgets_to_drain(bus_recorder):
    await bus_recorder.sender().emit(Placed(1))
""",
    )
    result.assert_outcomes(errors=3, passed=3)
    result.stdout.fnmatch_lines(["*1 message(s) still in flight*await bus_terminal.drain()*"])


def test_an_unexpected_handler_error_fails_the_test_unless_allowed(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
@pytest.fixture
def bus_faults():
    return [Fault("take", 2)]  # injected: expected


async def test_declined(bus_recorder, bus_terminal):
    await bus_recorder.sender().emit(Placed(-1))
    await bus_recorder.sender().emit(Placed(2))
    await bus_terminal.drain()


async def test_declined_on_purpose(bus_recorder, bus_terminal):
    bus_recorder.allow_errors(Declined)
    await bus_recorder.sender().emit(Placed(-1))
    await bus_terminal.drain()
""",
    )
    result.assert_outcomes(passed=6, errors=3)
    result.stdout.fnmatch_lines(
        [
            "*raised unexpectedly*",
            "*take <- main[[]0[]] Placed(order=-1) (attempt 1): raised Declined*",
        ]
    )


def test_several_registries_and_the_default_registry_work(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_more="""
import pytest
from bus import Event, MessageRegistry

pytestmark = pytest.mark.anyio


class Ping(Event):
    n: int


one, two = MessageRegistry(), MessageRegistry()


@one.register
async def first(ping: Ping) -> None: ...


@two.register
async def second(ping: Ping) -> None: ...


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def bus_registry():
    return [one, two]


async def test_both(bus_recorder, bus_terminal):
    await bus_recorder.sender().publish(Ping(1))
    assert [d.handler.rsplit(".", 1)[-1] for d in bus_recorder.deliveries()] == ["first", "second"]
""",
        test_default="""
import pytest

@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_empty(bus_recorder):
    assert bus_recorder.handler_names == ()
""",
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)

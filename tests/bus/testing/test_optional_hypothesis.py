"""The core of `bus.testing` and its pytest plugin import without Hypothesis (an optional extra);
the names that need it say so when used."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import bus.testing


def run_without_hypothesis(code: str) -> subprocess.CompletedProcess[str]:
    blocker = "import sys; sys.modules['hypothesis'] = None\n"  # import hypothesis -> ImportError
    return subprocess.run(
        [sys.executable, "-c", blocker + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_core_and_the_plugin_import_and_run_without_hypothesis() -> None:
    result = run_without_hypothesis(
        """
        import bus.testing, bus.testing.pytest_plugin
        from bus import Event, MessageRegistry
        from bus.testing import Recorder, assert_delivery_guarantees, run

        class Ping(Event):
            n: int

        registry = MessageRegistry()

        @registry.register
        async def pong(ping: Ping) -> None: ...

        recorder = Recorder(registry)

        async def main():
            async with recorder.open() as terminal:
                await recorder.sender().emit(Ping(1))
                await terminal.drain()

        run(main, backend="asyncio")
        assert_delivery_guarantees(recorder)
        try:
            bus.testing.events
        except ImportError as exc:
            print("needs hypothesis:", exc.name)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "needs hypothesis: hypothesis"


def test_lazy_names_resolve_once_and_unknown_names_raise() -> None:
    from bus.testing import strategies

    assert bus.testing.events is strategies.events
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        bus.testing.nope  # noqa: B018

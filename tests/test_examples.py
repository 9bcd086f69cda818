"""The runnable examples run to completion and print what they promise."""

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_the_quickstart_publishes_emits_and_dead_letters() -> None:
    result = run_example("quickstart.py")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "created 'a' (attempt 1)",
        "created 'c' (attempt 1)",
        "created 'e' (attempt 1)",
    ]
    assert any(line.startswith("dead letter: ") and "2 attempts" in line for line in lines)
    assert "in_flight=0, dead_letters=1" in result.stdout


def test_the_demo_accounts_for_every_order(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = run_example("demo.py", "--orders", "300", "--db", str(db))

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "supervision tree at the end of the run:" in out
    assert "charge_payment [actor] running" in out
    fields = {
        label: int(number)
        for label, number in re.findall(r"^  ([a-z-]+): +(\d+)", out, flags=re.MULTILINE)
    }
    assert fields["emitted"] == 300
    assert fields["lost"] == 0
    assert fields["shipped"] + fields["dead-lettered"] == 300
    assert fields["stored"] == fields["paid"] + fields["shipped"] + fields["dead-lettered"]
    assert db.exists()

"""The distributed demo runs to completion: a worker killed, its entries taken over, nothing lost."""

import os
import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "distributed_demo.py"


def test_the_distributed_demo_loses_nothing_when_a_worker_is_killed() -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO), "--orders", "600"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "SIGKILLed worker w2" in out
    fields = {
        label: int(number)
        for label, number in re.findall(r"^  ([a-z]+): (\d+)$", out, flags=re.MULTILINE)
    }
    assert fields["emitted"] == 600
    assert fields["handled"] == 600
    assert fields["lost"] == 0
    assert fields["rows"] == 600 + fields["duplicates"]

"""Shared helpers for the benchmark scripts: interleaved repeats, medians, tables and JSON results.

Each benchmark script defines *cases*: a name and a zero-argument callable that runs one measurement
and returns ``(operations, seconds)``. ``run_cases`` runs every case once per round, in the given order
(baseline, ours, baseline, ours, ...), for ``repeats`` rounds, so that the machine's noise hits every
case alike. Rates are operations per second; the table reports median / min / max and the ratio of
each case's median to each baseline's median.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

Case = tuple[str, Callable[[], tuple[int, float]]]


def env_int(name: str, default: int) -> int:
    """An integer from the environment (``BENCH_N=200000``), or ``default``."""
    value = os.environ.get(name)
    return int(value) if value else default


def repeats(default: int = 5) -> int:
    """Rounds per case: ``BENCH_REPEATS``, at least 1."""
    return max(1, env_int("BENCH_REPEATS", default))


def timed(func: Callable[[], int]) -> tuple[int, float]:
    """Call ``func`` (returning its operation count) and time it with ``perf_counter``."""
    start = time.perf_counter()
    ops = func()
    return ops, time.perf_counter() - start


def run_cases(cases: Sequence[Case], rounds: int, *, label: str = "") -> dict[str, list[float]]:
    """Run the cases interleaved for ``rounds`` rounds; return each case's rates (ops/s)."""
    rates: dict[str, list[float]] = {name: [] for name, _ in cases}
    for r in range(rounds):
        for name, case in cases:
            gc.collect()
            ops, seconds = case()
            rates[name].append(ops / seconds)
        print(f"  {label} round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return rates


def summarize(rates: dict[str, list[float]], baselines: Sequence[str]) -> list[dict[str, Any]]:
    """One row per case: median, min, max and the ratio of medians to each baseline."""
    medians = {name: statistics.median(values) for name, values in rates.items()}
    rows = []
    for name, values in rates.items():
        rows.append(
            {
                "case": name,
                "median": medians[name],
                "min": min(values),
                "max": max(values),
                "runs": values,
                "ratios": {b: medians[name] / medians[b] for b in baselines if b in medians},
            }
        )
    return rows


def _fmt(rate: float) -> str:
    if rate >= 1e6:
        return f"{rate / 1e6:.2f}M"
    if rate >= 1e4:
        return f"{rate / 1e3:.1f}k"
    if rate >= 100:
        return f"{rate:.0f}"
    return f"{rate:.3g}"


def format_table(title: str, rows: list[dict[str, Any]], unit: str = "ops/s") -> str:
    """A fixed-width table: case, median, min, max, then ``x <baseline>`` ratio columns."""
    baselines = list(rows[0]["ratios"]) if rows else []
    width = max([len("case"), *(len(r["case"]) for r in rows)])
    head = f"{'case':<{width}}  {'median':>9}  {'min':>9}  {'max':>9}"
    head += "".join(f"  {'x ' + b:>{max(10, len(b) + 2)}}" for b in baselines)
    lines = [f"{title}  ({unit}, {len(rows[0]['runs']) if rows else 0} runs)", head, "-" * len(head)]
    for r in rows:
        line = f"{r['case']:<{width}}  {_fmt(r['median']):>9}  {_fmt(r['min']):>9}  {_fmt(r['max']):>9}"
        line += "".join(
            f"  {r['ratios'][b]:>{max(10, len(b) + 2)}.2f}" for b in baselines
        )
        lines.append(line)
    return "\n".join(lines)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (``unknown`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    """Python, library versions and machine, for the JSON results and the README."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "anyio": _version("anyio"),
        "trio": _version("trio"),
        "pykka": _version("pykka"),
        "msgspec": _version("msgspec"),
        "sqlite": __import__("sqlite3").sqlite_version,
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def rss_bytes() -> int:
    """Resident set size of this process (VmRSS from /proc/self/status), in bytes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def write_results(script: str, payload: dict[str, Any]) -> Path:
    """Write ``results/<script>.json`` with the environment and a timestamp added."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{script}.json"
    data = {
        "script": script,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": environment(),
        **payload,
    }
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def report(
    script: str,
    sections: Sequence[tuple[str, dict[str, list[float]], Sequence[str], str]],
    extra: dict[str, Any] | None = None,
) -> None:
    """Print one table per section ``(title, rates, baselines, unit)`` and write the JSON."""
    out: dict[str, Any] = {"sections": []}
    for title, rates, baselines, unit in sections:
        rows = summarize(rates, baselines)
        print()
        print(format_table(title, rows, unit))
        out["sections"].append({"title": title, "unit": unit, "baselines": list(baselines), "rows": rows})
    if extra:
        out.update(extra)
    path = write_results(script, out)
    print(f"\nresults written to {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")

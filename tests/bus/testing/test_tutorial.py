"""docs/testing.md runs as shown: its python blocks, in page order in one namespace, print what
the page shows, and the tutorial's property test finds the notifier's ordering bug and shrinks it
to two messages (the counterexample quoted on the page)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[3] / "docs" / "testing.md"
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
SKIP = "<!-- docs-test: skip"


def blocks() -> list[tuple[int, str, str | None]]:
    """``(line, code, expected output)`` of each python block not marked to skip."""
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    fenced: list[tuple[int, str, str, bool]] = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = index + 1
        while not lines[end].startswith("```"):
            end += 1
        skipped = index > 0 and lines[index - 1].startswith(SKIP)
        fenced.append((index + 1, fence.group("lang"), "\n".join(lines[index + 1 : end]), skipped))
        index = end + 1
    result = []
    for position, (line, lang, code, skipped) in enumerate(fenced):
        if lang != "python" or skipped:
            continue
        following = fenced[position + 1] if position + 1 < len(fenced) else None
        between = lines[line + code.count("\n") + 1 : following[0] - 1] if following else []
        output = (
            following[2]
            if following and following[1] == "" and not any(text.strip() for text in between)
            else None
        )
        result.append((line, code, output))
    return result


def matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def test_the_tutorial_runs_and_prints_what_it_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__main__"}
    found = blocks()
    assert len(found) >= 8
    for line, code, output in found:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"docs/testing.md:{line}", "exec"), namespace)
        if output is None:
            continue
        got = printed.getvalue().splitlines()
        want = output.splitlines()
        assert len(got) == len(want), f"block at line {line} printed:\n{printed.getvalue()}"
        for expected, actual in zip(want, got, strict=True):
            assert matches(expected, actual), f"line {line}: expected {expected!r}, got {actual!r}"
    # the property test found the bug and Hypothesis shrank it to two messages in flight at once
    failures = namespace["failures"]
    assert failures == []  # cleared, then the fixed handlers passed
    page = PAGE.read_text(encoding="utf-8")
    shrunk = "2 events: TodoCreated(name='a', content=''), TodoDone(name='a')"
    assert shrunk in page

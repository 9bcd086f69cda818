"""Every ```python block of README.md and docs/*.md runs as shown (issue 7, item 16).

The blocks of one page run in page order in one namespace (``__name__ == "__main__"``), in a fresh
temporary directory, so a page reads as one program. Where a python block is followed directly by
an output block (a fence without a language, or ``text``/``console``), what the python block
printed must match it line by line: lines starting with ``$ `` (the command) are skipped, and
``...`` in an expected line matches any text.

New pages under docs/ are picked up automatically. A block opts out of running only with the
marker line ``<!-- docs-test: skip (reason) -->`` just above its fence; opted-out blocks are
counted and reported (a warning naming each), and the reason is mandatory.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
OUTPUT_LANGS = ("", "text", "console", "output")


@attrs.frozen
class Block:
    page: str
    line: int
    lang: str
    code: str
    skip_reason: str | None = None
    output: str | None = None


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``: python ones with the output block that follows, if any."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    pending_skip: str | None = None
    while index < len(lines):
        marker = SKIP.search(lines[index])
        if marker:
            pending_skip = marker.group("reason").strip()
            index += 1
            continue
        fence = FENCE.match(lines[index])
        if not fence:
            if lines[index].strip():
                pending_skip = None
            index += 1
            continue
        start = index + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        found.append(
            Block(page.name, start, fence.group("lang"), "\n".join(lines[start:end]), pending_skip)
        )
        pending_skip = None
        index = end + 1
    return _attach_outputs(found, lines)


def _attach_outputs(found: list[Block], lines: list[str]) -> list[Block]:
    result: list[Block] = []
    for position, block in enumerate(found):
        if block.lang != "python":
            continue
        following = found[position + 1] if position + 1 < len(found) else None
        output = None
        if following is not None and following.lang in OUTPUT_LANGS:
            between = lines[block.line + block.code.count("\n") + 2 : following.line - 1]
            if not any(line.strip() for line in between):
                output = following.code
        result.append(attrs.evolve(block, output=output))
    return result


def expected_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if not line.startswith("$ ")]


def line_matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_python_block_of_the_page_runs_and_prints_what_it_shows(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__main__", "__file__": str(tmp_path / page.name)}
    for block in blocks(page):
        if block.skip_reason is not None:
            continue
        where = f"{page.name}, block at line {block.line}"
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            try:
                exec(compile(block.code, where, "exec", dont_inherit=True), namespace)
            except BaseException as exc:
                raise AssertionError(f"{where} failed: {exc!r}") from exc
        if block.output is None:
            continue
        want = expected_lines(block.output)
        got = printed.getvalue().splitlines()
        assert len(got) == len(want), f"{where} printed:\n{printed.getvalue()}\nexpected:\n{block.output}"
        for expected, actual in zip(want, got, strict=True):
            assert line_matches(expected, actual), f"{where}: expected {expected!r}, printed {actual!r}"


def test_opted_out_blocks_are_counted_and_reported(record_property: pytest.RecordProperty) -> None:
    skipped = [block for page in PAGES for block in blocks(page) if block.skip_reason is not None]
    record_property("docs_blocks_opted_out", len(skipped))
    for block in skipped:
        warnings.warn(
            f"docs block not run: {block.page} line {block.line} ({block.skip_reason})",
            UserWarning,
            stacklevel=1,
        )
    # every marker sits right above a python block (a stray one would hide nothing, silently)
    markers = sum(len(SKIP.findall(page.read_text(encoding="utf-8"))) for page in PAGES)
    assert markers == len(skipped)


def test_the_extractor_reads_blocks_outputs_and_skip_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n```python\nprint('hi')\n```\n\n```\n$ python x.py\nhi\n```\n\n"
        "<!-- docs-test: skip (needs a server) -->\n```python\nserve()\n```\n\n```sh\nmake\n```\n",
        encoding="utf-8",
    )
    first, second = blocks(page)
    assert (first.code, first.output, first.skip_reason) == ("print('hi')", "$ python x.py\nhi", None)
    assert (second.code, second.skip_reason) == ("serve()", "needs a server")
    assert expected_lines(first.output or "") == ["hi"]
    assert line_matches("id ... done", "id 42ab done")
    assert not line_matches("id ... done", "id 42ab")

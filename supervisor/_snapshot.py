"""Frozen views of a supervision tree: ``which_children`` rows and a printable whole-tree snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from actors import ActorRef

if TYPE_CHECKING:
    from supervisor._supervisor import Supervisor


@attrs.frozen
class ChildInfo:
    """One row of ``which_children()``: id, kind ("actor" or "supervisor"), state, restarts, handle."""

    id: str
    kind: str
    state: str
    restarts: int
    ref: ActorRef | None
    supervisor: Supervisor | None


@attrs.frozen
class ChildCounts:
    """``count_children()``, as OTP's: ``specs`` children known (running or stopped), ``active`` of them
    running (or starting, stopping, waiting out a restart backoff), ``supervisors`` and ``workers`` (actors)
    among the specs."""

    specs: int
    active: int
    supervisors: int
    workers: int


@attrs.frozen
class TreeSnapshot:
    """A node of the tree snapshot; ``str()`` renders the whole subtree as indented text."""

    id: str
    kind: str
    state: str
    restarts: int
    mailbox_depth: int = 0
    processed: int = 0
    failed: int = 0
    children: tuple[TreeSnapshot, ...] = ()

    def walk(self) -> list[TreeSnapshot]:
        """This node and every node below it, depth first."""
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes

    def render(self) -> str:
        """The subtree as indented text, one line a node."""
        lines: list[str] = []
        self._render(lines, "", "", "")
        return "\n".join(lines)

    def _render(self, lines: list[str], lead: str, branch: str, rest: str) -> None:
        line = f"{lead}{branch}{self.id} [{self.kind}] {self.state} restarts={self.restarts}"
        if self.kind == "actor":
            line += f" mailbox={self.mailbox_depth} processed={self.processed} failed={self.failed}"
        lines.append(line)
        for i, child in enumerate(self.children):
            last = i == len(self.children) - 1
            child._render(lines, lead + rest, "└─ " if last else "├─ ", "   " if last else "│  ")

    def __str__(self) -> str:
        return self.render()

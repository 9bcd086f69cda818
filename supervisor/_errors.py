"""Errors raised by supervisors."""

from __future__ import annotations

from actors import ActorError, describe_exception


class SupervisorError(ActorError):
    """Base class of every error a supervisor raises."""


class ChildStartError(SupervisorError):
    """A child failed to start while its supervisor was starting (or in ``start_child`` or
    ``restart_child``).

    ``child_id`` names it; the child's own exception is the ``__cause__``.
    """

    def __init__(self, supervisor: str, child_id: str, cause: BaseException) -> None:
        super().__init__(f"supervisor {supervisor!r}: child {child_id!r} failed to start: {describe_exception(cause)}")
        self.supervisor = supervisor
        self.child_id = child_id


class RestartIntensityExceeded(SupervisorError):
    """A supervisor gave up: more restarts than its intensity allows. Its children were stopped
    newest-first; the child error that tipped it over is the ``__cause__``."""

    def __init__(self, supervisor: str, max_restarts: int, within: float) -> None:
        super().__init__(
            f"supervisor {supervisor!r} gave up: more than {max_restarts} restarts within {within} s"
        )
        self.supervisor = supervisor


class ChildNotFoundError(SupervisorError, KeyError):
    """No child with that id (or the child is not in a state that allows the operation)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

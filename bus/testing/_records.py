"""What a `Recorder` writes down: sends, deliveries and the bus's notices, in one timeline."""

from __future__ import annotations

from typing import Literal

import attrs

from bus import Event, MessageContext

#: headers a recorder's senders add to each message: who sent it, its position in that sender's
#: sends (0-based), and whether it was published or emitted
SENDER_HEADER = "bus-testing-sender"
SEQ_HEADER = "bus-testing-seq"
VIA_HEADER = "bus-testing-via"

Via = Literal["publish", "emit", "unknown"]
"""How a message was sent: ``"unknown"`` when it did not go through a recorder's sender."""

Outcome = Literal["running", "ok", "raised", "dead_lettered"]
"""How a delivery ended: still running, returned, raised, or raised and was the last attempt
before the message became a `DeadLetter` (set when the recorder gets the dead letter)."""

NoticeKind = Literal["dead_letter", "restarted", "stopped"]
"""Which notice of the bus a `Notice` records."""


class InjectedFault(Exception):
    """Raised in place of a handler's run by a fault plan (the handler's code did not run)."""


@attrs.define(slots=True, eq=False)
class Send:
    """One message sent through a recorder's sender, recorded when the send starts.

    ``index`` is the position in the record's timeline; ``sender``/``seq`` identify the message
    (``seq`` counts that sender's sends from 0); ``error`` is what the send raised to its caller
    (for a publish: the first failing handler's exception), or None; ``done`` once it returned
    or raised.
    """

    index: int
    sender: str
    seq: int
    via: Via
    event: Event
    error: BaseException | None = None
    #: the send returned or raised
    done: bool = False

    def describe(self) -> str:
        """One line for a failure message."""
        failed = f" -> raised {_error(self.error)}" if self.error is not None else ""
        verb = "publishes" if self.via == "publish" else "emits"
        return f"#{self.index} {_short(self.sender)}[{self.seq}] {verb} {self.event!r}{failed}"


@attrs.define(slots=True, eq=False)
class Delivery:
    """One attempt of one handler at one message, recorded when the attempt starts.

    ``sender``/``seq``/``via`` come from the headers a recorder's sender added (``""``, ``-1`` and
    ``"unknown"`` for a message that did not go through one). ``outcome`` is filled in when the
    attempt ends (``"dead_lettered"`` once the recorder gets the `DeadLetter` that followed this
    failed attempt); ``error`` is what it raised, ``injected`` whether a fault plan raised it.
    ``message`` counts the distinct messages this handler got, from 1 (what fault plans refer to).
    """

    index: int
    handler: str
    event: Event
    context: MessageContext
    attempt: int
    message: int
    sender: str
    seq: int
    via: Via
    outcome: Outcome = "running"
    error: BaseException | None = None
    injected: bool = False

    @property
    def failed(self) -> bool:
        """Whether the attempt raised (``outcome`` is ``"raised"`` or ``"dead_lettered"``)."""
        return self.outcome in ("raised", "dead_lettered")

    @property
    def message_id(self) -> str:
        """The delivered message's id (shared by its attempts and its other handlers)."""
        return self.context.message_id

    def describe(self) -> str:
        """One line for a failure message."""
        origin = f"{_short(self.sender)}[{self.seq}] " if self.seq >= 0 else ""
        end = self.outcome if self.error is None else f"raised {_error(self.error)}"
        if self.outcome == "dead_lettered":
            end += ", then dead-lettered"
        return (
            f"#{self.index} {_short(self.handler)} <- {origin}{self.event!r} "
            f"(attempt {self.attempt}): {end}"
        )


@attrs.frozen(slots=True, eq=False)
class Notice:
    """A notice of the bus about a handler: a dead letter, a restart or a stop.

    For a dead letter, ``message_id`` is the message that was given up on and ``event`` the
    `DeadLetter` itself; ``reason`` is its reason (or the stop's reason).
    """

    index: int
    kind: NoticeKind
    handler: str
    event: Event
    message_id: str = ""
    reason: str = ""

    def describe(self) -> str:
        """One line for a failure message."""
        about = f" of message {self.message_id[-6:]}" if self.message_id else ""
        why = f" ({self.reason})" if self.reason else ""
        return f"#{self.index} {self.kind}{about} in {_short(self.handler)}{why}"


Entry = Send | Delivery | Notice
"""One entry of a record's timeline."""


def _short(handler: str) -> str:
    return handler.rsplit(".", 1)[-1]


def _error(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}({text!r})" if text else type(error).__name__

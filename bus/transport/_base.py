"""What the terminal needs from a transport, and the error a transport raises."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

import attrs

from bus._errors import BusError
from bus._events import Event, MessageContext

if TYPE_CHECKING:
    from actors import DeadLetter as RuntimeDeadLetter
    from supervisor import ChildSpec


class TransportError(BusError):
    """Raised when a transport cannot be used: its server is unreachable at start-up (the message
    names host and port), a write did not reach it within its timeout, or the event loop is one
    the transport's client does not run on (Redis clients are asyncio-only)."""


@attrs.frozen
class TransportStatistics:
    """A snapshot of a transport's counters in this process.

    ``written``: entries this process wrote; ``delivered``: entries its consumers put into handler
    mailboxes (claimed ones included); ``acknowledged``: entries acknowledged after the handler
    succeeded or skipped (not subscribed); ``dead_lettered``: entries sent to the dead-letter
    stream; ``claimed``: entries taken over from other consumers; ``lost_nowait``: entries given to
    ``emit_nowait`` that could not be written (logged)."""

    written: int
    delivered: int
    acknowledged: int
    dead_lettered: int
    claimed: int
    lost_nowait: int


class Transport(abc.ABC):
    """Carries emitted events between processes; `BusTerminal` drives it. Not meant to be
    subclassed by users yet: the interface may change while more transports arrive."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect; raise `TransportError` naming the server when it cannot be reached."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the connections."""

    @abc.abstractmethod
    def child_specs(self, dispatcher: object) -> list[ChildSpec]:
        """The writer and the consumers, started under the terminal's ``transport`` supervisor."""

    @abc.abstractmethod
    def carries(self, event: Event) -> bool:
        """Whether ``emit`` of ``event`` goes through the transport (the bus's notices stay local)."""

    @abc.abstractmethod
    async def emit(self, event: Event, context: MessageContext) -> None:
        """Write one event; return once the server has it."""

    @abc.abstractmethod
    def emit_nowait(self, event: Event, context: MessageContext) -> None:
        """Hand one event to the batching writer and return."""

    @abc.abstractmethod
    def on_dead_letter(self, letter: RuntimeDeadLetter) -> None:
        """A runtime dead letter: the transport settles those that are its deliveries."""

    @abc.abstractmethod
    async def quiesce(self) -> None:
        """Stop taking new entries (the terminal is stopping)."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Write out pending acknowledgements and dead letters (the terminal is stopping)."""

    @abc.abstractmethod
    def statistics(self) -> TransportStatistics:
        """The counters of this process."""

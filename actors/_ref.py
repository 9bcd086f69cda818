"""ActorRef: the only handle other code holds on an actor."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, final

import anyio

from actors._errors import WrongThreadError
from actors._mailbox import Mailbox, Request

if TYPE_CHECKING:
    from actors._cell import ActorCell, ActorStatistics, Terminated


#: the thread id the last ref was made with: the refs of one loop share one int object (32 B each
#: otherwise, and a supervisor may hold 100,000 refs); a race between threads only costs that saving
_last_thread: list[int] = [0]


def _shared_thread_id() -> int:
    ident = threading.get_ident()
    last = _last_thread[0]
    if ident == last:
        return last
    _last_thread[0] = ident
    return ident


@final
class ActorRef:
    """Send messages to an actor. Stable across restarts: the mailbox belongs to the actor's identity."""

    __slots__ = ("_cell", "_thread")

    def __init__(self, cell: ActorCell) -> None:
        self._cell = cell
        #: the actor's event loop thread: refs are made there, and only work there
        self._thread = _shared_thread_id()

    def _check_thread(self, method: str) -> None:
        if threading.get_ident() != self._thread:
            msg = (
                f"ActorRef.{method} of actor {self._cell.name!r} called from another thread than its "
                f"event loop's: use anyio.from_thread.run_sync(ref.{method}, message) from a worker "
                "thread, or loop.call_soon_threadsafe"
            )
            raise WrongThreadError(msg)

    @property
    def _mailbox(self) -> Mailbox:
        # the cell is its own mailbox; kept for code that reached the mailbox through the ref
        return self._cell

    @property
    def name(self) -> str:
        """The actor's name (its child id under its supervisor)."""
        return self._cell.name

    @property
    def alive(self) -> bool:
        """False once the actor stopped for good."""
        return not self._cell.closed

    def tell_nowait(self, message: Any) -> None:
        """Queue ``message`` without waiting. A full mailbox applies its overflow policy; under
        backpressure (and ``fail``) that raises ``MailboxFullError``. To a stopped actor: a dead letter.
        From another thread than the actor's event loop's: ``WrongThreadError``, nothing queued."""
        if threading.get_ident() != self._thread:
            self._check_thread("tell_nowait")
        self._cell.put_nowait(message)

    async def tell(self, message: Any) -> None:
        """Queue ``message``, waiting for room in a bounded mailbox under backpressure.

        It does not yield when there is room: a sender in a loop keeps the CPU until the mailbox is full.
        """
        self._check_thread("tell")
        await self._cell.put(message)

    async def ask(self, message: Any, timeout: float | None = None) -> Any:
        """Send ``message`` and return the actor's reply (what ``receive`` returned).

        The actor's exception is raised here. ``timeout`` (seconds, including any wait for room in a full
        mailbox) raises ``TimeoutError`` and the late reply is discarded. An ask to a stopped actor raises
        ``ActorStoppedError`` at once.
        """
        self._check_thread("ask")
        cell = self._cell
        reply = cell.new_future()
        if timeout is None:
            request = Request(message, reply)
            if not cell.offer(request):  # full: wait for room (one coroutine less when there is)
                await cell.put(request)
            return await reply
        # the timeout covers waiting for room in a full mailbox too
        with anyio.fail_after(timeout):
            await self._cell.put(Request(message, reply))
            return await reply

    def ask_nowait(self, message: Any) -> Any:
        """Queue an ask without waiting for room; returns the awaitable reply."""
        self._check_thread("ask_nowait")
        reply = self._cell.new_future()
        self._cell.put_nowait(Request(message, reply))
        return reply

    def watch(self, listener: Callable[[Terminated], None]) -> Callable[[], None]:
        """Call ``listener`` with a ``Terminated`` notice when the actor stops for good (never on a
        restart). Returns a function that unwatches. Watching a stopped actor notifies at once."""
        return self._cell.watch(listener)

    def statistics(self) -> ActorStatistics:
        """A frozen snapshot of the actor's counters."""
        return self._cell.statistics()

    def __repr__(self) -> str:
        return f"<ActorRef {self.name!r}{'' if self.alive else ' stopped'}>"

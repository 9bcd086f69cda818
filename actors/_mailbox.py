"""Mailboxes: a deque drained without yielding, parked on a one-shot future only when empty."""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from typing import Any, Final

import attrs
import msgspec

from actors._dead_letters import DeadLetter, DeadLetterReason, DeadLetters
from actors._errors import ActorStoppedError, MailboxFullError, RequestDroppedError
from actors._waiting import FutureFactory, OneShot


class Overflow(enum.Enum):
    """What a bounded mailbox does with a message when it is full."""

    #: the sender waits for room (``tell``); ``tell_nowait`` raises ``MailboxFullError``
    BACKPRESSURE = "backpressure"
    #: the new message is dropped and dead-lettered
    DROP_NEW = "drop_new"
    #: the oldest queued message is dropped and dead-lettered, the new one is queued
    DROP_OLDEST = "drop_oldest"
    #: the sender gets ``MailboxFullError`` at once
    FAIL = "fail"


@attrs.frozen
class MailboxSpec:
    """A mailbox's shape: ``capacity=None`` is unbounded."""

    capacity: int | None = None
    overflow: Overflow = Overflow.BACKPRESSURE

    def __attrs_post_init__(self) -> None:
        if self.capacity is not None and self.capacity < 1:
            raise ValueError(f"mailbox capacity must be at least 1 or None, got {self.capacity!r}")
        if not isinstance(self.overflow, Overflow):
            raise TypeError(f"mailbox overflow must be an Overflow, got {self.overflow!r}")


UNBOUNDED: Final = MailboxSpec()


class _IdleQueue(deque[Any]):
    """The queue of every idle mailbox: one shared, empty deque that refuses items.

    An empty deque costs ~770 bytes, more than the rest of an idle actor: an idle mailbox (its actor
    has no task) holds this shared one instead, and gets a deque of its own again with its next message.
    Appending to it is a bug (the put would be lost for the other mailboxes sharing it), so it raises.
    """

    def append(self, item: Any, /) -> None:
        raise RuntimeError("an idle mailbox's queue takes no items: use Mailbox.put_nowait")

    def appendleft(self, item: Any, /) -> None:
        raise RuntimeError("an idle mailbox's queue takes no items: use Mailbox.put_nowait")

    def extend(self, items: Iterable[Any], /) -> None:
        raise RuntimeError("an idle mailbox's queue takes no items: use Mailbox.put_many")


IDLE_QUEUE: Final = _IdleQueue()
#: what ``Mailbox.wait_nonempty`` returns when the linger sweep asked its task to leave
RETIRE: Final = object()


class Request(msgspec.Struct, eq=False):
    """An ``ask`` as it sits in a mailbox: the message and the ``OneShot`` its reply (or the actor's
    error) goes to. Put one in a mailbox to ask without ``ActorRef.ask``; the actor's ``receive`` gets
    ``message`` and its return value completes ``reply``. Compared by identity."""

    # a Struct rather than a slots class: its constructor runs in C, and every ask and publish
    # makes one (~0.1 us instead of ~0.24 us)
    message: Any
    reply: OneShot


def fail_request(request: Request, error: BaseException) -> None:
    """Fail a request's asker, unless it already gave up (its future is then done)."""
    if not request.reply.done():
        request.reply.set_exception(error)


class Mailbox:
    """An actor's queue. It belongs to the actor's identity, not to one incarnation.

    An ``ActorCell`` is its own mailbox (a subclass: one object per actor rather than two, since a
    supervisor may hold 100,000 idle actors); it activates its idle incarnation when a message arrives.
    """

    __slots__ = (
        "_closed",
        "_overflow",
        "_receiver",
        "_senders",
        "capacity",
        "dead_letters",
        "name",
        "new_future",
        "queue",
    )

    def __init__(
        self, name: str, spec: MailboxSpec, dead_letters: DeadLetters, new_future: FutureFactory
    ) -> None:
        self.name = name
        #: the messages, oldest first; ``IDLE_QUEUE`` (shared, empty) while the mailbox is idle
        self.queue: deque[Any] = deque()
        #: the bound (messages), None when unbounded; read-only
        self.capacity = spec.capacity
        self._overflow = spec.overflow
        #: where rejected and dropped messages are reported
        self.dead_letters = dead_letters
        #: makes the one-shot futures that parked receivers, waiting senders and asks await
        self.new_future = new_future
        self._receiver: OneShot | None = None
        # made on first use, and a list, not a deque: an idle actor's empty deque would cost ~770 bytes,
        # and waiting senders are few
        self._senders: list[OneShot] | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self.queue)

    @property
    def closed(self) -> bool:
        """True once the actor stopped for good: new messages become dead letters."""
        return self._closed

    def has_room(self) -> bool:
        """True when a message can be queued now without applying the overflow policy."""
        return self.capacity is None or len(self.queue) < self.capacity

    def put_nowait(self, item: Any) -> None:
        """Queue ``item`` without waiting, applying the overflow policy when full."""
        if self._closed:
            self._reject(item)
            return
        queue = self.queue
        if self.capacity is not None and len(queue) >= self.capacity and not self._overflowed(item):
            return
        if queue is IDLE_QUEUE:
            self._wake_idle().append(item)
            return
        queue.append(item)
        # wake() inlined here and in offer(): once per message, on every emit and tell
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            if not receiver.done():
                receiver.set_result(None)

    def offer(self, item: Any) -> bool:
        """Queue ``item`` if the mailbox has room now (True); else leave it out and return False.

        ``has_room()`` then ``put_nowait()`` in one call, for a sender that waits (or applies the
        overflow policy) itself when the mailbox is full. A closed mailbox takes the item as
        ``put_nowait`` does (a dead letter, or a failed request) and returns True.
        """
        queue = self.queue
        capacity = self.capacity
        if capacity is not None and len(queue) >= capacity:
            return False
        if self._closed:
            self._reject(item)
        elif queue is IDLE_QUEUE:
            self._wake_idle().append(item)
        else:
            queue.append(item)
            receiver = self._receiver
            if receiver is not None:
                self._receiver = None
                if not receiver.done():
                    receiver.set_result(None)
        return True

    def put_many(self, items: list[Any]) -> None:
        """``put_nowait`` each of ``items`` in order, with one wake-up of the receiver.

        When they all fit (or the mailbox is unbounded) they are queued at once; otherwise each
        goes through ``put_nowait`` in turn (the overflow policy applies per item, as it would).
        """
        queue = self.queue
        capacity = self.capacity
        if not items:
            return
        if self._closed or (capacity is not None and len(queue) + len(items) > capacity):
            for item in items:
                self.put_nowait(item)
            return
        if queue is IDLE_QUEUE:
            self._wake_idle().extend(items)
            return
        queue.extend(items)
        self.wake()  # once per batch: the call costs nothing here

    def put_over_capacity(self, item: Any) -> None:
        """Queue ``item`` at the back even when the mailbox is full: no overflow policy applies.

        For messages a bound must never refuse (Akka's system messages): notices, and a send that
        waiting for room would deadlock. A closed mailbox still rejects ``item`` as a dead letter.
        """
        if self._closed:
            self._reject(item)
            return
        queue = self.queue
        if queue is IDLE_QUEUE:
            self._wake_idle().append(item)
            return
        queue.append(item)
        self.wake()

    async def put(self, item: Any) -> None:
        """Queue ``item``, waiting for room when the mailbox is full under backpressure."""
        capacity = self.capacity
        if capacity is not None and self._overflow is Overflow.BACKPRESSURE:
            while len(self.queue) >= capacity and not self._closed:
                waiter = self.new_future()
                senders = self._senders
                if senders is None:
                    self._senders = senders = []
                senders.append(waiter)
                try:
                    await waiter
                except BaseException:
                    if waiter in senders:
                        senders.remove(waiter)
                    elif waiter.done() and not waiter.cancelled():
                        # we were handed the free slot but are leaving: pass it on
                        self._wake_sender()
                    raise
        self.put_nowait(item)

    def put_front(self, item: Any) -> None:
        """Queue ``item`` ahead of everything else, ignoring capacity (used for redelivery)."""
        queue = self.queue
        if queue is IDLE_QUEUE:
            queue = self._wake_idle()
        queue.appendleft(item)

    @property
    def idle(self) -> bool:
        """True while the mailbox is idle: empty, and its actor holds no task."""
        return self.queue is IDLE_QUEUE

    def go_idle(self) -> None:
        """The receiver's task is leaving an empty mailbox: give up the deque until the next message."""
        if not self.queue:
            self.queue = IDLE_QUEUE
            self._receiver = None

    def unidle(self) -> None:
        """A task receives from this mailbox again: give it a deque of its own."""
        if self.queue is IDLE_QUEUE:
            self.queue = deque()

    def _wake_idle(self) -> deque[Any]:
        queue: deque[Any] = deque()
        self.queue = queue
        self._woke()
        return queue

    def _woke(self) -> None:
        """An idle mailbox got a message: its owner starts a task again (``ActorCell`` overrides this)."""

    async def wait_nonempty(self) -> Any:
        """Park until a message arrives (or ``wake`` is called); returns what the waker passed (None,
        unless it was ``retire``)."""
        if self.queue:
            return None
        receiver = self.new_future()
        self._receiver = receiver
        try:
            return await receiver
        finally:
            if self._receiver is receiver:
                self._receiver = None

    def wake(self) -> None:
        """Wake the parked receiver, if any, even though nothing arrived (e.g. a stop request)."""
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            if not receiver.done():
                receiver.set_result(None)

    def retire(self) -> None:
        """Wake the parked receiver with ``RETIRE``: its task may leave the mailbox idle if nothing
        arrived meanwhile (the linger sweep)."""
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            if not receiver.done():
                receiver.set_result(RETIRE)

    def took_one(self) -> None:
        """Called by the receiver after taking a message: let one waiting sender in."""
        if self._senders:
            self._wake_sender()

    def close(self) -> None:
        """Stop accepting messages; queued ones become dead letters, pending asks fail."""
        self._closed = True
        queue = self.queue
        while queue:
            self._reject(queue.popleft())
        while self._senders:
            self._wake_sender()

    def reopen(self) -> None:
        """Accept messages again (the actor was started anew after a permanent stop)."""
        self._closed = False

    def _wake_sender(self) -> None:
        senders = self._senders
        while senders:
            waiter = senders.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return

    def _reject(self, item: Any) -> None:
        if type(item) is Request:
            fail_request(item, ActorStoppedError(f"actor {self.name!r} is stopped"))
        else:
            self.dead_letters.report(DeadLetter(item, self.name, DeadLetterReason.STOPPED))

    def _overflowed(self, item: Any) -> bool:
        """Apply the overflow policy to a full mailbox; True when ``item`` may be queued."""
        overflow = self._overflow
        if overflow is Overflow.DROP_OLDEST:
            self._drop(self.queue.popleft())
            return True
        if overflow is Overflow.DROP_NEW:
            self._drop(item)
            return False
        raise MailboxFullError(
            f"mailbox of {self.name!r} is full ({self.capacity} messages, overflow={overflow.value})"
        )

    def _drop(self, item: Any) -> None:
        if type(item) is Request:
            fail_request(item, RequestDroppedError(f"mailbox of {self.name!r} dropped the request"))
            item = item.message
        self.dead_letters.report(DeadLetter(item, self.name, DeadLetterReason.OVERFLOW))

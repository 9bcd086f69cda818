"""Errors raised by the actor runtime, and how the runtime describes any exception."""

from __future__ import annotations


def describe_exception(error: BaseException) -> str:
    """An exception as one line, ``"TypeName: text"`` (``"TypeName"`` alone when it has no text).

    Never raises: an exception whose own ``__str__`` raises is described as
    ``"TypeName: <str() failed: ...>"``, so that describing a user's odd exception (to log it,
    dead-letter it, or put it in another error's message) can never crash the code describing it.
    Types outside the builtins are named with their module: ``"app.errors.Declined: card"``.
    """
    kind = type(error)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    try:
        text = str(error)
    except Exception as failure:  # noqa: BLE001 - any failure of a user's __str__ is described
        text = f"<str() failed: {type(failure).__name__}>"
    return f"{name}: {text}" if text else name


class ActorError(Exception):
    """Base class of every error the actor runtime raises."""


class ActorStoppedError(ActorError):
    """The actor was stopped for good: an ``ask`` to it, or one pending when it stopped, fails with this."""


class MailboxFullError(ActorError):
    """A bounded mailbox had no room: raised by ``tell_nowait`` under backpressure, and by the ``fail``
    overflow policy at the sender."""


class WrongThreadError(ActorError, RuntimeError):
    """An ``ActorRef`` was used from a thread other than its actor's event loop thread.

    Actors are event-loop objects: from another thread, go through the loop, e.g.
    ``anyio.from_thread.run_sync(ref.tell_nowait, message)`` from a worker thread anyio started, or
    ``loop.call_soon_threadsafe(ref.tell_nowait, message)``. Nothing is queued by the refused call.
    """


class RequestDroppedError(MailboxFullError):
    """An ``ask`` was dropped by a full mailbox's ``drop_new`` or ``drop_oldest`` policy."""


class ActorCrashedError(ActorError):
    """An actor crashed with an exception that must not reach others as itself.

    Today that is a cancellation (``asyncio.CancelledError``, ``trio.Cancelled``) that escaped the actor's
    code without coming from the actor's own cancel scope: for instance a ``receive`` that awaited a
    future someone else cancelled. It is an ordinary crash of that actor (restarted per policy), and the
    asker of the message gets this error, with the escaped exception as its ``__cause__``, instead of a
    bare cancellation that would cancel the asker's own task.
    """

    def __init__(self, actor: str, cause: BaseException) -> None:
        super().__init__(f"actor {actor!r} crashed: {describe_exception(cause)} escaped its code")
        self.actor = actor
        self.__cause__ = cause

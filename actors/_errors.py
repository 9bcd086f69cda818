"""Errors raised by the actor runtime."""

from __future__ import annotations


class ActorError(Exception):
    """Base class of every error the actor runtime raises."""


class ActorStoppedError(ActorError):
    """The actor was stopped for good: an ``ask`` to it, or one pending when it stopped, fails with this."""


class MailboxFullError(ActorError):
    """A bounded mailbox had no room: raised by ``tell_nowait`` under backpressure, and by the ``fail``
    overflow policy at the sender."""


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
        super().__init__(f"actor {actor!r} crashed: {type(cause).__name__} escaped its code: {cause!r}")
        self.actor = actor
        self.__cause__ = cause

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

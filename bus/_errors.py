"""The exceptions the bus raises; every one derives from `BusError`."""

from __future__ import annotations


class BusError(Exception):
    """Base class of every error the bus raises, so ``except BusError`` catches them all."""


class SinkUnsetError(BusError):
    """Raised by ``bus.sink(event)`` when the terminal was started without any sink configured."""


class RegistrationError(BusError, TypeError):
    """Raised when something cannot be registered: a handler without an event annotation, a
    subscription to a type that is not an ``event_base`` subclass, an unresolvable dependency, or
    an event class whose type name is already taken by another class.

    It is also a `TypeError`, because each of these is a mistake in how a function or class is
    declared, found before anything runs.
    """


class BusClosedError(BusError):
    """Raised by ``publish``, ``emit`` and ``sink`` when the terminal is not running: not started
    yet, shutting down, or stopped."""


class HandlerStoppedError(BusError):
    """Raised by ``publish`` to a handler whose actor was stopped for good (its supervisor gave up
    on it), so the message can never be delivered."""


class MailboxFullError(BusError):
    """Raised by ``emit_nowait`` when a subscribed handler's bounded mailbox has no room, and by
    ``emit`` under the ``"fail"`` overflow policy."""


class UnknownEventTypeError(BusError, KeyError):
    """Raised when a type name read from the wire (a sink, a transport) names no event class known
    to this process, usually because the module defining the class was not imported.

    It is also a `KeyError`, as the lookup of a name in the event registry failed.
    """

    def __str__(self) -> str:
        # KeyError.__str__ shows the repr of its argument, which would wrap the message in quotes.
        return Exception.__str__(self)


class SinkError(BusError):
    """Raised when a sink cannot be used: its storage cannot be opened or created (an unwritable
    or missing directory, a path that is a directory, a database that cannot switch to WAL), or
    it is written to or read from while not open. The message names the sink's path."""


class HandlerCancelledError(BusError):
    """A handler let a ``CancelledError`` escape that was not a cancellation of the handler itself
    (typically it awaited a future that another task cancelled). The bus treats it as an ordinary
    crash of that handler: ``publish`` raises this error with the ``CancelledError`` as its
    ``__cause__``, an emitted message is retried and dead-lettered, and nothing else is affected."""

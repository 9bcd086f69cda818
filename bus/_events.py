"""Events, their stable type names, and the context that travels with each message."""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, final

import msgspec

from actors import describe_exception
from bus._errors import RegistrationError, UnknownEventTypeError

# Every Event subclass by its type name: what turns a name read from the wire back into a class.
_REGISTRY: dict[str, type[Event]] = {}


# Events are frozen at runtime, but the flag is hidden from type checkers: under PEP 681 a
# subclass of a frozen Struct must repeat `frozen=True` or mypy reports it (msgspec issue #657),
# and `class TodoCreated(Event): ...` has to type-check as written.
_FROZEN: dict[str, Any] = {"frozen": True}


class Event(msgspec.Struct, **_FROZEN):
    """Base class of every event: a frozen msgspec Struct, so positional construction works.

    Subclasses are frozen too (assigning a field raises `AttributeError`) without repeating
    ``frozen=True``; do not pass it, since type checkers do not see that the base is frozen.

    Each subclass gets a stable *type name*, used on the wire (sinks, transports) to decode an
    event back to its class. It defaults to ``f"{cls.__module__}.{cls.__qualname__}"``; set the
    ``__type_name__`` class variable to choose one that survives moving or renaming the class::

        class TodoCreated(Event):
            __type_name__ = "todo.created"
            name: str
            content: str

    A class defined in a script (module ``__main__``) has a default name ``"__main__.X"`` that
    would not decode where the same module is imported under its real name (``uvicorn app:api``,
    pytest), so such a class can be published and emitted, but storing or encoding it
    (``bus.sink``, `Codec.encode`) raises `TypeError` until it is given an explicit
    ``__type_name__``.

    A subclass does not inherit its parent's explicit name: it gets its own default. Two
    different classes claiming one name raise `RegistrationError` at the second class statement,
    except that defining again a class with the same module and qualified name (a test, a notebook
    cell, a reload) replaces the earlier definition.
    """

    __type_name__: ClassVar[str] = "bus.Event"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _register(cls)


def _same_definition(a: type, b: type) -> bool:
    return a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__


#: classes whose type name is the default one of a class defined in ``__main__``
_SCRIPT_NAMED: set[type] = set()


def _register(cls: type[Event]) -> None:
    explicit = cls.__dict__.get("__type_name__")
    if explicit is None:
        name = f"{cls.__module__}.{cls.__qualname__}"
        cls.__type_name__ = name
        if cls.__module__ == "__main__":
            _SCRIPT_NAMED.add(cls)
    elif isinstance(explicit, str) and explicit:
        name = explicit
    else:
        msg = f"{cls.__qualname__}.__type_name__ must be a non-empty str, got {explicit!r}"
        raise RegistrationError(msg)
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls and not _same_definition(existing, cls):
        msg = (
            f"event type name {name!r} of {cls.__module__}.{cls.__qualname__} is already used by "
            f"{existing.__module__}.{existing.__qualname__}; set a distinct __type_name__ on one "
            "of them"
        )
        raise RegistrationError(msg)
    # A redefinition may have changed its explicit name: forget the earlier one, so that the old
    # name is free again and does not decode to a stale class.
    stale = [n for n, c in _REGISTRY.items() if n != name and _same_definition(c, cls)]
    for n in stale:
        del _REGISTRY[n]
    _REGISTRY[name] = cls


_REGISTRY[Event.__type_name__] = Event


def event_type_name(cls: type[Event]) -> str:
    """The stable type name ``cls`` is known by on the wire; `TypeError` if it is not an Event."""
    if not (isinstance(cls, type) and issubclass(cls, Event)):
        msg = f"expected an Event subclass, got {cls!r}"
        raise TypeError(msg)
    return cls.__type_name__


def check_wire_name(cls: type[Event]) -> None:
    """Raise `TypeError` if ``cls`` has no type name that decodes in another process.

    That is a class defined in a script (module ``__main__``) without an explicit
    ``__type_name__``: its default name ``"__main__.X"`` is not the name it gets when its module
    is imported, so what a script stores could not be read back by the application.
    """
    if cls in _SCRIPT_NAMED:
        msg = (
            f"event class {cls.__qualname__} is defined in a script (module __main__), so its "
            f"default type name {cls.__type_name__!r} would not decode where the module is "
            "imported under its own name; give it an explicit, stable name: "
            f"class {cls.__qualname__}(Event): __type_name__ = \"<app>.{cls.__qualname__}\""
        )
        raise TypeError(msg)


def event_class(name: str) -> type[Event]:
    """The Event class registered under the type name ``name``.

    Raises `UnknownEventTypeError` (a `KeyError`) when no class of that name has been defined in
    this process; its message says what to do (import the module, or give the class that wrote
    the data this name as its ``__type_name__``).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownEventTypeError(_unknown_name_advice(name)) from None


def _unknown_name_advice(name: str) -> str:
    head = f"unknown event type {name!r}: "
    if name.startswith("__main__."):
        return head + (
            "it was written by a class defined in a script (module __main__) under its default "
            f"name; to read it, set __type_name__ = {name!r} on that class (and give new event "
            "classes an explicit __type_name__)"
        )
    module, _, qualname = name.rpartition(".")
    if module and module in sys.modules:
        return head + (
            f"module {module!r} is imported but has no Event class {qualname!r} registered under "
            "that name; if the class was renamed or moved, set "
            f"__type_name__ = {name!r} on it"
        )
    if module:
        return head + (
            f"no class has that name in this process; import the module that defines it "
            f"({module!r} if the name is a default one), or define a class with "
            f"__type_name__ = {name!r}"
        )
    return head + f"no class has that name; define one with __type_name__ = {name!r}"


# A message id is a 128-bit number written as 32 hex digits, like uuid4().hex: 64 random bits
# drawn once per process, then a 64-bit counter. uuid4() reads os.urandom on every call and costs
# about 2.2 us here; this costs about 0.13 us, and the ids of one process sort in creation
# order, which keeps a sink's primary-key index appending at its end.
def _seeded_counter() -> itertools.count[int]:
    return itertools.count(int.from_bytes(os.urandom(8), "big") << 64)


_counter = _seeded_counter()


def _reseed_after_fork() -> None:
    # A forked child would otherwise continue the parent's sequence and repeat its ids.
    global _counter
    _counter = _seeded_counter()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_after_fork)


def new_message_id() -> str:
    """A new message id: 32 lowercase hex digits, unique across processes and hosts.

    Not a secret: the ids of one process are sequential.
    """
    # %-formatting: the quickest way to a zero-padded hex string, on every message's path.
    return "%032x" % next(_counter)  # noqa: UP031


_now = time.time
_now_ns = time.time_ns


def check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` as a new dict, after checking that every key and value is a `str`.

    Raises `TypeError` naming the first offending key: a header that is not text could not be
    stored or sent and read back.
    """
    if not isinstance(headers, Mapping):
        msg = f"headers must be a mapping of str to str, got {type(headers).__qualname__}"
        raise TypeError(msg)
    checked = dict(headers)
    for key, value in checked.items():
        if type(key) is not str or type(value) is not str:
            if not isinstance(key, str):
                msg = f"header keys must be str, got {key!r} ({type(key).__qualname__})"
                raise TypeError(msg)
            if not isinstance(value, str):
                msg = f"header {key!r} must be a str, got {type(value).__qualname__} {value!r}"
                raise TypeError(msg)
    return checked


def check_message_id(message_id: object) -> str:
    """``message_id`` if it is a usable message id: a non-empty `str` of printable characters.

    Raises `TypeError` (not a str) or `ValueError` (empty, or holding control characters).
    """
    if not isinstance(message_id, str):
        msg = f"message_id must be a str, got {type(message_id).__qualname__} {message_id!r}"
        raise TypeError(msg)
    if not message_id or not message_id.isprintable():
        msg = f"message_id must be a non-empty str of printable characters, got {message_id!r}"
        raise ValueError(msg)
    return message_id


@final
class MessageContext(msgspec.Struct, frozen=True, gc=False):
    """What travels with a message: identity, causality, delivery attempt and headers.

    - ``message_id``: unique id of this message (32 hex digits).
    - ``correlation_id``: shared by every message caused, directly or not, by one root message;
      a root message's correlation id is its own message id.
    - ``causation_id``: the message id of the message whose handler sent this one; ``None`` for
      a root message.
    - ``timestamp``: when the message was created, seconds since the epoch (`time.time`).
    - ``attempt``: 1 for the first delivery, incremented on each retry.
    - ``headers``: free-form string metadata, inherited by caused messages. Treat it as
      read-only: it may be shared with the contexts it was inherited from.

    Build a root context with `MessageContext.new` and a caused one with `caused`.
    """

    message_id: str = msgspec.field(default_factory=new_message_id)
    correlation_id: str = ""
    causation_id: str | None = None
    timestamp: float = msgspec.field(default_factory=_now)
    attempt: int = 1
    headers: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        # Lets MessageContext() and keyword construction give a root context too.
        if not self.correlation_id:
            msgspec.structs.force_setattr(self, "correlation_id", self.message_id)

    @classmethod
    def new(
        cls,
        headers: Mapping[str, str] | None = None,
        correlation_id: str | None = None,
        *,
        message_id: str | None = None,
    ) -> MessageContext:
        """A context for a root message: fresh id, no cause, first attempt.

        ``correlation_id`` joins the message to an existing conversation (for example an id from
        an incoming HTTP request); by default it is the new message's own id. ``message_id``
        replaces the fresh id with the caller's own (an idempotency key, see ``bus.sink``).
        ``headers`` must map str to str (`TypeError` naming the key otherwise).
        """
        message_id = new_message_id() if message_id is None else check_message_id(message_id)
        return cls(
            message_id,
            correlation_id or message_id,
            None,
            _now(),
            1,
            check_headers(headers) if headers is not None else {},
        )

    def caused(
        self, headers: Mapping[str, str] | None = None, *, message_id: str | None = None
    ) -> MessageContext:
        """The context of a message sent while handling this one: a new id (or ``message_id``),
        the same correlation id, this message as its cause, first attempt, and this message's
        headers, updated with ``headers`` if given (str to str, `TypeError` naming the key
        otherwise)."""
        inherited = self.headers
        if headers is not None:
            inherited = {**inherited, **check_headers(headers)}
        message_id = new_message_id() if message_id is None else check_message_id(message_id)
        return MessageContext(
            message_id, self.correlation_id, self.message_id, _now(), 1, inherited
        )

    def with_attempt(self, attempt: int) -> MessageContext:
        """A copy of this context for delivery attempt ``attempt`` (1-based)."""
        return msgspec.structs.replace(self, attempt=attempt)


#: A published message's identity captured when it is sent, before any ``MessageContext`` exists:
#: its sequence number (the id's digits), the wall-clock time in nanoseconds, and the context of
#: the message whose handler sent it (None for a root message). ``context_of`` turns it into the
#: context. ``publish`` builds it inline, ``(next(_counter), _now_ns(), parent)``; an emit carries
#: the same three values in an `Emitted`.
Stamp = tuple[int, int, "MessageContext | None"]


@final
class Emitted(msgspec.Struct, frozen=True, gc=False):
    """A local emit on its way through a handler's mailbox: the event and its stamp (see `Stamp`),
    built once per message and shared by every handler of a fan-out.

    Not a tuple: a tuple holding an event (a GC type) stays tracked by the cyclic GC, so a backlog
    of queued emits fed the collector and every collection walked the whole backlog. This type is
    untracked (``gc=False``), which is safe only because an ``Emitted`` can never be part of a
    reference cycle: what it refers to (the event, two ints, the parent context) exists before it,
    and nothing reachable from those is ever given a reference back to it. The bus hands no
    ``Emitted`` to user code: it lives in mailboxes and the actor loop's locals, and a dead
    letter copies its event and context out.
    """

    event: Any
    sequence: int
    time_ns: int
    parent: MessageContext | None


def delivery_context(delivery: Emitted | Sequence[Any]) -> MessageContext:
    """The ``MessageContext`` of an emitted delivery: an `Emitted`, or ``(event, context)`` (a
    notice, a message with headers, a transport's delivery)."""
    if type(delivery) is Emitted:
        return context_of((delivery.sequence, delivery.time_ns, delivery.parent))
    return context_of(delivery[1])


def context_of(value: MessageContext | Stamp) -> MessageContext:
    """The ``MessageContext`` of a delivery: ``value`` itself, or the one its stamp describes.

    Building from one stamp always gives the same id, timestamp and causality, so every delivery
    of a message (its fan-out, its retries, its dead letter) carries one identity.
    """
    if type(value) is MessageContext:
        return value
    sequence, nanoseconds, parent = value
    message_id = "%032x" % sequence  # noqa: UP031 - see new_message_id
    if parent is None:
        return MessageContext(message_id, message_id, None, nanoseconds / 1e9, 1, {})
    return MessageContext(
        message_id, parent.correlation_id, parent.message_id, nanoseconds / 1e9, 1, parent.headers
    )


def new_contexts(
    parent: MessageContext | None,
    count: int,
    headers: Mapping[str, str] | None = None,
    message_ids: Sequence[str] | None = None,
) -> list[MessageContext]:
    """``count`` contexts made at once, as `MessageContext.new` (``parent`` None) or
    ``parent.caused`` would make them one by one, sharing one timestamp and the checked headers.
    A bad message id raises naming its index (``message_ids[2]: ...``)."""
    now = _now()
    if parent is None:
        shared = check_headers(headers) if headers is not None else {}
    else:
        shared = parent.headers
        if headers is not None:
            shared = {**shared, **check_headers(headers)}
    contexts = []
    for index in range(count):
        if message_ids is None:
            message_id = new_message_id()
        else:
            try:
                message_id = check_message_id(message_ids[index])
            except (TypeError, ValueError) as error:
                raise type(error)(f"message_ids[{index}]: {error}") from error
        if parent is None:
            contexts.append(MessageContext(message_id, message_id, None, now, 1, dict(shared)))
        else:
            contexts.append(
                MessageContext(
                    message_id, parent.correlation_id, parent.message_id, now, 1, shared
                )
            )
    return contexts


#: the longest error text the bus's notices (DeadLetter, HandlerRestarted, ...) and logs carry
MAX_ERROR_TEXT = 2000


def describe_error(error: BaseException) -> str:
    """An exception as one line of text with its type: ``"ValueError: bad input"``.

    Types outside the builtins are named with their module: ``"app.errors.Declined: card"``. Never
    raises, even for an exception whose own ``__str__`` does (see `actors.describe_exception`).
    A text longer than 2000 characters is cut there and says how much was left out: one poison
    message with a huge error must not make every notice and log line about it huge.
    """
    text = describe_exception(error)
    if len(text) > MAX_ERROR_TEXT:
        text = f"{text[:MAX_ERROR_TEXT]}... ({len(text) - MAX_ERROR_TEXT} more characters)"
    return text


class DeadLetter(Event):
    """Published by the bus when a message cannot be delivered to a handler.

    - ``handler``: the name of the handler the message was for.
    - ``event``: the original event, as an object (and on the wire, with its own type name).
    - ``context``: the original message's context (its ``message_id``, ``correlation_id``, ...).
    - ``error``: the last error as text, with its type (see `describe_error`); ``""`` when the
      message was never processed.
    - ``attempts``: delivery attempts made, 0 when the message was never processed.
    - ``reason``: ``"retries_exhausted"`` (the handler failed on every attempt),
      ``"mailbox_overflow"`` (dropped by a full mailbox's overflow policy), ``"handler_stopped"``
      (the handler was stopped for good with the message still queued) or ``"handler_killed"``
      (the handler was cancelled while processing it, e.g. past its shutdown timeout).

    Subscribe to it like any event.
    """

    __type_name__ = "bus.DeadLetter"

    handler: str
    event: Event
    context: MessageContext
    error: str
    attempts: int
    reason: str


class HandlerRestarted(Event):
    """Published when a handler's actor crashed and its supervisor restarted it.

    ``restarts`` counts the restarts of that handler so far; ``error`` is the crash, as text.
    """

    __type_name__ = "bus.HandlerRestarted"

    handler: str
    restarts: int
    error: str


class HandlerStopped(Event):
    """Published when a handler's actor stopped for good, for ``reason`` (e.g. its supervisor
    exceeded its restart intensity); further messages to it become dead letters."""

    __type_name__ = "bus.HandlerStopped"

    handler: str
    reason: str


class SupervisorGaveUp(Event):
    """Published when a supervisor exceeded its restart intensity and escalated ``error`` (as
    text) to its parent, stopping its children."""

    __type_name__ = "bus.SupervisorGaveUp"

    supervisor: str
    error: str


#: the bus's own events: deliverable, and subscribable, whatever a registry's ``event_base``
NOTICE_EVENTS: tuple[type[Event], ...] = (DeadLetter, HandlerRestarted, HandlerStopped, SupervisorGaveUp)

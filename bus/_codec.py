"""Encoding of events and contexts to JSON or msgpack, and back to the original classes.

On the wire an event is named by its stable type name (see `Event`), so bytes written by one
process decode to the right class in another. A message is an *envelope*::

    {"type": "todo.created", "event": {"name": "a", "content": "b"}, "context": {...}}

A field declared as an Event (or an optional or union of Events, like `DeadLetter.event`) may
hold any subclass, so its value goes on the wire as a nested ``{"type": ..., "event": ...}``
pair and decodes to the subclass it was. Events inside containers (``list[Event]``) are encoded
as their declared type only.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal, final

import attrs
import msgspec

from bus._events import Event, MessageContext, check_headers, check_wire_name, event_class

_Format = Literal["json", "msgpack"]


class _Nested(msgspec.Struct, frozen=True):
    """An event inside an event's field: its type name and its already encoded body."""

    type: str
    event: msgspec.Raw


class _Envelope(msgspec.Struct, frozen=True):
    """What `Codec.encode` writes: the event is any Struct, encoded by its runtime fields."""

    type: str
    event: Any
    context: MessageContext


class _Head(msgspec.Struct, frozen=True):
    """What `Codec.decode` reads first: the event body stays raw until its class is known."""

    type: str
    event: msgspec.Raw
    context: MessageContext


@attrs.frozen
class _Plan:
    """How one event class is encoded and decoded by one codec."""

    cls: type[Event]
    decoder: Any
    # For a class with fields declared as events: those fields, the classes each may hold, and
    # a twin Struct in which they are `_Nested` pairs; empty and None for every other class.
    nested: dict[str, tuple[type, ...]]
    twin: type[msgspec.Struct] | None


def _event_field_classes(annotation: Any) -> tuple[type, ...]:
    """The classes a field may hold if it is declared as an event, else ``()``."""
    if isinstance(annotation, type):
        return (annotation,) if issubclass(annotation, Event) else ()
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        events = tuple(m for m in members if isinstance(m, type) and issubclass(m, Event))
        if events and all(m in events or m is type(None) for m in members):
            return members
    return ()


def _twin(cls: type[Event], nested: dict[str, tuple[type, ...]]) -> type[msgspec.Struct]:
    """A Struct shaped like ``cls`` on the wire, with its event fields as `_Nested` pairs."""
    config = cls.__struct_config__
    # Untyped alias: the field's default and factory are copied as they are, NODEFAULT included,
    # which the overloads of msgspec.field do not express.
    make_field: Any = msgspec.field
    spec: list[tuple[str, Any, Any]] = []
    for info in msgspec.structs.fields(cls):
        annotation = info.type
        if info.name in nested:
            annotation = _Nested | None if type(None) in nested[info.name] else _Nested
        default = make_field(
            default=info.default, default_factory=info.default_factory, name=info.encode_name
        )
        spec.append((info.name, annotation, default))
    # kw_only lifts the rule that required fields come first, so the field order is kept as is.
    return msgspec.defstruct(
        f"{cls.__name__}Wire",
        spec,
        kw_only=True,
        array_like=config.array_like,
        omit_defaults=config.omit_defaults,
        forbid_unknown_fields=config.forbid_unknown_fields,
        tag=config.tag,
        tag_field=config.tag_field,
    )


@final
class Codec:
    """Encodes events with their contexts to bytes, and decodes them back to their classes.

    Use the two instances `JSON` and `MSGPACK`. Encoding raises `TypeError` for something that
    is not an `Event` with a `MessageContext`, for headers that are not str to str, and for an
    event class defined in a script without an explicit type name (see `Event`). Decoding
    raises `UnknownEventTypeError` for a type name no class is registered under, and
    `msgspec.DecodeError` (or its subclass `msgspec.ValidationError`) for malformed bytes or
    fields of the wrong type. Instances are safe to share between threads.
    """

    def __init__(self, name: _Format) -> None:
        """A codec for ``name``, ``"json"`` or ``"msgpack"``."""
        self.name: _Format = name
        """The wire format: ``"json"`` or ``"msgpack"``."""
        # Its own docstring, so that the `JSON` and `MSGPACK` instances document themselves.
        self.__doc__ = f"Encodes events and contexts to {name} and decodes them back."
        module: Any = msgspec.json if name == "json" else msgspec.msgpack
        self._encode: Callable[[object], bytes] = module.Encoder().encode
        self._decoder_for: Any = module.Decoder
        self._head_decoder: Any = module.Decoder(_Head)
        self._plans: dict[type, _Plan] = {}
        # Classes without event fields, encoded as they are: the fast path.
        self._flat: set[type] = set()
        self._list_decoders: dict[type, Callable[[bytes], list[Event]]] = {}
        self.decode_context: Callable[[bytes], MessageContext] = module.Decoder(
            MessageContext
        ).decode
        """A context from bytes `encode_context` made."""

    def __repr__(self) -> str:
        return f"Codec({self.name!r})"

    def encode_context(self, context: MessageContext) -> bytes:
        """``context`` alone, as bytes; `TypeError` for anything but a `MessageContext` with str
        headers."""
        if type(context) is not MessageContext:
            msg = f"expected a MessageContext, got {type(context).__qualname__} {context!r}"
            raise TypeError(msg)
        if context.headers:
            check_headers(context.headers)
        return self._encode(context)

    def check_round_trip_many(self, events: Sequence[Event]) -> None:
        """`check_round_trip` for each of ``events``, in one encoding per event class where it
        can; `TypeError` naming the index (``events[3]: ...``) of an event that fails."""
        by_class: dict[type[Event], list[int]] = {}
        for index, event in enumerate(events):
            by_class.setdefault(type(event), []).append(index)
        for cls, indexes in by_class.items():
            group = [events[index] for index in indexes]
            if cls in self._flat and cls.__struct_config__.eq:
                try:
                    back = self._list_decoder(cls)(self._encode(group))
                except Exception:  # noqa: BLE001 - the loop below says which and why
                    pass
                else:
                    if back == group:
                        continue
            for index in indexes:
                try:
                    self.check_round_trip(events[index])
                except TypeError as error:
                    msg = f"events[{index}]: {error}"
                    raise TypeError(msg) from error

    def _list_decoder(self, cls: type) -> Callable[[bytes], list[Event]]:
        decode = self._list_decoders.get(cls)
        if decode is None:
            decode = self._list_decoders[cls] = self._decoder_for(list[cls]).decode  # type: ignore[valid-type]
        return decode

    def _plan(self, cls: type) -> _Plan:
        plan = self._plans.get(cls)
        if plan is None:
            if not (isinstance(cls, type) and issubclass(cls, Event)):
                msg = f"expected an Event, got an instance of {cls!r}"
                if isinstance(cls, type) and issubclass(cls, msgspec.Struct):
                    # a Lihil-style event (a plain Struct): the bus delivers it, but has no
                    # stable type name to store or send it under
                    msg = (
                        f"{msg}: events that are stored or sent to other processes derive from "
                        f"bus.Event, which names each class on the wire (class "
                        f"{cls.__qualname__}(bus.Event): ...); a plain msgspec.Struct event is "
                        "delivered in this process only"
                    )
                raise TypeError(msg)
            nested = {
                info.name: classes
                for info in msgspec.structs.fields(cls)
                if (classes := _event_field_classes(info.type))
            }
            twin = _twin(cls, nested) if nested else None
            decoder = self._decoder_for(twin if twin is not None else cls)
            plan = self._plans[cls] = _Plan(cls, decoder, nested, twin)
        return plan

    def _wire(self, event: Event) -> msgspec.Struct:
        """``event`` itself, or for a class with event fields its twin with nested pairs."""
        if type(event) in self._flat:
            return event
        plan = self._plan(type(event))
        # Checked on encoding only: rows a script wrote under "__main__.X" can still be read by a
        # class that takes that name explicitly.
        check_wire_name(plan.cls)
        if plan.twin is None:
            self._flat.add(plan.cls)
            return event
        values = msgspec.structs.asdict(event)
        for field in plan.nested:
            inner = values[field]
            if inner is not None:
                body = msgspec.Raw(self._encode(self._wire(inner)))
                values[field] = _Nested(type(inner).__type_name__, body)
        return plan.twin(**values)

    def encode_event(self, event: Event) -> bytes:
        """The body of ``event`` alone, without its type name (store the name beside it)."""
        if type(event) in self._flat:
            return self._encode(event)
        return self._encode(self._wire(event))

    def decode_event(self, type_name: str, data: bytes | msgspec.Raw) -> Event:
        """An event of the class registered as ``type_name``, from a body `encode_event` made."""
        plan = self._plan(event_class(type_name))
        decoded = plan.decoder.decode(data)
        if plan.twin is None:
            return decoded  # type: ignore[no-any-return]
        values = msgspec.structs.asdict(decoded)
        for field, classes in plan.nested.items():
            pair = values[field]
            if pair is None:
                continue
            inner = self.decode_event(pair.type, pair.event)
            if not isinstance(inner, classes):
                msg = f"Expected `{plan.cls.__qualname__}.{field}` to hold one of {classes}, got "
                msg += f"`{type(inner).__qualname__}` - at `$.{field}`"
                raise msgspec.ValidationError(msg)
            values[field] = inner
        return plan.cls(**values)

    def encode(self, event: Event, context: MessageContext) -> bytes:
        """One message as an envelope: ``{"type": ..., "event": {...}, "context": {...}}``."""
        wire = self._wire(event)
        if type(context) is not MessageContext:
            msg = f"expected a MessageContext, got {type(context).__qualname__} {context!r}"
            raise TypeError(msg)
        if context.headers:
            check_headers(context.headers)
        return self._encode(_Envelope(type(event).__type_name__, wire, context))

    def check_round_trip(self, event: Event) -> bytes:
        """The body of ``event`` (as `encode_event` makes it), once it is known to decode back
        equal to ``event``; `TypeError` saying why otherwise.

        What this refuses: a value that cannot be encoded (an ``object()`` in a field typed
        ``object``), a float that is NaN or infinite in JSON (which has no form for them), and a
        value that would come back different (a tuple or bytes in a field typed ``Any``). The bus
        runs it on every ``sink`` call, so that what a sink acknowledges reads back equal.
        """
        cls = type(event)
        if cls in self._flat:
            # the common case, kept lean: it runs on every `sink` call
            try:
                body = self._encode(event)
                back = self._plans[cls].decoder.decode(body)
            except Exception:  # noqa: BLE001 - the slow path below says what is wrong
                pass
            else:
                if back == event if cls.__struct_config__.eq else self._encode(back) == body:
                    return body
        name = cls.__qualname__
        try:
            body = self.encode_event(event)
        except (msgspec.EncodeError, TypeError, ValueError, OverflowError) as error:
            msg = f"{name} cannot be encoded to {self.name}: {error}"
            raise TypeError(msg) from error
        try:
            back = self.decode_event(type(event).__type_name__, body)
        except msgspec.DecodeError as error:
            hint = ""
            if self.name == "json" and "null" in str(error):
                hint = " (NaN and infinite floats have no JSON form and are written as null)"
            msg = f"{name} would not read back from {self.name}{hint}: {error}"
            raise TypeError(msg) from error
        # eq=False compares identities: compare what the two encode to instead
        same = back == event if type(event).__struct_config__.eq else self.encode_event(back) == body
        if not same:
            msg = (
                f"{name} would read back from {self.name} as {back!r}, not as {event!r}: "
                "type its fields precisely (a field typed Any or object reads tuples back as "
                "lists, bytes as text, NaN as None)"
            )
            raise TypeError(msg)
        return body

    def decode(self, data: bytes) -> tuple[Event, MessageContext]:
        """The event, as its original class, and the context from an envelope `encode` made."""
        head = self._head_decoder.decode(data)
        return self.decode_event(head.type, head.event), head.context


JSON = Codec("json")
MSGPACK = Codec("msgpack")


def encode_json(event: Event, context: MessageContext) -> bytes:
    """One message as a JSON envelope: ``{"type": ..., "event": {...}, "context": {...}}``."""
    return JSON.encode(event, context)


def decode_json(data: bytes) -> tuple[Event, MessageContext]:
    """The event, as its original class, and its context, from `encode_json`'s bytes."""
    return JSON.decode(data)


def encode_msgpack(event: Event, context: MessageContext) -> bytes:
    """One message as a msgpack envelope, shaped like `encode_json`'s."""
    return MSGPACK.encode(event, context)


def decode_msgpack(data: bytes) -> tuple[Event, MessageContext]:
    """The event, as its original class, and its context, from `encode_msgpack`'s bytes."""
    return MSGPACK.decode(data)

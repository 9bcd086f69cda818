"""Hypothesis strategies for testing your handlers: events, interleaved senders, fault plans.

Needs Hypothesis (the ``testing`` extra). Every name here is also importable from `bus.testing`.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import types
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import msgspec
from hypothesis import strategies as st

from bus import Event
from bus.testing._faults import FAULT_KINDS, Fault, FaultKind, FaultPlan

T = TypeVar("T")
E = TypeVar("E", bound=Event)

#: text that every wire format carries (no lone surrogates)
_TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_FLOATS = st.floats(allow_nan=False, allow_infinity=False)

__all__ = ("events", "fault_plans", "interleavings", "sends")


def events(event_type: type[E] | Sequence[type[E]], /, **fields: Any) -> st.SearchStrategy[E]:
    """Valid instances of ``event_type`` (or of any of several classes), built from the fields'
    annotations.

    ``fields`` overrides a field by name with a strategy or a plain value (which is then always
    used); an optional field (one with a default) is sometimes left out. Constraints given with
    ``Annotated[T, msgspec.Meta(...)]`` (bounds, lengths, patterns) are respected, and every event
    drawn converts back from its own JSON encoding (what the bus's codec and sinks do).
    """
    if isinstance(event_type, Sequence) and not isinstance(event_type, str):
        classes = list(event_type)
        if not classes:
            raise ValueError("events() needs at least one Event class")
        return st.one_of([events(cls, **fields) for cls in classes])
    cls = event_type
    if not (isinstance(cls, type) and issubclass(cls, Event)):
        raise TypeError(f"events() takes Event subclasses, got {cls!r}")
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    names = [f.name for f in info.fields]
    unknown = sorted(set(fields) - set(names))
    if unknown:
        raise ValueError(
            f"{cls.__name__} has no field(s) {', '.join(unknown)}; its fields are {', '.join(names)}"
        )
    hints = typing.get_type_hints(cls, include_extras=True)
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in info.fields:
        if field.name in fields:
            override = fields[field.name]
            strategy = override if isinstance(override, st.SearchStrategy) else st.just(override)
            required[field.name] = strategy
            continue
        strategy = _lazy(hints[field.name])
        (required if field.required else optional)[field.name] = strategy
    built = st.fixed_dictionaries(required, optional=optional).map(lambda kw: cls(**kw))
    return built.filter(_is_valid)


def _lazy(tp: Any) -> st.SearchStrategy[Any]:
    # deferred: an event may have a field of its own type (or of a class defined later)
    return st.deferred(lambda: _for_type(tp))


def _is_valid(event: Event) -> bool:
    try:
        msgspec.json.decode(msgspec.json.encode(event), type=type(event))
    except (msgspec.ValidationError, msgspec.EncodeError, OverflowError):
        return False
    return True


def _for_type(tp: Any) -> st.SearchStrategy[Any]:
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Annotated:
        return _constrained(args[0], [m for m in args[1:] if isinstance(m, msgspec.Meta)])
    if tp is Any or tp is object:
        return st.none() | st.booleans() | _INT64 | _TEXT
    if tp is None or tp is type(None):
        return st.none()
    if origin in (Union, types.UnionType):
        return st.one_of([_for_type(a) for a in args])
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (list, set, frozenset, Sequence, typing.Sequence) or (
        origin is tuple and (len(args) == 2 and args[1] is Ellipsis)
    ):
        item = _for_type(args[0]) if args else _TEXT
        collection = st.lists(item, max_size=4)
        kind = {set: set, frozenset: frozenset, tuple: tuple}.get(origin, list)
        return collection.map(kind)
    if origin is tuple:
        return st.tuples(*(_for_type(a) for a in args))
    if origin in (dict, Mapping, typing.Mapping):
        key, value = args if args else (str, str)
        return st.dictionaries(_for_type(key), _for_type(value), max_size=3)
    if isinstance(tp, type):
        if issubclass(tp, Event):
            if tp is Event:
                return st.just(Event())
            # the class and its subclasses, the bus's own notices left out, in a stable order
            subclasses = sorted(
                (c for c in _subclasses(tp) if not c.__module__.startswith("bus.")),
                key=lambda c: (c.__module__, c.__qualname__),
            )
            return st.one_of([events(c) for c in [tp, *subclasses]])
        simple = _SIMPLE.get(tp)
        if simple is not None:
            return simple
        if issubclass(tp, enum.Enum):
            return st.sampled_from(list(tp))
        if issubclass(tp, msgspec.Struct):
            return st.builds(tp)
    return st.from_type(tp)


_SIMPLE: dict[type, st.SearchStrategy[Any]] = {
    str: _TEXT,
    bytes: st.binary(max_size=16),
    bytearray: st.binary(max_size=16).map(bytearray),
    bool: st.booleans(),
    int: _INT64,
    float: _FLOATS,
    decimal.Decimal: st.decimals(allow_nan=False, allow_infinity=False),
    datetime.datetime: st.datetimes(timezones=st.none() | st.just(datetime.UTC)),
    datetime.date: st.dates(),
    datetime.time: st.times(),
    datetime.timedelta: st.timedeltas(),
    uuid.UUID: st.uuids(),
}


def _subclasses(cls: type[Event]) -> list[type[Event]]:
    found: list[type[Event]] = []
    for sub in cls.__subclasses__():
        found.extend([sub, *_subclasses(sub)])
    return found


def _constrained(tp: Any, metas: list[msgspec.Meta]) -> st.SearchStrategy[Any]:
    bounds: dict[str, Any] = {}
    for meta in metas:
        for name in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            value = getattr(meta, name)
            if value is not None:
                bounds[name] = value
    if tp is int or tp is float:
        low = bounds.get("ge", bounds.get("gt"))
        high = bounds.get("le", bounds.get("lt"))
        if tp is int:
            low = None if low is None else low + (1 if "gt" in bounds else 0)
            high = None if high is None else high - (1 if "lt" in bounds else 0)
            return st.integers(
                min_value=max(low, -(2**63)) if low is not None else -(2**63),
                max_value=min(high, 2**63 - 1) if high is not None else 2**63 - 1,
            )
        return st.floats(
            min_value=low,
            max_value=high,
            exclude_min="gt" in bounds,
            exclude_max="lt" in bounds,
            allow_nan=False,
            allow_infinity=False,
        )
    if tp is str and "pattern" in bounds:
        return st.from_regex(bounds["pattern"]).filter(
            lambda s: bounds.get("min_length", 0) <= len(s) <= bounds.get("max_length", len(s))
        )
    if tp is str:
        return st.text(
            st.characters(codec="utf-8"),
            min_size=bounds.get("min_length", 0),
            max_size=bounds.get("max_length", max(20, bounds.get("min_length", 0))),
        )
    base = _for_type(tp)
    if "min_length" in bounds or "max_length" in bounds:
        low_len, high_len = bounds.get("min_length", 0), bounds.get("max_length")
        return base.filter(lambda v: low_len <= len(v) and (high_len is None or len(v) <= high_len))
    return base


def interleavings(sequences: Mapping[str, Sequence[T]]) -> st.SearchStrategy[list[tuple[str, T]]]:
    """Every way to merge several senders' sequences into one, each sender's order kept:
    ``[(sender, item), ...]``. Shrinks towards the first sender's items first."""
    senders = list(sequences)
    items = {sender: list(sequences[sender]) for sender in senders}

    @st.composite
    def merged(draw: st.DrawFn) -> list[tuple[str, T]]:
        position = dict.fromkeys(senders, 0)
        result: list[tuple[str, T]] = []
        while True:
            ready = [s for s in senders if position[s] < len(items[s])]
            if not ready:
                return result
            sender = ready[0] if len(ready) == 1 else draw(st.sampled_from(ready))
            result.append((sender, items[sender][position[sender]]))
            position[sender] += 1

    return merged()


def sends(
    event_strategy: st.SearchStrategy[E],
    senders: Sequence[str] = ("main",),
    *,
    min_size: int = 0,
    max_size: int = 10,
) -> st.SearchStrategy[list[tuple[str, E]]]:
    """A script of ``(sender, event)`` pairs: what each of ``senders`` sends, interleaved."""
    if not senders:
        raise ValueError("sends() needs at least one sender name")
    return st.lists(
        st.tuples(st.sampled_from(list(senders)), event_strategy),
        min_size=min_size,
        max_size=max_size,
    )


def fault_plans(
    handlers: Sequence[str | Callable[..., object]],
    *,
    max_faults: int = 3,
    max_message: int = 5,
    kinds: Sequence[FaultKind] = ("transient",),
    max_times: int = 2,
    max_delay: float = 1.0,
) -> st.SearchStrategy[FaultPlan]:
    """Fault plans over ``handlers`` (names, or the handler functions themselves): up to
    ``max_faults`` faults, each on one of a handler's first ``max_message`` messages, of one of
    ``kinds`` (``transient``, ``permanent``, ``slow``). Shrinks towards fewer, earlier faults."""
    names = [h if isinstance(h, str) else getattr(h, "__qualname__", repr(h)) for h in handlers]
    if not names:
        raise ValueError("fault_plans() needs at least one handler")
    bad = [k for k in kinds if k not in FAULT_KINDS]
    if bad or not kinds:
        raise ValueError(f"fault kinds are {FAULT_KINDS}, got {list(kinds)!r}")
    fault = st.builds(
        Fault,
        handler=st.sampled_from(names),
        message=st.integers(min_value=1, max_value=max_message),
        kind=st.sampled_from(list(kinds)),
        times=st.integers(min_value=1, max_value=max_times),
        delay=st.floats(min_value=0.0, max_value=max_delay, allow_nan=False),
    )
    return st.lists(fault, max_size=max_faults).map(FaultPlan.of)

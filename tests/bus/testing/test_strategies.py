"""Strategies: events are valid instances of the user's classes (overridable per field, bounds of
``msgspec.Meta`` respected), interleavings keep each sender's order, fault plans name handlers."""

from __future__ import annotations

import datetime
import decimal
import enum
import re
import uuid
from typing import Annotated, Literal

import msgspec
import pytest
from hypothesis import given, strategies as st

from bus import Event
from bus.testing import Fault, FaultPlan, events, fault_plans, interleavings, sends


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(msgspec.Struct):
    city: str


class Everything(Event):
    name: str
    count: int
    ratio: float
    flag: bool
    raw: bytes
    tags: list[str]
    unique: frozenset[int]
    pair: tuple[int, str]
    many: tuple[int, ...]
    scores: dict[str, int]
    color: Color
    mode: Literal["a", "b"]
    address: Address
    maybe: int | None = None
    note: str = "default"


class Stamped(Event):
    when: datetime.datetime
    day: datetime.date
    at: datetime.time
    took: datetime.timedelta
    amount: decimal.Decimal
    ident: uuid.UUID
    blob: bytearray
    anything: Event
    tree: list[Stamped] = msgspec.field(default_factory=list)


class Bounded(Event):
    qty: Annotated[int, msgspec.Meta(ge=1, lt=10)]
    price: Annotated[float, msgspec.Meta(gt=0, le=5)]
    code: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
    short: Annotated[str, msgspec.Meta(min_length=2, max_length=4)]
    few: Annotated[list[int], msgspec.Meta(max_length=2)]


class Inner(Event):
    value: int


class InnerChild(Inner):
    pass


class Outer(Event):
    inner: Inner
    label: str


def valid(event: Event) -> bool:
    msgspec.json.decode(msgspec.json.encode(event), type=type(event))
    return True


@given(events(Everything))
def test_events_are_valid_instances_built_from_annotations(event: Everything) -> None:
    assert type(event) is Everything
    assert valid(event)
    assert isinstance(event.color, Color)
    assert isinstance(event.address, Address)
    assert event.mode in ("a", "b")


@given(events(Stamped))
def test_events_cover_msgspec_s_other_builtin_types_and_recursive_classes(event: Stamped) -> None:
    assert valid(event)
    assert type(event.anything) is Event
    assert all(type(child) is Stamped for child in event.tree)


@given(events(Bounded))
def test_events_respect_msgspec_meta_constraints(event: Bounded) -> None:
    assert 1 <= event.qty < 10
    assert 0 < event.price <= 5
    assert re.search("^[A-Z]{3}$", event.code)  # msgspec's (and Python's) search semantics
    assert 2 <= len(event.short) <= 4
    assert len(event.few) <= 2
    assert valid(event)


@given(events(Outer, label="fixed", inner=events(InnerChild)))
def test_fields_are_overridden_by_a_value_or_a_strategy(event: Outer) -> None:
    assert event.label == "fixed"
    assert type(event.inner) is InnerChild


@given(events(Outer))
def test_an_event_field_gets_an_instance_of_the_class_or_a_subclass(event: Outer) -> None:
    assert isinstance(event.inner, Inner)
    assert valid(event)


@given(events([Inner, Outer]))
def test_several_classes_give_instances_of_each(event: Event) -> None:
    assert type(event) in (Inner, InnerChild, Outer)


def test_optional_fields_are_sometimes_left_to_their_default() -> None:
    seen: set[str] = set()

    @given(events(Everything))
    def collect(event: Everything) -> None:
        seen.add("default" if event.note == "default" else "drawn")

    collect()
    assert seen == {"default", "drawn"}


def test_events_refuse_unknown_fields_and_non_events() -> None:
    with pytest.raises(ValueError, match="Inner has no field.* nope; its fields are value"):
        events(Inner, nope=1)
    with pytest.raises(TypeError, match="takes Event subclasses"):
        events(Address)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="at least one Event class"):
        events([])


@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c"]), st.lists(st.integers(), max_size=4), max_size=3
    ).flatmap(lambda seqs: st.tuples(st.just(seqs), interleavings(seqs)))
)
def test_interleavings_keep_every_item_and_each_senders_order(
    drawn: tuple[dict[str, list[int]], list[tuple[str, int]]],
) -> None:
    sequences, merged = drawn
    assert len(merged) == sum(len(items) for items in sequences.values())
    for sender, items in sequences.items():
        assert [item for who, item in merged if who == sender] == items


def test_interleavings_reach_every_order_of_two_senders() -> None:
    orders: set[tuple[str, ...]] = set()

    @given(interleavings({"a": [1, 2], "b": [3]}))
    def collect(merged: list[tuple[str, int]]) -> None:
        orders.add(tuple(who for who, _ in merged))

    collect()
    assert orders == {("a", "a", "b"), ("a", "b", "a"), ("b", "a", "a")}


@given(sends(events(Inner), ["x", "y"], max_size=5))
def test_sends_are_scripts_of_senders_and_events(script: list[tuple[str, Event]]) -> None:
    assert len(script) <= 5
    assert all(who in ("x", "y") and type(event) in (Inner, InnerChild) for who, event in script)


def take(event: Inner) -> None:
    """A handler, named in fault plans by its function."""


@given(fault_plans([take, "mod.other"], max_faults=3, kinds=["transient", "permanent", "slow"]))
def test_fault_plans_put_valid_faults_on_the_named_handlers(plan: FaultPlan) -> None:
    assert len(plan) <= 3
    for fault in plan:
        assert isinstance(fault, Fault)
        assert fault.handler in ("take", "mod.other")
        assert 1 <= fault.message <= 5


def test_bad_strategy_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one sender"):
        sends(events(Inner), [])
    with pytest.raises(ValueError, match="at least one handler"):
        fault_plans([])
    with pytest.raises(ValueError, match="fault kinds are"):
        fault_plans(["h"], kinds=["sometimes"])  # type: ignore[list-item]

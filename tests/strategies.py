"""Hypothesis strategies shared by the test suite, one section per subject.

Import as ``from tests.strategies import ...``. Append new sections at the end, each under its own
heading comment; keep the sample classes of a section next to its strategies.
"""

from __future__ import annotations

from hypothesis import strategies as st

from bus._events import DeadLetter, Event, MessageContext

# ---------------------------------------------------------------------------------------------
# Events, contexts and dead letters (bus._events, bus._codec, bus.sinks)
#
# A few event shapes that cover what the codec must keep: plain fields, containers, optional and
# defaulted fields, bytes, an explicit type name, msgspec options (rename, array_like), and
# fields declared as events (polymorphic nesting).
# ---------------------------------------------------------------------------------------------

# Text the wire formats carry: no lone surrogates, which UTF-8 cannot encode.
texts = st.text(st.characters(codec="utf-8"), max_size=20)
int64s = st.integers(min_value=-(2**63), max_value=2**63 - 1)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
hex_ids = st.text("0123456789abcdef", min_size=32, max_size=32)


class SampleCreated(Event):
    """Plain string fields, like the README's TodoCreated."""

    name: str
    content: str


class SampleMeasured(Event):
    """Numbers and an optional field with a default."""

    value: float
    count: int
    unit: str | None = None


class SampleTagged(Event):
    """Containers, bytes and an explicit type name."""

    __type_name__ = "tests.sample.tagged"

    tags: list[str]
    counts: dict[str, int]
    payload: bytes = b""


class SampleRow(Event, array_like=True):
    """Encoded as an array, not an object."""

    row: int
    label: str


class SampleWrapper(Event, rename="camel"):
    """Fields declared as events: any subclass goes in, and comes out as itself."""

    inner_event: Event
    maybe_created: SampleCreated | None = None
    wrapper_note: str = ""


def message_contexts() -> st.SearchStrategy[MessageContext]:
    """Any context: random ids, optional cause, attempts from 1, string headers."""
    return st.builds(
        MessageContext,
        message_id=hex_ids,
        correlation_id=hex_ids,
        causation_id=st.none() | hex_ids,
        timestamp=finite_floats,
        attempt=st.integers(min_value=1, max_value=1000),
        headers=st.dictionaries(texts, texts, max_size=3),
    )


def flat_events() -> st.SearchStrategy[Event]:
    """An instance of one of the sample classes without event fields."""
    return st.one_of(
        st.builds(SampleCreated, texts, texts),
        st.builds(SampleMeasured, finite_floats, int64s, st.none() | texts),
        st.builds(
            SampleTagged,
            st.lists(texts, max_size=3),
            st.dictionaries(texts, int64s, max_size=3),
            st.binary(max_size=16),
        ),
        st.builds(SampleRow, int64s, texts),
    )


def dead_letters(events: st.SearchStrategy[Event] | None = None) -> st.SearchStrategy[DeadLetter]:
    """A dead letter carrying one of ``events`` (by default `flat_events`)."""
    return st.builds(
        DeadLetter,
        handler=texts,
        event=events if events is not None else flat_events(),
        context=message_contexts(),
        error=texts,
        attempts=st.integers(min_value=0, max_value=100),
        reason=st.sampled_from(
            ["retries_exhausted", "mailbox_overflow", "handler_stopped", "handler_killed"]
        ),
    )


def events() -> st.SearchStrategy[Event]:
    """Any sample event, dead letters and events nested in events included."""
    return st.recursive(
        flat_events(),
        lambda inner: st.one_of(
            dead_letters(inner),
            st.builds(
                SampleWrapper,
                inner,
                st.none() | st.builds(SampleCreated, texts, texts),
                texts,
            ),
        ),
        max_leaves=4,
    )


def messages() -> st.SearchStrategy[tuple[Event, MessageContext]]:
    """An (event, context) pair, as the bus hands it to sinks and transports."""
    return st.tuples(events(), message_contexts())


# ---------------------------------------------------------------------------------------------
# Bus dispatch (bus._bus, bus._dispatch; tests/property/test_bus_properties.py, test_bus_model.py)
#
# A small event hierarchy to subscribe to (a base, two subclasses and a grandchild), what a
# handler subscribes to (one of a few subscription kinds), and scripts of messages, each with the
# set of handlers that fail on it and how often.
# ---------------------------------------------------------------------------------------------


class BusBase(Event):
    """The root of the dispatch samples; ``key`` identifies one message in a script."""

    key: int


class BusLeft(BusBase):
    pass


class BusRight(BusBase):
    pass


class BusLeftLeaf(BusLeft):
    pass


#: the concrete event classes a script sends
BUS_EVENT_CLASSES: tuple[type[BusBase], ...] = (BusBase, BusLeft, BusRight, BusLeftLeaf)

#: subscription kinds a generated handler may have, and the classes each accepts
BUS_SUBSCRIPTIONS: dict[str, tuple[type[BusBase], ...]] = {
    "base": (BusBase, BusLeft, BusRight, BusLeftLeaf),
    "left": (BusLeft, BusLeftLeaf),
    "right": (BusRight,),
    "left_or_right": (BusLeft, BusRight, BusLeftLeaf),
    "leaf_or_left": (BusLeft, BusLeftLeaf),  # overlapping union: still one delivery
}


def bus_subscriptions(min_size: int = 1, max_size: int = 6) -> st.SearchStrategy[list[str]]:
    """The subscription kinds of a handler set, one per handler, in registration order."""
    return st.lists(
        st.sampled_from(sorted(BUS_SUBSCRIPTIONS)), min_size=min_size, max_size=max_size
    )


def bus_event_classes() -> st.SearchStrategy[type[BusBase]]:
    """One of the concrete event classes."""
    return st.sampled_from(BUS_EVENT_CLASSES)


def bus_failure_plans(handlers: int, max_failures: int = 2) -> st.SearchStrategy[dict[int, int]]:
    """For one message: how many times each failing handler (by index) fails before succeeding;
    always empty when ``max_failures`` is 0."""
    if max_failures <= 0:
        return st.just({})
    return st.dictionaries(
        st.integers(min_value=0, max_value=max(handlers - 1, 0)),
        st.integers(min_value=1, max_value=max_failures),
        max_size=handlers,
    )


def bus_emit_scripts(
    handlers: int, max_failures: int = 2, senders: int = 3, max_size: int = 12
) -> st.SearchStrategy[list[tuple[int, type[BusBase], dict[int, int]]]]:
    """Messages to emit: ``(sender, event class, failure plan)``; a message's key is its index."""
    return st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=senders - 1),
            bus_event_classes(),
            bus_failure_plans(handlers, max_failures),
        ),
        max_size=max_size,
    )


def bus_publish_failure_cases(
    max_handlers: int = 4,
) -> st.SearchStrategy[tuple[list[str], type[BusBase], dict[int, int]]]:
    """``(subscription kinds, event class, failure plan)`` for one publish, drawn together.

    Async tests take whole cases from ``@given`` rather than drawing inside their body: a draw
    that runs out of data raises Hypothesis's ``StopTest`` (a BaseException) inside the event
    loop's runner task, which then dies with it ("Task exception was never retrieved")."""
    return bus_subscriptions(max_size=max_handlers).flatmap(
        lambda kinds: st.tuples(
            st.just(kinds), bus_event_classes(), bus_failure_plans(len(kinds), max_failures=1)
        )
    )


def bus_emit_cases(
    max_failures: int, max_handlers: int = 4
) -> st.SearchStrategy[tuple[list[str], list[tuple[int, type[BusBase], dict[int, int]]]]]:
    """``(subscription kinds, emit script)`` drawn together (see `bus_publish_failure_cases`)."""
    return bus_subscriptions(max_size=max_handlers).flatmap(
        lambda kinds: st.tuples(st.just(kinds), bus_emit_scripts(len(kinds), max_failures))
    )


# ---------------------------------------------------------------------------------------------
# Actors and supervision (actors, supervisor; tests/actors/test_ordering.py,
# tests/property/test_supervision_model.py)
#
# Plans of concurrent senders to one actor: how many senders, how many messages each, which
# messages crash the receiver on their first delivery, after which messages a sender yields, and
# the mailbox's capacity. And the names and restart types of children added at run time.
# ---------------------------------------------------------------------------------------------


class SendPlan:
    """``senders`` tasks each send ``(sender, 1)``, ..., ``(sender, per_sender)`` to one actor. The
    receiver crashes on the first delivery of each message in ``crash_on``; a sender yields after each
    message in ``pauses``; ``capacity`` bounds the mailbox (backpressure), None leaves it unbounded."""

    __slots__ = ("capacity", "crash_on", "pauses", "per_sender", "senders")

    def __init__(
        self,
        senders: int,
        per_sender: int,
        crash_on: frozenset[tuple[int, int]],
        pauses: frozenset[tuple[int, int]],
        capacity: int | None,
    ) -> None:
        self.senders = senders
        self.per_sender = per_sender
        self.crash_on = crash_on
        self.pauses = pauses
        self.capacity = capacity

    def __repr__(self) -> str:
        return (
            f"SendPlan(senders={self.senders}, per_sender={self.per_sender}, "
            f"crash_on={sorted(self.crash_on)}, pauses={sorted(self.pauses)}, capacity={self.capacity})"
        )


def send_plans(
    max_senders: int = 4, max_per_sender: int = 12, max_crashes: int = 4
) -> st.SearchStrategy[SendPlan]:
    """A `SendPlan` with up to ``max_senders`` senders and ``max_crashes`` crashing messages."""

    @st.composite
    def plans(draw: st.DrawFn) -> SendPlan:
        senders = draw(st.integers(min_value=1, max_value=max_senders))
        per_sender = draw(st.integers(min_value=1, max_value=max_per_sender))
        message = st.tuples(
            st.integers(min_value=0, max_value=senders - 1),
            st.integers(min_value=1, max_value=per_sender),
        )
        crash_on = draw(st.frozensets(message, max_size=max_crashes))
        pauses = draw(st.frozensets(message, max_size=senders * per_sender))
        capacity = draw(st.none() | st.integers(min_value=1, max_value=4))
        return SendPlan(senders, per_sender, crash_on, pauses, capacity)

    return plans()


#: the restart types of ``supervisor.Restart``, by value
RESTART_TYPES = ("permanent", "transient", "temporary")


def restart_types() -> st.SearchStrategy[str]:
    """A restart type's value: ``supervisor.Restart(value)`` is the member."""
    return st.sampled_from(RESTART_TYPES)


def dynamic_child_ids(count: int = 4) -> st.SearchStrategy[str]:
    """The id of a child added at run time, from a small pool so that ids get reused."""
    return st.sampled_from([f"dyn{n}" for n in range(count)])


# ---------------------------------------------------------------------------------------------
# Values a sink may be handed (bus._codec.Codec.check_round_trip, bus.sink; tests/bus/test_codec.py)
#
# Events whose fields are typed loosely (Any) or as floats, given values of every kind, including
# what JSON cannot keep: NaN and infinities, bytes and tuples in an Any field, unencodable objects.
# The property: the check refuses the value, or it reads back equal.
# ---------------------------------------------------------------------------------------------


class SampleLoose(Event):
    """A field typed Any: whatever it holds must come back equal, or be refused at the call."""

    __type_name__ = "tests.sample.loose"

    value: object


class SampleFloats(Event):
    """Floats, alone and in containers."""

    __type_name__ = "tests.sample.floats"

    value: float
    values: list[float]


any_floats = st.floats(allow_nan=True, allow_infinity=True)
loose_values = st.recursive(
    st.none()
    | st.booleans()
    | int64s
    | st.integers()
    | any_floats
    | texts
    | st.binary(max_size=8)
    | st.builds(object),
    lambda inner: st.lists(inner, max_size=3)
    | st.tuples(inner, inner)
    | st.dictionaries(texts, inner, max_size=3)
    | st.builds(SampleCreated, texts, texts),
    max_leaves=6,
)


def storable_candidates() -> st.SearchStrategy[Event]:
    """Events a user might hand to ``sink``: storable or not."""
    return st.one_of(
        st.builds(SampleLoose, loose_values),
        st.builds(SampleFloats, any_floats, st.lists(any_floats, max_size=3)),
        events(),
    )

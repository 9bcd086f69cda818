"""Events and contexts encode to JSON and msgpack and decode back to their original classes."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, strategies as st

from bus._codec import JSON, MSGPACK, Codec
from bus._errors import UnknownEventTypeError
from bus._events import DeadLetter, Event, MessageContext, event_class, event_type_name
from tests.strategies import (
    SampleCreated,
    SampleFloats,
    SampleLoose,
    SampleRow,
    SampleWrapper,
    dead_letters,
    events,
    message_contexts,
    messages,
    storable_candidates,
)

CODECS = [pytest.param(JSON, id="json"), pytest.param(MSGPACK, id="msgpack")]


@pytest.mark.parametrize("codec", CODECS)
@given(message=messages())
def test_an_envelope_decodes_to_the_original_event_class_and_context(
    codec: Codec, message: tuple[Event, MessageContext]
) -> None:
    event, context = message
    decoded_event, decoded_context = codec.decode(codec.encode(event, context))
    assert type(decoded_event) is type(event)
    assert decoded_event == event
    assert decoded_context == context


@pytest.mark.parametrize("codec", CODECS)
@given(event=events())
def test_an_event_body_decodes_by_its_type_name(codec: Codec, event: Event) -> None:
    body = codec.encode_event(event)
    decoded = codec.decode_event(event_type_name(type(event)), body)
    assert type(decoded) is type(event)
    assert decoded == event


@pytest.mark.parametrize("codec", CODECS)
@given(context=message_contexts())
def test_a_context_round_trips_alone(codec: Codec, context: MessageContext) -> None:
    assert codec.decode_context(codec.encode_context(context)) == context


@pytest.mark.parametrize("codec", CODECS)
@given(letter=dead_letters(), context=message_contexts())
def test_a_dead_letter_round_trips_with_its_original_event_as_its_own_class(
    codec: Codec, letter: DeadLetter, context: MessageContext
) -> None:
    decoded, _ = codec.decode(codec.encode(letter, context))
    assert isinstance(decoded, DeadLetter)
    assert type(decoded.event) is type(letter.event)
    assert decoded == letter


def test_a_json_envelope_names_the_event_type_and_nests_events_as_type_and_body() -> None:
    created = SampleCreated("a", "b")
    context = MessageContext.new()
    letter = DeadLetter("h", created, context, "ValueError: x", 4, "retries_exhausted")
    envelope = msgspec.json.decode(JSON.encode(letter, context.caused()))
    assert list(envelope) == ["type", "event", "context"]
    assert envelope["type"] == "bus.DeadLetter"
    assert envelope["event"]["event"] == {
        "type": event_type_name(SampleCreated),
        "event": {"name": "a", "content": "b"},
    }
    assert envelope["context"]["causation_id"] == context.message_id


def test_msgspec_options_of_an_event_with_event_fields_are_kept_on_the_wire() -> None:
    wrapper = SampleWrapper(SampleRow(1, "x"), None, "note")
    body = msgspec.json.decode(JSON.encode_event(wrapper))
    assert body == {
        "innerEvent": {"type": event_type_name(SampleRow), "event": [1, "x"]},
        "maybeCreated": None,
        "wrapperNote": "note",
    }


@pytest.mark.parametrize("codec", CODECS)
def test_an_unknown_type_name_on_the_wire_raises_unknown_event_type_error(codec: Codec) -> None:
    envelope = {"type": "tests.no.such.Event", "event": {}, "context": MessageContext.new()}
    data = (msgspec.json if codec.name == "json" else msgspec.msgpack).encode(envelope)
    with pytest.raises(UnknownEventTypeError, match=r"tests\.no\.such\.Event"):
        codec.decode(data)


def test_a_nested_event_of_a_class_its_field_does_not_allow_fails_validation() -> None:
    wrapper = SampleWrapper(SampleCreated("a", "b"), SampleCreated("c", "d"))
    data = JSON.encode_event(wrapper)
    forged = data.replace(
        b'"maybeCreated":{"type":"' + event_type_name(SampleCreated).encode(),
        b'"maybeCreated":{"type":"' + event_type_name(SampleRow).encode(),
    ).replace(b'{"name":"c","content":"d"}', b'[1,"x"]')
    with pytest.raises(msgspec.ValidationError, match="maybe_created"):
        JSON.decode_event(event_type_name(SampleWrapper), forged)


def test_a_field_of_the_wrong_type_fails_validation() -> None:
    with pytest.raises(msgspec.ValidationError):
        JSON.decode_event(event_type_name(SampleCreated), b'{"name":1,"content":"b"}')


@pytest.mark.parametrize("codec", CODECS)
def test_encoding_something_that_is_not_an_event_raises_type_error(codec: Codec) -> None:
    with pytest.raises(TypeError, match="expected an Event"):
        codec.encode(object(), MessageContext.new())  # type: ignore[arg-type]


def test_bytes_decode_to_the_latest_definition_of_a_redefined_class() -> None:
    def define() -> type[Event]:
        class Versioned(Event):
            value: int

        return Versioned

    old = define()
    data = JSON.encode(old(1), MessageContext.new())
    new = define()
    decoded, _ = JSON.decode(data)
    assert type(decoded) is new
    assert event_class(event_type_name(new)) is new


# --- what a sink may accept: the round-trip check ----------------------------------------------


@given(event=storable_candidates())
def test_an_event_the_round_trip_check_accepts_reads_back_equal(event: Event) -> None:
    try:
        body = JSON.check_round_trip(event)
    except TypeError:
        return  # refused at the call: nothing would be stored
    assert JSON.decode_event(event_type_name(type(event)), body) == event
    context = MessageContext.new({"k": "v"})
    assert JSON.decode(JSON.encode(event, context)) == (event, context)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        pytest.param(SampleFloats(math.nan, []), "NaN and infinite floats", id="nan"),
        pytest.param(SampleFloats(1.0, [math.inf]), "NaN and infinite floats", id="inf-in-list"),
        pytest.param(SampleFloats(-math.inf, []), "NaN and infinite floats", id="minus-inf"),
        pytest.param(SampleLoose(object()), "cannot be encoded", id="object"),
        pytest.param(SampleLoose(math.nan), "would read back", id="nan-in-any"),
        pytest.param(SampleLoose((1, 2)), "would read back", id="tuple-in-any"),
        pytest.param(SampleLoose(b"\x00"), "would read back", id="bytes-in-any"),
        pytest.param(SampleLoose(2**70), "", id="big-int-is-kept"),
    ],
)
def test_the_round_trip_check_refuses_what_would_not_read_back_and_says_why(
    event: Event, reason: str
) -> None:
    if not reason:
        JSON.check_round_trip(event)
        return
    with pytest.raises(TypeError, match=reason) as caught:
        JSON.check_round_trip(event)
    assert type(event).__qualname__ in str(caught.value)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("context", [None, "ctx", {"message_id": "x"}])
def test_encoding_with_something_that_is_not_a_context_raises_type_error(
    codec: Codec, context: object
) -> None:
    with pytest.raises(TypeError, match="MessageContext"):
        codec.encode(SampleCreated("a", "b"), context)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="MessageContext"):
        codec.encode_context(context)  # type: ignore[arg-type]


@pytest.mark.parametrize("codec", CODECS)
def test_encoding_a_context_with_headers_that_are_not_text_raises_type_error_naming_the_key(
    codec: Codec,
) -> None:
    context = MessageContext(headers={"user": 42})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="'user'"):
        codec.encode(SampleCreated("a", "b"), context)
    with pytest.raises(TypeError, match="'user'"):
        codec.encode_context(context)


@given(events=st.lists(storable_candidates(), max_size=6))
def test_the_round_trip_check_of_many_agrees_with_checking_each(events: list[Event]) -> None:
    refused = []
    for index, event in enumerate(events):
        try:
            JSON.check_round_trip(event)
        except TypeError:
            refused.append(index)
    if not refused:
        JSON.check_round_trip_many(events)
        return
    with pytest.raises(TypeError, match=r"^events\[(\d+)\]: ") as caught:
        JSON.check_round_trip_many(events)
    assert int(caught.value.args[0].split("]")[0].split("[")[1]) in refused


def test_the_round_trip_check_of_many_names_the_bad_events_index() -> None:
    events = [SampleCreated("a", "b"), SampleFloats(1.0, []), SampleFloats(math.nan, [])]
    with pytest.raises(TypeError, match=r"events\[2\]: .*NaN"):
        JSON.check_round_trip_many(events)

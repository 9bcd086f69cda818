"""Events, their type names and registry, message contexts, and the bus's notice events."""

from __future__ import annotations

import os
import re
import threading
import types

import msgspec
import pytest

from bus._codec import JSON, MSGPACK
from bus._errors import BusError, RegistrationError, UnknownEventTypeError
from bus._events import (
    DeadLetter,
    Event,
    HandlerRestarted,
    HandlerStopped,
    MessageContext,
    SupervisorGaveUp,
    describe_error,
    event_class,
    event_type_name,
    new_message_id,
)

HEX32 = re.compile(r"[0-9a-f]{32}")


class TodoCreated(Event):
    name: str
    content: str


class Renamed(Event):
    __type_name__ = "tests.events.renamed"

    value: int


# --- events and their type names ---------------------------------------------------------------


def test_an_event_is_constructed_positionally_and_is_frozen() -> None:
    created = TodoCreated("a", "b")
    assert (created.name, created.content) == ("a", "b")
    assert created == TodoCreated(name="a", content="b")
    with pytest.raises(AttributeError):
        created.name = "c"
    assert hash(created) == hash(TodoCreated("a", "b"))


def test_an_event_type_name_defaults_to_its_module_and_qualified_name() -> None:
    assert event_type_name(TodoCreated) == f"{__name__}.TodoCreated"
    assert event_class(f"{__name__}.TodoCreated") is TodoCreated


def test_an_explicit_type_name_set_as_a_class_variable_names_the_class() -> None:
    assert event_type_name(Renamed) == "tests.events.renamed"
    assert event_class("tests.events.renamed") is Renamed
    assert "__type_name__" not in Renamed.__struct_fields__


def test_a_subclass_does_not_inherit_its_parents_explicit_type_name() -> None:
    class RenamedChild(Renamed):
        extra: str

    assert event_type_name(RenamedChild) == f"{__name__}.{RenamedChild.__qualname__}"
    assert event_class("tests.events.renamed") is Renamed
    assert RenamedChild(1, "x").extra == "x"


def test_two_classes_claiming_one_type_name_raise_a_registration_error() -> None:
    with pytest.raises(RegistrationError, match=re.escape("tests.events.renamed")) as caught:

        class Impostor(Event):
            __type_name__ = "tests.events.renamed"

    assert isinstance(caught.value, TypeError)
    assert event_class("tests.events.renamed") is Renamed


def test_redefining_a_class_with_the_same_qualified_name_replaces_it() -> None:
    def define() -> type[Event]:
        class Redefined(Event):
            value: int

        return Redefined

    first, second = define(), define()
    assert first is not second
    assert event_class(event_type_name(second)) is second


def test_redefining_a_class_under_a_new_explicit_name_frees_the_old_name() -> None:
    def define(name: str) -> type[Event]:
        class Moving(Event):
            __type_name__ = name

        return Moving

    define("tests.events.moving.old")
    moved = define("tests.events.moving.new")
    assert event_class("tests.events.moving.new") is moved
    with pytest.raises(UnknownEventTypeError):
        event_class("tests.events.moving.old")


def test_an_empty_type_name_is_rejected_at_the_class_statement() -> None:
    with pytest.raises(RegistrationError, match="non-empty str"):

        class Nameless(Event):
            __type_name__ = ""


def test_an_unknown_type_name_raises_a_bus_error_that_is_a_key_error() -> None:
    with pytest.raises(UnknownEventTypeError) as caught:
        event_class("no.such.Event")
    assert isinstance(caught.value, KeyError)
    assert isinstance(caught.value, BusError)
    assert str(caught.value).startswith("unknown event type 'no.such.Event'")


def test_event_type_name_rejects_a_class_that_is_not_an_event() -> None:
    with pytest.raises(TypeError, match="Event subclass"):
        event_type_name(int)  # type: ignore[arg-type]


def test_msgspec_options_pass_through_the_class_statement() -> None:
    class Options(Event, kw_only=True, rename="camel"):
        first_name: str

    options = Options(first_name="a")
    assert msgspec.json.encode(options) == b'{"firstName":"a"}'
    with pytest.raises(AttributeError):
        options.first_name = "b"


# --- message contexts --------------------------------------------------------------------------


def test_a_root_context_is_its_own_correlation_and_has_no_cause() -> None:
    context = MessageContext.new()
    assert HEX32.fullmatch(context.message_id)
    assert context.correlation_id == context.message_id
    assert context.causation_id is None
    assert context.attempt == 1
    assert context.headers == {}
    assert context.timestamp > 0


def test_a_root_context_takes_a_correlation_id_and_a_copy_of_the_headers() -> None:
    headers = {"tenant": "acme"}
    context = MessageContext.new(headers, correlation_id="request-7")
    headers["tenant"] = "changed"
    assert context.correlation_id == "request-7"
    assert context.headers == {"tenant": "acme"}


def test_a_context_built_with_no_arguments_is_a_root_context() -> None:
    context = MessageContext()
    assert HEX32.fullmatch(context.message_id)
    assert context.correlation_id == context.message_id
    assert context.attempt == 1


def test_a_caused_context_links_to_its_parent_and_keeps_correlation_and_headers() -> None:
    parent = MessageContext.new({"tenant": "acme"}).with_attempt(3)
    child = parent.caused()
    assert child.message_id != parent.message_id
    assert child.correlation_id == parent.correlation_id
    assert child.causation_id == parent.message_id
    assert child.attempt == 1
    assert child.headers == {"tenant": "acme"}
    assert child.timestamp >= parent.timestamp


def test_a_caused_context_merges_extra_headers_without_touching_its_parents() -> None:
    parent = MessageContext.new({"tenant": "acme", "user": "ann"})
    child = parent.caused({"user": "bob", "trace": "t1"})
    assert child.headers == {"tenant": "acme", "user": "bob", "trace": "t1"}
    assert parent.headers == {"tenant": "acme", "user": "ann"}


def test_message_ids_of_one_process_sort_in_creation_order() -> None:
    ids = [new_message_id() for _ in range(100)]
    assert ids == sorted(ids)
    assert len({i[:16] for i in ids}) == 1


def test_with_attempt_changes_only_the_attempt() -> None:
    context = MessageContext.new({"a": "b"})
    retried = context.with_attempt(2)
    assert retried.attempt == 2
    assert msgspec.structs.replace(retried, attempt=1) == context


def test_a_context_is_frozen() -> None:
    context = MessageContext.new()
    with pytest.raises(AttributeError):
        context.attempt = 2  # type: ignore[misc]


def test_message_ids_are_unique_across_threads() -> None:
    per_thread = 2_000
    results: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(new_message_id() for _ in range(per_thread))

    threads = [threading.Thread(target=make, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [i for out in results for i in out]
    assert len(set(ids)) == len(ids) == 4 * per_thread
    assert all(HEX32.fullmatch(i) for i in ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_its_parents_message_ids() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe and exits at once
        os.write(write_end, new_message_id().encode())
        os._exit(0)
    os.close(write_end)
    parent_id = new_message_id()
    with os.fdopen(read_end, "rb") as pipe:
        child_id = pipe.read().decode()
    os.waitpid(pid, 0)
    assert HEX32.fullmatch(child_id)
    assert child_id[:16] != parent_id[:16]


# --- notice events -----------------------------------------------------------------------------


def test_a_dead_letter_carries_the_original_event_object() -> None:
    created = TodoCreated("a", "b")
    context = MessageContext.new()
    letter = DeadLetter(
        "listen_create",
        created,
        context,
        describe_error(ValueError("boom")),
        4,
        "retries_exhausted",
    )
    assert letter.event is created
    assert letter.context.message_id == context.message_id
    assert letter.error == "ValueError: boom"
    assert isinstance(letter, Event)


def test_notice_events_have_stable_type_names() -> None:
    names = [
        event_type_name(cls)
        for cls in (DeadLetter, HandlerRestarted, HandlerStopped, SupervisorGaveUp)
    ]
    assert names == [
        "bus.DeadLetter",
        "bus.HandlerRestarted",
        "bus.HandlerStopped",
        "bus.SupervisorGaveUp",
    ]
    assert HandlerRestarted("h", 2, "ValueError: x").restarts == 2
    assert HandlerStopped("h", "restart intensity exceeded").reason.startswith("restart")
    assert SupervisorGaveUp("handlers", "RuntimeError: x").supervisor == "handlers"


class PaymentDeclined(Exception):
    pass


def test_describe_error_names_the_exception_type_with_its_module_outside_builtins() -> None:
    assert describe_error(KeyError()) == "KeyError"
    assert describe_error(RuntimeError("no")) == "RuntimeError: no"
    assert describe_error(PaymentDeclined("card")) == f"{__name__}.PaymentDeclined: card"


def test_describe_error_cuts_a_huge_text_and_says_how_much_it_left_out() -> None:
    text = describe_error(ValueError("x" * 1_000_000))
    assert text.startswith("ValueError: xxx")
    assert text.endswith(f"... ({1_000_000 + len('ValueError: ') - 2000} more characters)")
    assert len(text) < 2100
    assert describe_error(ValueError("x" * 1000)) == "ValueError: " + "x" * 1000  # kept whole


# --- headers and message ids are checked where contexts are made --------------------------------


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        pytest.param({"user": 42}, "'user'", id="int-value"),
        pytest.param({"user": None}, "'user'", id="none-value"),
        pytest.param({"ok": "v", "blob": b"x"}, "'blob'", id="bytes-value"),
        pytest.param({1: "v"}, "1", id="int-key"),
    ],
)
def test_a_context_refuses_headers_that_are_not_str_to_str_naming_the_key(
    headers: dict[object, object], named: str
) -> None:
    with pytest.raises(TypeError, match=named):
        MessageContext.new(headers)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=named):
        MessageContext.new().caused(headers)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mapping"):
        MessageContext.new([("a", "b")])  # type: ignore[arg-type]


def test_a_context_takes_the_callers_message_id_and_refuses_an_unusable_one() -> None:
    root = MessageContext.new(message_id="order-17")
    assert (root.message_id, root.correlation_id) == ("order-17", "order-17")
    caused = root.caused(message_id="order-17/shipped")
    assert (caused.message_id, caused.causation_id) == ("order-17/shipped", "order-17")
    with pytest.raises(TypeError, match="message_id"):
        MessageContext.new(message_id=17)  # type: ignore[arg-type]
    for bad in ("", "line\nbreak"):
        with pytest.raises(ValueError, match="message_id"):
            MessageContext.new(message_id=bad)


# --- events defined in a script (module __main__) ----------------------------------------------


def _script_class(name: str, **namespace: object) -> type[Event]:
    """A class as `class <name>(Event)` in a script run as ``python app.py`` defines it."""

    def body(ns: dict[str, object]) -> None:
        ns["__module__"] = "__main__"
        ns["__annotations__"] = {"n": int}
        ns.update(namespace)

    return types.new_class(name, (Event,), exec_body=body)


def test_a_script_event_without_an_explicit_name_cannot_be_encoded_and_the_error_says_what_to_do() -> None:
    cls = _script_class("ScriptOnly")
    event = cls(1)  # type: ignore[call-arg]
    assert event_type_name(cls) == "__main__.ScriptOnly"
    for codec in (JSON, MSGPACK):
        with pytest.raises(TypeError, match="__type_name__") as caught:
            codec.encode(event, MessageContext.new())
        assert "__main__" in str(caught.value)
    wrapper = DeadLetter("h", event, MessageContext.new(), "", 0, "handler_stopped")
    with pytest.raises(TypeError, match="ScriptOnly"):
        JSON.encode(wrapper, MessageContext.new())


def test_a_script_event_with_an_explicit_name_round_trips() -> None:
    cls = _script_class("ScriptNamed", __type_name__="tests.script.named")
    event = cls(2)  # type: ignore[call-arg]
    context = MessageContext.new()
    assert JSON.decode(JSON.encode(event, context)) == (event, context)


def test_an_unknown_type_name_says_what_to_do_for_each_kind_of_name() -> None:
    with pytest.raises(UnknownEventTypeError, match=r"__type_name__ = '__main__\.Gone'"):
        event_class("__main__.Gone")
    with pytest.raises(UnknownEventTypeError, match=r"module 'os' is imported but"):
        event_class("os.Renamed")
    with pytest.raises(UnknownEventTypeError, match=r"import the module .*'not_imported_mod'"):
        event_class("not_imported_mod.Thing")
    with pytest.raises(UnknownEventTypeError, match="define one with"):
        event_class("bare")

"""Registration rules found by a user trial: what the context's place may hold, closure defaults,
and registering on a registry a running terminal uses."""

from __future__ import annotations

from typing import Annotated, Any

import pytest

from bus import BusTerminal, Event, EventBus, MessageContext, MessageRegistry, RegistrationError
from bus._handlers import ParamSpec, parse_handler

pytestmark = pytest.mark.anyio


class OrderPlaced(Event):
    order_id: int


class Repo:
    def __init__(self) -> None:
        self.saved: list[int] = []


async def store(order: OrderPlaced, repo: Repo) -> None:  # the trial's mistake
    repo.saved.append(order.order_id)


def make_repo() -> Repo:
    return Repo()


# --- the second positional parameter ---------------------------------------------------------


def test_a_dependency_in_the_second_position_is_rejected_naming_handler_and_parameter() -> None:
    registry = MessageRegistry()
    registry.factory(make_repo)
    with pytest.raises(RegistrationError) as caught:
        registry.register(store)
    message = str(caught.value)
    assert message.startswith("handler 'store' parameter 'repo' is annotated Repo")
    assert "the second parameter receives the MessageContext" in message
    assert "take dependencies as a third or keyword-only parameter" in message
    assert registry.handlers == ()


@pytest.mark.parametrize(
    "annotation", [int, str, "MessageContext | None", Annotated[Repo, "marker"], None, EventBus]
)
def test_every_annotation_of_the_second_parameter_but_the_allowed_ones_is_rejected(
    annotation: Any,
) -> None:
    async def handler(order: OrderPlaced, second: Any) -> None: ...

    handler.__annotations__["second"] = annotation
    with pytest.raises(RegistrationError, match=r"handler' parameter 'second' is annotated"):
        parse_handler(handler)


@pytest.mark.parametrize(
    "annotation", [Any, object, MessageContext, Annotated[MessageContext, "marker"]]
)
def test_the_second_parameter_may_be_annotated_any_object_or_message_context(
    annotation: Any,
) -> None:
    async def handler(order: OrderPlaced, ctx: Any) -> None: ...

    handler.__annotations__["ctx"] = annotation
    assert parse_handler(handler).params == (ParamSpec("ctx", "context", MessageContext),)


async def test_a_dependency_taken_as_a_third_or_keyword_only_parameter_is_injected() -> None:
    seen: list[tuple[str, bool, bool]] = []

    async def third(order: OrderPlaced, ctx: MessageContext, repo: Repo) -> None:
        seen.append(("third", isinstance(ctx, MessageContext), isinstance(repo, Repo)))

    async def keyword_only(order: OrderPlaced, *, repo: Repo) -> None:
        seen.append(("keyword_only", True, isinstance(repo, Repo)))

    registry = MessageRegistry()
    registry.factory(make_repo)
    registry.register(third, keyword_only)
    async with BusTerminal(registry) as terminal:
        await terminal.bus.publish(OrderPlaced(1))
    assert seen == [("third", True, True), ("keyword_only", True, True)]


# --- unannotated parameters with a default ---------------------------------------------------


async def test_an_unannotated_parameter_with_a_default_is_never_injected_and_keeps_its_default() -> (
    None
):
    seen: list[tuple[int, int, str]] = []
    registry = MessageRegistry()
    for i in range(3):  # the closure-in-a-loop idiom

        async def handler(order: OrderPlaced, ctx, _i=i, *, _tag="kw") -> None:  # type: ignore[no-untyped-def]
            seen.append((_i, order.order_id, _tag))

        handler.__qualname__ = f"handler_{i}"
        registry.register(handler)

    assert [h.spec.params for h in registry.handlers] == [
        (ParamSpec("ctx", "context", MessageContext),)
    ] * 3
    async with BusTerminal(registry) as terminal:
        await terminal.bus.publish(OrderPlaced(7))
        await terminal.bus.emit(OrderPlaced(8))
        await terminal.drain()
    assert seen[:3] == [(0, 7, "kw"), (1, 7, "kw"), (2, 7, "kw")]  # publish: registration order
    assert sorted(seen[3:]) == [(0, 8, "kw"), (1, 8, "kw"), (2, 8, "kw")]


def test_an_unannotated_parameter_without_a_default_is_still_an_error() -> None:
    async def handler(order: OrderPlaced, ctx, index) -> None:  # type: ignore[no-untyped-def]
        pass

    with pytest.raises(RegistrationError, match=r"handler' parameter 'index' has no annotation"):
        parse_handler(handler)


# --- a registry used by a running terminal ---------------------------------------------------


def test_registering_on_a_registry_in_use_raises_until_it_is_released() -> None:
    async def late(order: OrderPlaced) -> None: ...

    registry = MessageRegistry()
    decorator = registry.register(retries=1)  # obtained before, applied while in use
    registry._acquire()
    registry._acquire()  # two terminals share it
    in_use = r"is used by a running BusTerminal: register handlers and factories before entering it"
    with pytest.raises(RegistrationError, match=in_use):
        registry.register(late)
    with pytest.raises(RegistrationError, match=in_use):
        registry(late)
    with pytest.raises(RegistrationError, match=in_use):
        decorator(late)
    with pytest.raises(RegistrationError, match=in_use):
        registry.factory(make_repo)
    registry._release()
    with pytest.raises(RegistrationError, match=in_use):  # the other one still runs
        registry.register(late)
    registry._release()
    assert registry.handlers == ()
    assert dict(registry.providers) == {}

    registry.register(late)
    registry.factory(make_repo)
    assert [h.spec.qualname for h in registry.handlers] == [late.__qualname__]
    assert list(registry.providers) == [Repo]


def test_releasing_a_registry_more_often_than_acquired_leaves_it_usable() -> None:
    registry = MessageRegistry()
    registry._release()
    registry._acquire()
    registry._release()
    registry.factory(make_repo)
    assert list(registry.providers) == [Repo]

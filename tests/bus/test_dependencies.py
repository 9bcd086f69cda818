"""Dependency providers: parsing, resolvability checks, per-incarnation creation and teardown.

This module uses ``from __future__ import annotations`` on purpose: every annotation below is a
string that the registry has to resolve.
"""

from __future__ import annotations

import contextlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from typing import Annotated, Any

import pytest

from bus._bus import EventBus
from bus._dependencies import ProviderSpec, check_resolvable, open_dependencies, parse_provider
from bus._errors import RegistrationError
from bus._events import Event, MessageContext
from bus._handlers import parse_handler
from bus._registry import MessageRegistry

pytestmark = pytest.mark.anyio

PEventBus = Annotated[EventBus, "lihil-style marker"]


class TodoCreated(Event):
    name: str


class Conn:
    pass


class Repo:
    def __init__(self, conn: Conn | None = None) -> None:
        self.conn = conn


class SqlRepo(Repo):
    pass


class Cache:
    pass


class Clock:
    pass


async def listen(created: TodoCreated, ctx: MessageContext, bus: PEventBus, repo: Repo) -> None:
    pass


async def listen_with_default(created: TodoCreated, ctx: object, clock: Clock = Clock()) -> None:  # noqa: B008
    pass


def cyclic_repo(conn: Conn) -> Repo:
    return Repo(conn)


def cyclic_conn(repo: Repo) -> Conn:
    return Conn()


def provider_kinds(log: list[str]) -> list[Callable[..., object]]:
    """One provider of each kind, logging set-up and teardown."""

    def make_conn() -> Iterator[Conn]:
        log.append("open conn")
        yield Conn()
        log.append("close conn")

    async def make_repo(conn: Conn) -> AsyncIterator[Repo]:
        log.append("open repo")
        yield Repo(conn)
        log.append("close repo")

    def make_cache() -> Cache:
        log.append("open cache")
        return Cache()

    async def make_clock() -> Clock:
        log.append("open clock")
        return Clock()

    return [make_conn, make_repo, make_cache, make_clock]


def registry_with(*providers: Callable[..., object]) -> MessageRegistry:
    registry = MessageRegistry()
    for provider in providers:
        registry.factory(provider)
    return registry


# --- parsing providers ------------------------------------------------------------------------


def test_a_sync_function_provides_its_return_type() -> None:
    def make_repo() -> Repo:
        return Repo()

    spec = parse_provider(make_repo)
    assert isinstance(spec, ProviderSpec)
    assert (spec.provides, spec.kind, spec.params) == (Repo, "function", ())
    assert spec.qualname.endswith("make_repo")
    assert spec.name == f"{__name__}.{spec.qualname}"


def test_an_async_function_provides_its_awaited_return_type() -> None:
    async def make_repo() -> Repo:
        return Repo()

    assert (parse_provider(make_repo).provides, parse_provider(make_repo).kind) == (
        Repo,
        "coroutine",
    )


def test_generators_provide_the_type_they_yield_whichever_way_they_are_annotated() -> None:
    def iterator() -> Iterator[Repo]:
        yield Repo()

    def generator() -> Generator[Repo, None, None]:
        yield Repo()

    def iterable() -> Iterable[Annotated[Repo, "x"]]:
        yield Repo()

    async def async_iterator() -> AsyncIterator[Repo]:
        yield Repo()

    async def async_generator() -> AsyncGenerator[Repo, None]:
        yield Repo()

    async def async_iterable() -> AsyncIterable[Repo]:
        yield Repo()

    kinds = [
        (parse_provider(provider).provides, parse_provider(provider).kind)
        for provider in (
            iterator,
            generator,
            iterable,
            async_iterator,
            async_generator,
            async_iterable,
        )
    ]
    assert kinds == [(Repo, "generator")] * 3 + [(Repo, "async_generator")] * 3


def test_an_annotated_return_type_is_unwrapped() -> None:
    def make_repo() -> Annotated[Repo, "meta"]:
        return Repo()

    assert parse_provider(make_repo).provides is Repo


def test_a_provider_may_take_the_bus_and_other_provided_types() -> None:
    def make_repo(
        conn: Conn, bus: EventBus, other_bus: PEventBus, cache: Cache | None = None
    ) -> Repo:
        return Repo(conn)

    params = parse_provider(make_repo).params
    assert [(param.name, param.kind) for param in params] == [
        ("conn", "dependency"),
        ("bus", "bus"),
        ("other_bus", "bus"),
        ("cache", "dependency"),
    ]
    assert params[0].annotation is Conn
    assert params[3].has_default


def test_factory_rejects_a_provider_without_a_return_annotation() -> None:
    def make_repo():  # type: ignore[no-untyped-def]
        return Repo()

    with pytest.raises(RegistrationError, match=r"make_repo' has no return annotation"):
        MessageRegistry().factory(make_repo)


def test_factory_rejects_a_generator_not_annotated_as_an_iterator() -> None:
    def make_repo() -> Repo:  # type: ignore[misc]
        yield Repo()

    async def make_async_repo() -> Iterator[Repo]:  # type: ignore[misc]
        yield Repo()

    with pytest.raises(RegistrationError, match=r"is a generator, so .* must be Iterator\[T\]"):
        parse_provider(make_repo)
    with pytest.raises(RegistrationError, match=r"is an async generator, .*got Iterator\[Repo\]"):
        parse_provider(make_async_repo)


@pytest.mark.parametrize("returns", [None, list[Repo], Any, Repo | None, "Repo | None"])
def test_factory_rejects_a_return_annotation_that_is_not_a_class(returns: object) -> None:
    def make() -> None:
        pass

    make.__annotations__["return"] = returns
    with pytest.raises(RegistrationError, match=r"return annotation .* is not a class"):
        parse_provider(make)


def test_factory_rejects_providing_what_the_bus_injects_itself() -> None:
    def make_bus() -> EventBus:
        raise NotImplementedError

    def make_context() -> MessageContext:
        return MessageContext()

    with pytest.raises(RegistrationError, match="cannot provide EventBus"):
        parse_provider(make_bus)
    with pytest.raises(RegistrationError, match="cannot provide MessageContext"):
        parse_provider(make_context)


def test_factory_rejects_bad_provider_parameters() -> None:
    def takes_context(ctx: MessageContext) -> Repo:
        return Repo()

    def unannotated(conn) -> Repo:  # type: ignore[no-untyped-def]
        return Repo()

    def itself(repo: Repo) -> Repo:
        return repo

    def variadic(*conns: Conn) -> Repo:
        return Repo()

    cases: list[tuple[Callable[..., object], str]] = [
        (takes_context, "parameter 'ctx': a provider cannot take the MessageContext"),
        (unannotated, "parameter 'conn' has no annotation"),
        (itself, "parameter 'repo': a provider cannot depend on its own type"),
        (variadic, r"parameter \*conns is not supported"),
    ]
    for provider, message in cases:
        with pytest.raises(RegistrationError, match=message):
            parse_provider(provider)


def test_an_unresolvable_return_annotation_names_the_provider() -> None:
    class LocalRepo:
        pass

    def make_repo() -> LocalRepo:
        return LocalRepo()

    with pytest.raises(
        RegistrationError, match=r"make_repo' return annotation: cannot resolve annotation"
    ):
        parse_provider(make_repo)


def test_handlers_with_string_annotations_resolve_like_any_other() -> None:
    spec = parse_handler(listen)
    assert spec.subscriptions == (TodoCreated,)
    assert [(param.name, param.kind, param.annotation) for param in spec.params] == [
        ("ctx", "context", MessageContext),
        ("bus", "bus", EventBus),
        ("repo", "dependency", Repo),
    ]


# --- check_resolvable -------------------------------------------------------------------------


def test_check_resolvable_accepts_dependencies_provided_directly_or_through_others() -> None:
    registry = registry_with(*provider_kinds([]))
    registry.register(listen, listen_with_default)
    check_resolvable(registry.handlers, registry.providers)


def test_check_resolvable_names_the_handler_and_parameter_without_a_provider() -> None:
    registry = MessageRegistry()
    registry.register(listen)
    with pytest.raises(
        RegistrationError,
        match=r"^handler 'listen' parameter 'repo': no provider for Repo; register one with "
        r"@registry.factory, or give the parameter a default$",
    ):
        check_resolvable(registry.handlers, registry.providers)


def test_check_resolvable_accepts_a_missing_dependency_that_has_a_default() -> None:
    registry = MessageRegistry()
    registry.register(listen_with_default)
    check_resolvable(registry.handlers, registry.providers)


def test_check_resolvable_follows_the_chain_to_the_missing_provider() -> None:
    def make_repo(conn: Conn) -> Repo:
        return Repo(conn)

    registry = registry_with(make_repo)
    registry.register(listen)
    with pytest.raises(
        RegistrationError,
        match=r"^handler 'listen' parameter 'repo': provider '.*make_repo' parameter 'conn': "
        r"no provider for Conn",
    ):
        check_resolvable(registry.handlers, registry.providers)


def test_check_resolvable_reports_a_dependency_cycle() -> None:
    registry = registry_with(cyclic_repo, cyclic_conn)
    registry.register(listen)
    with pytest.raises(
        RegistrationError,
        match=r"^handler 'listen' parameter 'repo': dependency cycle cyclic_repo \(Repo\) -> "
        r"cyclic_conn \(Conn\) -> cyclic_repo \(Repo\)$",
    ):
        check_resolvable(registry.handlers, registry.providers)


def test_check_resolvable_checks_providers_that_no_handler_uses() -> None:
    def make_cache(clock: Clock) -> Cache:
        return Cache()

    registry = registry_with(make_cache)
    with pytest.raises(
        RegistrationError,
        match=r"^provider '.*make_cache' parameter 'clock': no provider for Clock",
    ):
        check_resolvable(registry.handlers, registry.providers)


def test_check_resolvable_takes_handler_specs_as_well() -> None:
    with pytest.raises(RegistrationError, match="no provider for Repo"):
        check_resolvable([parse_handler(listen)], {})


# --- open_dependencies ------------------------------------------------------------------------


async def test_open_dependencies_builds_one_value_per_dependency_parameter() -> None:
    async def handler(
        created: TodoCreated, ctx: object, *, repo: Repo, cache: Cache, clock: Clock, bus: EventBus
    ) -> None:
        pass

    log: list[str] = []
    registry = registry_with(*provider_kinds(log))
    async with contextlib.AsyncExitStack() as stack:
        values = await open_dependencies(parse_handler(handler), registry.providers, stack, None)
        assert set(values) == {"repo", "cache", "clock"}
        repo = values["repo"]
        assert isinstance(repo, Repo)
        assert isinstance(repo.conn, Conn)
        assert isinstance(values["cache"], Cache)
        assert isinstance(values["clock"], Clock)
    assert log == ["open conn", "open repo", "open cache", "open clock", "close repo", "close conn"]


async def test_teardowns_run_in_reverse_order_of_creation() -> None:
    log: list[str] = []

    def make_conn() -> Generator[Conn, None, None]:
        log.append("open conn")
        yield Conn()
        log.append("close conn")

    async def make_repo(conn: Conn) -> AsyncGenerator[Repo, None]:
        log.append("open repo")
        yield Repo(conn)
        log.append("close repo")

    def make_cache(repo: Repo) -> Iterator[Cache]:
        log.append("open cache")
        yield Cache()
        log.append("close cache")

    async def handler(created: TodoCreated, ctx: object, cache: Cache, conn: Conn) -> None:
        pass

    registry = registry_with(make_conn, make_repo, make_cache)
    stack = contextlib.AsyncExitStack()
    await open_dependencies(parse_handler(handler), registry.providers, stack, None)
    assert log == ["open conn", "open repo", "open cache"]
    await stack.aclose()
    assert log[3:] == ["close cache", "close repo", "close conn"]


async def test_each_call_builds_fresh_values() -> None:
    log: list[str] = []
    registry = registry_with(*provider_kinds(log))
    spec = parse_handler(listen)
    async with contextlib.AsyncExitStack() as first_stack:
        first = await open_dependencies(spec, registry.providers, first_stack, None)
    async with contextlib.AsyncExitStack() as second_stack:
        second = await open_dependencies(spec, registry.providers, second_stack, None)
    assert first["repo"] is not second["repo"]
    assert log.count("open repo") == log.count("close repo") == 2


async def test_a_provider_runs_once_per_call_however_many_parameters_need_its_type() -> None:
    calls: list[str] = []

    def make_conn() -> Conn:
        calls.append("conn")
        return Conn()

    def make_repo(conn: Conn) -> Repo:
        calls.append("repo")
        return Repo(conn)

    async def handler(
        created: TodoCreated, ctx: object, repo: Repo, conn: Conn, same_repo: Repo
    ) -> None:
        pass

    registry = registry_with(make_conn, make_repo)
    async with contextlib.AsyncExitStack() as stack:
        values = await open_dependencies(parse_handler(handler), registry.providers, stack, None)
    assert calls == ["conn", "repo"]
    assert values["repo"] is values["same_repo"]
    repo = values["repo"]
    assert isinstance(repo, Repo)
    assert repo.conn is values["conn"]


async def test_providers_receive_the_bus() -> None:
    received: list[object] = []

    async def make_repo(bus: PEventBus) -> Repo:
        received.append(bus)
        return Repo()

    bus = object()  # stands for the terminal's bus: open_dependencies only passes it on
    registry = registry_with(make_repo)
    async with contextlib.AsyncExitStack() as stack:
        await open_dependencies(parse_handler(listen), registry.providers, stack, bus)
    assert received == [bus]


async def test_a_dependency_without_a_provider_falls_back_to_its_default() -> None:
    spec = parse_handler(listen_with_default)
    async with contextlib.AsyncExitStack() as stack:
        values = await open_dependencies(spec, {}, stack, None)
    assert values == {}
    args, kwargs = spec.arguments(TodoCreated("a"), MessageContext(), None, values)
    assert kwargs == {}
    await listen_with_default(*args, **kwargs)  # type: ignore[arg-type]


async def test_a_provider_parameter_without_a_provider_falls_back_to_its_default() -> None:
    def make_repo(conn: Conn | None = None) -> Repo:
        return Repo(conn)

    registry = registry_with(make_repo)
    async with contextlib.AsyncExitStack() as stack:
        values = await open_dependencies(parse_handler(listen), registry.providers, stack, None)
    repo = values["repo"]
    assert isinstance(repo, Repo)
    assert repo.conn is None


async def test_open_dependencies_raises_for_a_dependency_nobody_provides() -> None:
    async with contextlib.AsyncExitStack() as stack:
        with pytest.raises(RegistrationError, match="'listen' parameter 'repo': no provider"):
            await open_dependencies(parse_handler(listen), {}, stack, None)


async def test_open_dependencies_raises_for_a_cycle() -> None:
    registry = registry_with(cyclic_repo, cyclic_conn)
    async with contextlib.AsyncExitStack() as stack:
        with pytest.raises(RegistrationError, match="dependency cycle"):
            await open_dependencies(parse_handler(listen), registry.providers, stack, None)


async def test_values_built_before_a_failing_provider_are_torn_down_with_the_stack() -> None:
    log: list[str] = []

    async def make_conn() -> AsyncIterator[Conn]:
        log.append("open conn")
        yield Conn()
        log.append("close conn")

    def make_repo(conn: Conn) -> Repo:
        msg = "database down"
        raise OSError(msg)

    registry = registry_with(make_conn, make_repo)
    with pytest.raises(OSError, match="database down"):
        async with contextlib.AsyncExitStack() as stack:
            await open_dependencies(parse_handler(listen), registry.providers, stack, None)
    assert log == ["open conn", "close conn"]


async def test_the_error_that_closes_the_stack_is_not_thrown_into_teardowns() -> None:
    seen: list[str] = []

    def make_repo() -> Iterator[Repo]:
        try:
            yield Repo()
        except Exception:  # a teardown that swallowed errors must not hide the crash
            seen.append("exception")
        else:
            seen.append("teardown")

    registry = registry_with(make_repo)
    with pytest.raises(ZeroDivisionError):
        async with contextlib.AsyncExitStack() as stack:
            await open_dependencies(parse_handler(listen), registry.providers, stack, None)
            _ = 1 / 0
    assert seen == ["teardown"]


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_generator_provider_must_yield_exactly_once(*, asynchronous: bool) -> None:
    def never_sync() -> Iterator[Repo]:
        return
        yield Repo()

    async def never_async() -> AsyncIterator[Repo]:
        return
        yield Repo()

    def twice_sync() -> Iterator[Repo]:
        yield Repo()
        yield Repo()

    async def twice_async() -> AsyncIterator[Repo]:
        yield Repo()
        yield Repo()

    never, twice = (never_async, twice_async) if asynchronous else (never_sync, twice_sync)
    spec = parse_handler(listen)
    async with contextlib.AsyncExitStack() as stack:
        with pytest.raises(RuntimeError, match="returned without yielding a value"):
            await open_dependencies(spec, registry_with(never).providers, stack, None)
    with pytest.raises(RuntimeError, match="yielded more than once"):
        async with contextlib.AsyncExitStack() as stack:
            await open_dependencies(spec, registry_with(twice).providers, stack, None)


def test_providers_are_keyed_by_exact_type() -> None:
    def make_sql_repo() -> SqlRepo:
        return SqlRepo()

    registry = MessageRegistry()
    registry.factory(make_sql_repo)
    registry.register(listen)
    with pytest.raises(RegistrationError, match="no provider for Repo"):
        check_resolvable(registry.handlers, registry.providers)

"""Dependency providers: parse them, check every dependency can be built, build them per incarnation.

A provider is registered with ``@registry.factory`` and provides the type named by its return
annotation. It may be

- a sync function (``-> Repo``), called inline in the event loop, so it should be quick;
- an async function (``async def ... -> Repo``);
- a generator (``-> Iterator[Repo]`` or ``-> Generator[Repo, None, None]``): the value it yields is
  the dependency and the code after ``yield`` is its teardown, also run inline;
- an async generator (``-> AsyncIterator[Repo]`` or ``-> AsyncGenerator[Repo, None]``), likewise.

A provider's own parameters are injected like a handler's: by annotation, either `EventBus` or
another provided type (a parameter with a default falls back to it when nothing provides its
type). Lookup is by exact type: a provider of ``SqlRepo`` does not satisfy a ``Repo`` parameter.

Dependencies live for one actor incarnation: `open_dependencies` builds them when the actor starts
and registers their teardowns on an exit stack, which the actor closes when it stops or crashes.
Teardowns run in reverse order of creation, and exceptions are not thrown into the generators: the
code after ``yield`` simply runs (use ``try/finally`` only if the provider itself may fail there).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any, Literal, cast, get_args, get_origin

import attrs

from bus._errors import RegistrationError
from bus._events import MessageContext
from bus._handlers import (
    HandlerSpec,
    ParamSpec,
    RegisteredHandler,
    callable_names,
    code_target,
    describe,
    injected_param,
    is_bus_annotation,
    reject_variadic,
    resolve_hints,
    signature_of,
    unwrap_annotated,
)

ProviderKind = Literal["function", "coroutine", "generator", "async_generator"]
"""How a provider produces its value: return it, await it, or yield it (sync or async)."""

_SYNC_ITERATORS: tuple[object, ...] = (Iterator, Iterable, Generator)
_ASYNC_ITERATORS: tuple[object, ...] = (AsyncIterator, AsyncIterable, AsyncGenerator)


@attrs.frozen(slots=True, eq=False)
class ProviderSpec:
    """A dependency provider: the type it provides, how it produces it, what it needs itself.

    ``params`` are all of the provider's parameters, each of kind ``"bus"`` or ``"dependency"``.
    """

    name: str
    qualname: str
    func: Callable[..., object]
    provides: type
    kind: ProviderKind
    params: tuple[ParamSpec, ...]

    @property
    def label(self) -> str:
        """``provider 'qualname'``, the prefix of every error about this provider."""
        return f"provider {self.qualname!r}"


def parse_provider(func: Callable[..., object]) -> ProviderSpec:
    """Check a provider's signature and return annotation; raise `RegistrationError` if unusable."""
    if isinstance(func, type) or not callable(func):
        msg = (
            f"cannot register {func!r} as a provider: register a function (sync or async, "
            "or a generator) whose return annotation is the type it provides"
        )
        raise RegistrationError(msg)
    qualname, name = callable_names(func)
    label = f"provider {qualname!r}"
    code = code_target(func)
    kind: ProviderKind
    if inspect.isasyncgenfunction(code):
        kind = "async_generator"
    elif inspect.isgeneratorfunction(code):
        kind = "generator"
    elif inspect.iscoroutinefunction(code):
        kind = "coroutine"
    else:
        kind = "function"
    signature = signature_of(func, label)
    hints = resolve_hints(func, label)
    if "return" not in hints:
        msg = (
            f"{label} has no return annotation: annotate it with the type it provides "
            "(-> Repo; -> Iterator[Repo] or -> AsyncIterator[Repo] for a generator)"
        )
        raise RegistrationError(msg)
    provides = _provided_type(hints["return"], kind, label)

    parameters = list(signature.parameters.values())
    reject_variadic(parameters, label)
    params: list[ParamSpec] = []
    for parameter in parameters:
        param = injected_param(parameter, hints, label, owner="provider")
        if param.kind == "context":
            msg = (
                f"{label} parameter {param.name!r}: a provider cannot take the MessageContext, "
                "because its value lives for a whole actor incarnation, not one message"
            )
            raise RegistrationError(msg)
        if param.kind == "dependency" and param.annotation is provides:
            msg = f"{label} parameter {param.name!r}: a provider cannot depend on its own type"
            raise RegistrationError(msg)
        params.append(param)
    return ProviderSpec(
        name=name, qualname=qualname, func=func, provides=provides, kind=kind, params=tuple(params)
    )


def _provided_type(annotation: Any, kind: ProviderKind, label: str) -> type:
    annotation = unwrap_annotated(annotation)
    if kind in ("generator", "async_generator"):
        if kind == "generator":
            allowed, expected = _SYNC_ITERATORS, "Iterator[T] or Generator[T, None, None]"
        else:
            allowed, expected = _ASYNC_ITERATORS, "AsyncIterator[T] or AsyncGenerator[T, None]"
        if get_origin(annotation) not in allowed or not get_args(annotation):
            what = "a generator" if kind == "generator" else "an async generator"
            msg = (
                f"{label} is {what}, so its return annotation must be {expected} "
                f"(T being the type it provides), got {describe(annotation)}"
            )
            raise RegistrationError(msg)
        annotation = unwrap_annotated(get_args(annotation)[0])
    # typing.Any is a class since 3.11, yet it names no type a provider could produce.
    if not isinstance(annotation, type) or annotation in (type(None), Any):
        msg = (
            f"{label} return annotation {describe(annotation)} is not a class: annotate it with "
            "the class of the value it provides"
        )
        raise RegistrationError(msg)
    if annotation is MessageContext or is_bus_annotation(annotation):
        msg = f"{label} cannot provide {annotation.__name__}: the bus injects it itself"
        raise RegistrationError(msg)
    return annotation


def check_resolvable(
    handlers: Iterable[HandlerSpec | RegisteredHandler], providers: Mapping[type, ProviderSpec]
) -> None:
    """Raise `RegistrationError` for the first dependency that cannot be built.

    Every dependency parameter of every handler, then of every provider, must have a provider
    (directly, or through the providers it needs in turn) or a default. The error names the handler
    (or provider) and the parameter, and for a cycle the providers on it.
    """
    resolvable: set[type] = set()
    for handler in handlers:
        spec = handler.spec if isinstance(handler, RegisteredHandler) else handler
        for param in spec.params:
            if param.kind == "dependency":
                where = f"{spec.label} parameter {param.name!r}"
                _check_param(param, providers, resolvable, chain=(), origin=where, where=where)
    for provider in providers.values():
        if provider.provides in resolvable:
            continue
        for param in provider.params:
            if param.kind == "dependency":
                where = f"{provider.label} parameter {param.name!r}"
                _check_param(
                    param, providers, resolvable, chain=(provider,), origin=where, where=where
                )
        resolvable.add(provider.provides)


def _check_param(
    param: ParamSpec,
    providers: Mapping[type, ProviderSpec],
    resolvable: set[type],
    *,
    chain: tuple[ProviderSpec, ...],
    origin: str,
    where: str,
) -> None:
    provider = providers.get(param.annotation)
    if provider is None:
        if param.has_default:
            return
        msg = (
            f"{where}: no provider for {describe(param.annotation)}; register one with "
            "@registry.factory, or give the parameter a default"
        )
        raise RegistrationError(msg)
    _check_provider(provider, providers, resolvable, chain=chain, origin=origin, where=where)


def _check_provider(
    provider: ProviderSpec,
    providers: Mapping[type, ProviderSpec],
    resolvable: set[type],
    *,
    chain: tuple[ProviderSpec, ...],
    origin: str,
    where: str,
) -> None:
    if provider.provides in resolvable:
        return
    if provider in chain:
        raise RegistrationError(f"{origin}: {_cycle(chain[chain.index(provider) :], provider)}")
    chain = (*chain, provider)
    for param in provider.params:
        if param.kind == "dependency":
            inner = f"{where}: {provider.label} parameter {param.name!r}"
            _check_param(param, providers, resolvable, chain=chain, origin=origin, where=inner)
    resolvable.add(provider.provides)


def _cycle(chain: tuple[ProviderSpec, ...], again: ProviderSpec) -> str:
    steps = " -> ".join(f"{p.qualname} ({describe(p.provides)})" for p in (*chain, again))
    return f"dependency cycle {steps}"


async def open_dependencies(
    spec: HandlerSpec,
    providers: Mapping[type, ProviderSpec],
    stack: contextlib.AsyncExitStack,
    bus: object,
) -> dict[str, object]:
    """Build ``spec``'s dependencies for one actor incarnation: ``{parameter name: value}``.

    Each provider runs at most once per call, its value shared by every parameter (of the handler
    or of other providers) that needs its type. Generator teardowns are pushed on ``stack``; the
    caller closes it when the incarnation ends, so a restart gets fresh values. Providers that
    take `EventBus` receive ``bus``. A dependency nobody provides is left out when it has a default
    (the handler's default applies) and raises `RegistrationError` otherwise, as does a cycle
    (`check_resolvable` reports both before anything starts).

    If a provider raises, the values built before it are already on ``stack``, so closing the
    stack tears them down.
    """
    values: dict[str, object] = {}
    cache: dict[type, object] = {}
    for param in spec.params:
        if param.kind != "dependency":
            continue
        where = f"{spec.label} parameter {param.name!r}"
        provider = providers.get(param.annotation)
        if provider is None:
            if param.has_default:
                continue
            msg = f"{where}: no provider for {describe(param.annotation)}"
            raise RegistrationError(msg)
        values[param.name] = await _provide(
            provider, providers, stack, bus=bus, cache=cache, chain=(), where=where
        )
    return values


async def _provide(
    provider: ProviderSpec,
    providers: Mapping[type, ProviderSpec],
    stack: contextlib.AsyncExitStack,
    *,
    bus: object,
    cache: dict[type, object],
    chain: tuple[ProviderSpec, ...],
    where: str,
) -> object:
    if provider.provides in cache:
        return cache[provider.provides]
    if provider in chain:
        raise RegistrationError(f"{where}: {_cycle(chain[chain.index(provider) :], provider)}")
    chain = (*chain, provider)
    kwargs: dict[str, object] = {}
    for param in provider.params:
        if param.kind == "bus":
            kwargs[param.name] = bus
            continue
        inner = providers.get(param.annotation)
        if inner is None:
            if param.has_default:
                continue
            msg = (
                f"{where}: {provider.label} parameter {param.name!r}: "
                f"no provider for {describe(param.annotation)}"
            )
            raise RegistrationError(msg)
        kwargs[param.name] = await _provide(
            inner, providers, stack, bus=bus, cache=cache, chain=chain, where=where
        )
    value = await _call(provider, kwargs, stack)
    cache[provider.provides] = value
    return value


async def _call(
    provider: ProviderSpec, kwargs: dict[str, object], stack: contextlib.AsyncExitStack
) -> object:
    if provider.kind == "function":
        return provider.func(**kwargs)
    if provider.kind == "coroutine":
        return await cast("Callable[..., Any]", provider.func)(**kwargs)
    if provider.kind == "generator":
        generator = cast("Generator[object, None, None]", provider.func(**kwargs))
        try:
            value = next(generator)
        except StopIteration:
            msg = f"{provider.label} returned without yielding a value"
            raise RuntimeError(msg) from None
        stack.callback(_finish, generator, provider)
        return value
    agen = cast("AsyncGenerator[object, None]", provider.func(**kwargs))
    try:
        value = await anext(agen)
    except StopAsyncIteration:
        msg = f"{provider.label} returned without yielding a value"
        raise RuntimeError(msg) from None
    stack.push_async_callback(_finish_async, agen, provider)
    return value


def _finish(generator: Generator[object, None, None], provider: ProviderSpec) -> None:
    # Run the code after `yield`; exceptions are deliberately not thrown into the generator, so a
    # teardown can never swallow the error that ended the incarnation.
    try:
        next(generator)
    except StopIteration:
        return
    generator.close()
    msg = f"{provider.label} yielded more than once: a provider yields exactly one value"
    raise RuntimeError(msg)


async def _finish_async(agen: AsyncGenerator[object, None], provider: ProviderSpec) -> None:
    try:
        await anext(agen)
    except StopAsyncIteration:
        return
    await agen.aclose()
    msg = f"{provider.label} yielded more than once: a provider yields exactly one value"
    raise RuntimeError(msg)

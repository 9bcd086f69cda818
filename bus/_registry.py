"""`MessageRegistry`: the handlers and dependency providers a `BusTerminal` is built from."""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar, Unpack, overload

import msgspec

from bus._dependencies import ProviderSpec, parse_provider
from bus._errors import RegistrationError
from bus._events import Event
from bus._handlers import RegisteredHandler, parse_handler
from bus._policy import HandlerPolicy, PolicyOptions, policy_fields

F = TypeVar("F", bound=Callable[..., object])
P = TypeVar("P", bound=Callable[..., object])
E = TypeVar("E", bound=msgspec.Struct)


class MessageRegistry(Generic[E]):
    """Collects event handlers, each with its `HandlerPolicy`, and dependency providers.

    Everything that can be checked when a handler or provider is registered is checked then, and
    a problem raises `RegistrationError` naming the handler and the parameter. Only whether every
    dependency has a provider waits until the terminal starts (`check_resolvable`), because
    providers may be registered later or come from another registry.

    A running `BusTerminal` built from a registry has already read its handlers and providers, so
    while one uses it, `register` and `factory` raise `RegistrationError` rather than register
    something that would silently never run.

    It is generic in its event base, as Lihil's is: ``MessageRegistry[Event]`` in annotations;
    ``MessageRegistry(event_base=TodoEvent)`` is a ``MessageRegistry[TodoEvent]``.
    """

    @overload
    def __init__(self: MessageRegistry[Event]) -> None: ...

    @overload
    def __init__(self, event_base: type[E]) -> None: ...

    def __init__(self, event_base: type[msgspec.Struct] = Event) -> None:
        """A registry whose handlers subscribe to subclasses of ``event_base``: `Event` or a
        subclass of it, or (as in Lihil) any `msgspec.Struct` subclass, whose events the bus
        delivers in this process only (see `Event` for what storing and transports need)."""
        if not (isinstance(event_base, type) and issubclass(event_base, msgspec.Struct)):
            msg = (
                f"event_base must be a class derived from bus.Event (or from msgspec.Struct), "
                f"got {event_base!r}"
            )
            raise RegistrationError(msg)
        self._event_base = event_base
        self._handlers: dict[str, RegisteredHandler] = {}
        self._providers: dict[type, ProviderSpec] = {}
        self._in_use = 0

    @property
    def event_base(self) -> type[E]:
        """The class every subscription must derive from."""
        return self._event_base  # type: ignore[return-value]

    @property
    def handlers(self) -> tuple[RegisteredHandler, ...]:
        """The registered handlers with their policies, in registration order."""
        return tuple(self._handlers.values())

    @property
    def providers(self) -> Mapping[type, ProviderSpec]:
        """A read-only live view of the providers, keyed by the type each provides."""
        return types.MappingProxyType(self._providers)

    @overload
    def register(
        self,
        handler: F,
        /,
        *handlers: Callable[..., object],
        **policy: Unpack[PolicyOptions],
    ) -> F: ...

    @overload
    def register(self, **policy: Unpack[PolicyOptions]) -> Callable[[F], F]: ...

    def register(self, *handlers: Callable[..., object], **policy: Any) -> Callable[..., object]:
        """Register handlers, all with the `HandlerPolicy` built from ``policy``.

        ``register(h1, h2, retries=5)`` registers both and returns ``h1``, so ``@registry.register``
        works as a decorator. ``register(retries=5)`` (no handler) returns a decorator. Either all
        the handlers are registered or, on an error, none is.
        """
        self._check_not_in_use("register handlers")
        handler_policy = _make_policy(policy)
        if not handlers:

            def decorator(handler: F) -> F:
                self._register_all((handler,), handler_policy)
                return handler

            return decorator
        self._register_all(handlers, handler_policy)
        return handlers[0]

    # `@registry` and `registry(h1, h2)` are `register`.
    __call__ = register

    def factory(self, provider: P) -> P:
        """Register a dependency provider (also a decorator) and return it unchanged.

        The provided type is the provider's return annotation, and a type has only one provider.
        A provider may be

        - a sync function (``def settings() -> Settings``), called in the event loop, so keep it
          quick;
        - an async function (``async def pool() -> Pool``);
        - a generator (``-> Iterator[Repo]``) or an async generator (``-> AsyncIterator[Repo]``):
          the value it yields is the dependency, and its code after ``yield`` is the teardown.

        Its own parameters are injected by annotation like a handler's: `EventBus`, or another
        provided type (a parameter with a default keeps it when nothing provides its type); it
        cannot take the `MessageContext`. Lookup is by exact type: a provider of ``SqlRepo`` does
        not satisfy a ``Repo`` parameter. A value lives for one incarnation of the handler's actor:
        built when the actor starts, torn down (in reverse order) when it stops or crashes, so a
        restarted handler gets fresh ones.
        """
        self._check_not_in_use("register a provider")
        spec = parse_provider(provider)
        existing = self._providers.get(spec.provides)
        if existing is not None:
            if existing.func == provider:
                msg = f"{spec.label} is already registered"
            else:
                msg = (
                    f"{spec.label} provides {spec.provides.__name__}, which {existing.label} "
                    "already provides: a type has one provider"
                )
            raise RegistrationError(msg)
        self._providers[spec.provides] = spec
        return provider

    def _register_all(
        self, handlers: Iterable[Callable[..., object]], policy: HandlerPolicy
    ) -> None:
        # again here: a decorator from `register(retries=5)` may be applied later
        self._check_not_in_use("register handlers")
        batch: dict[str, RegisteredHandler] = {}
        for handler in handlers:
            registered = RegisteredHandler(parse_handler(handler, self._event_base), policy)
            name = registered.name
            existing = self._handlers.get(name) or batch.get(name)
            if existing is not None:
                raise RegistrationError(_duplicate_message(registered, existing))
            batch[name] = registered
        self._handlers.update(batch)

    def _acquire(self) -> None:
        """Mark the registry as used by a running `BusTerminal` (called when the terminal starts).

        Calls nest (several terminals may share a registry): each `_acquire` is matched by one
        `_release`. While any is outstanding, registering raises `RegistrationError`.
        """
        self._in_use += 1

    def _release(self) -> None:
        """Undo one `_acquire` (called when the terminal stops); extra calls do nothing."""
        if self._in_use > 0:
            self._in_use -= 1

    def _check_not_in_use(self, action: str) -> None:
        if self._in_use > 0:
            msg = (
                f"cannot {action}: {self!r} is used by a running BusTerminal: register handlers "
                "and factories before entering it"
            )
            raise RegistrationError(msg)

    def __repr__(self) -> str:
        return (
            f"<MessageRegistry event_base={self._event_base.__name__} "
            f"handlers={len(self._handlers)} providers={len(self._providers)}>"
        )


def merge_registries(
    *registries: MessageRegistry[Any],
) -> tuple[tuple[RegisteredHandler, ...], dict[type, ProviderSpec]]:
    """The handlers (in registry, then registration order) and providers of several registries.

    Raises `RegistrationError` when two registries hold a handler of the same name or providers of
    the same type, or when one registry is given twice.
    """
    handlers: dict[str, RegisteredHandler] = {}
    providers: dict[type, ProviderSpec] = {}
    seen: list[MessageRegistry[Any]] = []
    for registry in registries:
        if not isinstance(registry, MessageRegistry):
            msg = f"expected a MessageRegistry, got {registry!r}"
            raise RegistrationError(msg)
        if any(registry is other for other in seen):
            msg = f"{registry!r} is given twice"
            raise RegistrationError(msg)
        seen.append(registry)
        for registered in registry.handlers:
            existing = handlers.get(registered.name)
            if existing is not None:
                msg = f"{_duplicate_message(registered, existing)} (in another registry)"
                raise RegistrationError(msg)
            handlers[registered.name] = registered
        for provided, spec in registry.providers.items():
            other = providers.get(provided)
            if other is not None:
                msg = (
                    f"{spec.label} and {other.label} (in another registry) both provide "
                    f"{provided.__name__}: a type has one provider"
                )
                raise RegistrationError(msg)
            providers[provided] = spec
    return tuple(handlers.values()), providers


def _duplicate_message(new: RegisteredHandler, existing: RegisteredHandler) -> str:
    if new.spec.func == existing.spec.func:
        return f"{new.spec.label} is already registered"
    return (
        f"{new.spec.label}: another handler is already registered under the name {new.name!r}; "
        "handler names (module.qualname) must be unique"
    )


def _make_policy(options: Mapping[str, Any]) -> HandlerPolicy:
    fields = policy_fields()
    for key in options:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            suggestion = f" (did you mean {close[0]!r}?)" if close else ""
            msg = (
                f"unknown handler policy option {key!r}{suggestion}; "
                f"the options are {', '.join(fields)}"
            )
            raise RegistrationError(msg)
    try:
        return HandlerPolicy(**options)
    except (TypeError, ValueError) as exc:
        msg = f"invalid handler policy: {exc}"
        raise RegistrationError(msg) from exc

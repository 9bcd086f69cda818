"""Turn a handler callable into a `HandlerSpec`: what it subscribes to, what it needs injected."""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Union, cast, get_args, get_origin

import attrs
import msgspec

from bus._errors import RegistrationError
from bus._events import Event, MessageContext
from bus._policy import HandlerPolicy

ParamKind = Literal["context", "bus", "dependency"]


class BusHandle:
    """Base of ``EventBus``: what marks a parameter as the bus, so that parsing a handler needs no
    import of the bus module (which builds on this one: the import graph stays one-way)."""

    __slots__ = ()


def is_bus_annotation(annotation: Any) -> bool:
    """Whether ``annotation`` (``Annotated`` unwrapped) is ``EventBus`` or ``EventBus[...]``."""
    origin = get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, BusHandle)
"""How a parameter after the event gets its value: the message's context, the bus, or a provider."""

NO_DEFAULT: Any = inspect.Parameter.empty
"""Marks a `ParamSpec` whose parameter has no default value."""


@attrs.frozen(slots=True)
class ParamSpec:
    """One injected parameter of a handler or provider.

    ``annotation`` is the resolved annotation with ``Annotated[...]`` unwrapped (for the context
    parameter it is always `MessageContext`). ``default`` is the parameter's default value, or
    `NO_DEFAULT`: a dependency with no provider falls back to its default.
    """

    name: str
    kind: ParamKind
    annotation: Any
    default: Any = NO_DEFAULT

    @property
    def has_default(self) -> bool:
        """Whether the parameter has a default value to fall back on."""
        return self.default is not NO_DEFAULT


@attrs.frozen(slots=True, eq=False)
class HandlerSpec:
    """A handler as the bus sees it.

    ``name`` is ``module.qualname`` (unique enough to name the handler's actor); ``qualname`` is
    the short form used in error messages. ``params`` lists every parameter after the event that
    receives a value (an unannotated parameter with a default is never injected, so it is left
    out); when the handler takes a context, ``params[0]`` is it (kind ``"context"``).
    ``is_async`` is false for a plain ``def`` handler, which the bus runs in a worker thread.
    """

    name: str
    qualname: str
    func: Callable[..., object]
    is_async: bool
    subscriptions: tuple[type[Event], ...]
    params: tuple[ParamSpec, ...]
    #: the second parameter is positional and receives the context (then it is ``params[0]``)
    context_positional: bool = False

    @property
    def label(self) -> str:
        """``handler 'qualname'``, the prefix of every error about this handler."""
        return f"handler {self.qualname!r}"

    @property
    def takes_context(self) -> bool:
        """Whether the handler has a second, positional (context) parameter."""
        return self.context_positional

    def accepts(self, event_type: type) -> bool:
        """Whether an event of ``event_type`` is delivered to this handler (subclasses included)."""
        return issubclass(event_type, self.subscriptions)

    def arguments(
        self,
        event: Event,
        context: MessageContext,
        bus: object,
        dependencies: Mapping[str, object],
    ) -> tuple[tuple[object, ...], dict[str, object]]:
        """The ``(args, kwargs)`` to call ``func`` with for one message.

        The event and the context go positionally, everything else by name. A dependency missing
        from ``dependencies`` is left out, so its default applies.
        """
        if not self.params:
            return (event,), {}
        kwargs: dict[str, object] = {}
        for param in self.params[1:] if self.context_positional else self.params:
            if param.kind == "context":
                kwargs[param.name] = context
            elif param.kind == "bus":
                kwargs[param.name] = bus
            elif param.name in dependencies:
                kwargs[param.name] = dependencies[param.name]
        return ((event, context) if self.context_positional else (event,)), kwargs


@attrs.frozen(slots=True, eq=False)
class RegisteredHandler:
    """A handler and the policy it was registered with."""

    spec: HandlerSpec
    policy: HandlerPolicy

    @property
    def name(self) -> str:
        """The handler's unique name (``spec.name``)."""
        return self.spec.name


def parse_handler(
    func: Callable[..., object], event_base: type[msgspec.Struct] = Event
) -> HandlerSpec:
    """Check ``func``'s signature and describe it; raise `RegistrationError` naming what is wrong.

    Accepts functions (``async def`` or ``def``), bound methods, ``functools.partial`` objects and
    instances with a ``__call__`` method.
    """
    if isinstance(func, type) or not callable(func):
        msg = (
            f"cannot register {func!r} as a handler: register a function, a bound method or a "
            "callable object (for a class of handlers, register each method: obj.on_created)"
        )
        raise RegistrationError(msg)
    qualname, name = callable_names(func)
    label = f"handler {qualname!r}"
    code = code_target(func)
    if inspect.isgeneratorfunction(code) or inspect.isasyncgenfunction(code):
        msg = f"{label} is a generator function: a handler is an 'async def' or 'def' function"
        raise RegistrationError(msg)
    signature = signature_of(func, label)
    hints = resolve_hints(func, label)
    parameters = list(signature.parameters.values())
    if not parameters:
        msg = f"{label} takes no parameters: its first parameter must be the event it handles"
        raise RegistrationError(msg)
    reject_variadic(parameters, label)

    event_param = parameters[0]
    if event_param.kind is inspect.Parameter.KEYWORD_ONLY:
        msg = f"{label} parameter {event_param.name!r}: the event parameter must be positional"
        raise RegistrationError(msg)
    if event_param.name not in hints:
        msg = (
            f"{label} parameter {event_param.name!r} has no annotation: annotate it with the "
            f"{event_base.__name__} subclass (or union of them) the handler subscribes to"
        )
        raise RegistrationError(msg)
    subscriptions = _subscriptions(hints[event_param.name], event_base, label, event_param.name)

    params: list[ParamSpec] = []
    rest = parameters[1:]
    context_positional = bool(rest) and rest[0].kind is not inspect.Parameter.KEYWORD_ONLY
    if context_positional:
        # the second positional parameter always receives the MessageContext
        context_param = rest.pop(0)
        _check_context_annotation(
            context_param, hints, label, name, is_async=is_async_callable(func)
        )
        params.append(ParamSpec(context_param.name, "context", MessageContext))
    for parameter in rest:
        if parameter.name not in hints and parameter.default is not inspect.Parameter.empty:
            # `_i=i` (the closure-in-a-loop idiom): never injected, so its default always applies
            continue
        params.append(injected_param(parameter, hints, label, owner="handler"))
    return HandlerSpec(
        name=name,
        qualname=qualname,
        func=func,
        is_async=is_async_callable(func),
        subscriptions=subscriptions,
        params=tuple(params),
        context_positional=context_positional,
    )


def injected_param(
    parameter: inspect.Parameter, hints: Mapping[str, Any], label: str, *, owner: str
) -> ParamSpec:
    """Classify a parameter that is injected by its annotation: bus, context or dependency."""
    if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
        msg = (
            f"{label} parameter {parameter.name!r} is positional-only, but injected parameters "
            "are passed by name: remove the '/' or move it before this parameter"
        )
        raise RegistrationError(msg)
    if parameter.name not in hints:
        never_injected = (
            " (or give it a default: an unannotated handler parameter with a default is never "
            "injected)"
            if owner == "handler"
            else ""
        )
        msg = (
            f"{label} parameter {parameter.name!r} has no annotation: {owner} parameters are "
            "injected by type, so annotate it with EventBus, MessageContext or a type provided "
            f"by @registry.factory{never_injected}"
        )
        raise RegistrationError(msg)
    annotation = unwrap_annotated(hints[parameter.name])
    kind: ParamKind
    if is_bus_annotation(annotation):  # EventBus[E] too
        annotation = get_origin(annotation) or annotation
        kind = "bus"
    elif annotation is MessageContext:
        kind = "context"
    else:
        kind = "dependency"
    return ParamSpec(parameter.name, kind, annotation, parameter.default)


#: what the second positional parameter may be annotated with (``Annotated[...]`` unwrapped)
_CONTEXT_ANNOTATIONS: tuple[object, ...] = (Any, object, MessageContext)


def _check_context_annotation(
    parameter: inspect.Parameter,
    hints: Mapping[str, Any],
    label: str,
    name: str,
    *,
    is_async: bool = True,
) -> None:
    """Raise unless the second positional parameter is unannotated, `Any`, `object` or
    `MessageContext`: it receives the context, so any other annotation is a mistake (typically a
    dependency or the bus put in the context's place)."""
    if parameter.name not in hints:
        return
    annotation = unwrap_annotated(hints[parameter.name])
    if any(annotation is allowed for allowed in _CONTEXT_ANNOTATIONS):
        return
    short = name.rsplit(".", 1)[-1]
    keyword = "async def" if is_async else "def"
    if is_bus_annotation(annotation):
        what, example = "the bus", f"`{keyword} {short}(event, ctx, bus: EventBus)`"
    else:
        what = "dependencies"
        third = parameter.name if parameter.name != "ctx" else "value"
        example = f"`{keyword} {short}(event, ctx, {third}: {describe(annotation)})`"
    msg = (
        f"{label} parameter {parameter.name!r} is annotated {describe(annotation)}, but the "
        "second parameter receives the MessageContext (annotate it MessageContext, Any or "
        f"nothing); take {what} as a third or keyword-only parameter, e.g. {example}"
    )
    raise RegistrationError(msg)


def _notice_events() -> tuple[type[Event], ...]:
    from bus._events import DeadLetter, HandlerRestarted, HandlerStopped, SupervisorGaveUp

    return (DeadLetter, HandlerRestarted, HandlerStopped, SupervisorGaveUp)


def _subscriptions(
    annotation: Any, event_base: type[msgspec.Struct], label: str, param_name: str
) -> tuple[type[Event], ...]:
    annotation = unwrap_annotated(annotation)
    members = get_args(annotation) if is_union(annotation) else (annotation,)
    subscriptions: list[type[Event]] = []
    # the bus's own events are subscribable under any event_base
    notices = _notice_events()
    for raw_member in members:
        # Annotated[A, ...] | B still subscribes to A and B.
        member = unwrap_annotated(raw_member)
        if not (isinstance(member, type) and issubclass(member, (event_base, *notices))):
            where = f"{describe(annotation)}: " if len(members) > 1 else ""
            msg = (
                f"{label} parameter {param_name!r}: annotation {where}{describe(member)} is not "
                f"a subclass of {event_base.__name__}"
            )
            raise RegistrationError(msg)
        if member not in subscriptions:
            subscriptions.append(cast("type[Event]", member))
    return tuple(subscriptions)


def reject_variadic(parameters: list[inspect.Parameter], label: str) -> None:
    """Raise for ``*args`` and ``**kwargs``: injection is by name, so they can receive nothing."""
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            star = "*"
        elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
            star = "**"
        else:
            continue
        msg = (
            f"{label} parameter {star}{parameter.name} is not supported: every parameter is "
            "injected by position (event, context) or by its annotation"
        )
        raise RegistrationError(msg)


def unwrap_annotated(annotation: Any) -> Any:
    """``Annotated[T, ...]`` becomes ``T``; anything else is returned unchanged."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def is_union(annotation: object) -> bool:
    """Whether ``annotation`` is ``A | B`` or ``Union[A, B]``."""
    return get_origin(annotation) in (Union, types.UnionType)


def describe(annotation: object) -> str:
    """A short readable name for an annotation in error messages."""
    if annotation is None or annotation is type(None):
        return "None"
    args = get_args(annotation)
    if is_union(annotation):
        return " | ".join(describe(arg) for arg in args)
    origin = get_origin(annotation)
    if origin is Annotated:
        return f"Annotated[{describe(args[0])}, ...]"
    if origin is not None and args:
        return f"{describe(origin)}[{', '.join(describe(arg) for arg in args)}]"
    if isinstance(annotation, type) and not isinstance(annotation, types.GenericAlias):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


def callable_names(func: Callable[..., object]) -> tuple[str, str]:
    """``(qualname, module.qualname)`` of a function, method, partial or callable object."""
    target: object = func
    while isinstance(target, functools.partial):
        target = target.func
    qualname = getattr(target, "__qualname__", None)
    if not isinstance(qualname, str):
        # A callable instance: name it after its class.
        qualname = type(target).__qualname__
    module = getattr(target, "__module__", None)
    if not isinstance(module, str):
        module = type(target).__module__
    return qualname, f"{module}.{qualname}"


def code_target(func: Callable[..., object]) -> Callable[..., object]:
    """The function whose code a call to ``func`` runs (partials and ``__call__`` unwrapped)."""
    target: Callable[..., object] = func
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.isfunction(target) or inspect.ismethod(target) or inspect.isbuiltin(target):
        return target
    # A callable instance: the code is its class's __call__ (callable() cannot tell us that).
    call = getattr(type(target), "__call__", None)  # noqa: B004
    return call if callable(call) else target


def is_async_callable(func: Callable[..., object]) -> bool:
    """Whether calling ``func`` returns a coroutine: an ``async def``, also behind partials, as a
    callable object's ``__call__``, or wrapped by ``functools.wraps`` decorators (``__wrapped__``
    is followed), so that a plain ``def`` wrapper around an ``async def`` runs in the event loop."""
    target = code_target(func)
    if inspect.iscoroutinefunction(target):
        return True
    try:
        unwrapped = inspect.unwrap(target)
    except ValueError:  # a __wrapped__ cycle
        return False
    return unwrapped is not target and inspect.iscoroutinefunction(code_target(unwrapped))


def signature_of(func: Callable[..., object], label: str) -> inspect.Signature:
    """``inspect.signature(func)``, with a `RegistrationError` when there is none."""
    try:
        return inspect.signature(func)
    except (TypeError, ValueError) as exc:
        msg = f"{label}: cannot read its signature ({exc})"
        raise RegistrationError(msg) from exc


def resolve_hints(func: Callable[..., object], label: str) -> dict[str, Any]:
    """Evaluate ``func``'s annotations (string ones too), keeping ``Annotated`` extras.

    On failure the error names the parameter whose annotation could not be resolved.
    """
    target = _hint_target(func)
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:
        raise RegistrationError(_unresolved_message(target, label, exc)) from exc


def _hint_target(func: Callable[..., object]) -> Callable[..., object]:
    target: Callable[..., object] = func
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.isfunction(target) or inspect.ismethod(target):
        return target
    # A callable instance: its bound __call__ carries the annotations.
    call = getattr(target, "__call__", None)  # noqa: B004
    return call if call is not None and not inspect.isbuiltin(target) else target


def _unresolved_message(target: object, label: str, exc: Exception) -> str:
    hint = (
        "string annotations (from __future__ import annotations) are evaluated in the "
        "module's globals, so a type defined inside a function cannot be used there: define it "
        "at module level"
    )
    annotations = getattr(target, "__annotations__", None)
    globalns = getattr(inspect.unwrap(target), "__globals__", {})  # type: ignore[arg-type]
    if isinstance(annotations, dict):
        for name, annotation in annotations.items():
            shim = types.SimpleNamespace(__annotations__={name: annotation})
            try:
                typing.get_type_hints(shim, globalns=globalns)
            except Exception:  # any failure here is the one to report
                where = "return annotation" if name == "return" else f"parameter {name!r}"
                return f"{label} {where}: cannot resolve annotation {annotation!r} ({exc}); {hint}"
    return f"{label}: cannot resolve its annotations ({exc}); {hint}"

"""Lihil integration: endpoints receive the bus of a running ``BusTerminal``.

Needs the ``lihil`` extra (lihil 0.2.41); ``import bus`` never imports this module.

```python
terminal = BusTerminal(registry)
bus_plugin = BusPlugin(terminal)

bus_route = Route("/bus", plugins=[bus_plugin])      # every endpoint of the route
# or, per endpoint: @route.post(plugins=[bus_plugin.decorate])

@bus_route.post
async def create_todo(name: str, content: str, bus: PEventBus) -> Annotated[Empty, status.OK]:
    await bus.publish(TodoCreated(name, content))
```

The terminal runs in the app's lifespan (see docs/lihil.md). The bus is looked up when a request
arrives, so the plugin may be built before the terminal starts.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, Protocol, TypeVar, final

from lihil import Param
from lihil.signature.params import PluginParam

from bus._bus import EventBus

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from lihil.plugins import IEndpointInfo
    from lihil.signature import EndpointSignature

__all__ = ("BusPlugin", "PEventBus")

_P = ParamSpec("_P")
_R = TypeVar("_R")

PEventBus = Annotated[EventBus, Param("plugin")]
PEventBus.__doc__ = """An endpoint parameter that receives the bus: ``bus: PEventBus``.

``Param("plugin")`` tells Lihil the value comes from a plugin rather than from the request, which is
how Lihil's own ``PEventBus`` is marked. In a bus handler it resolves as ``EventBus``.
"""


class _HasBus(Protocol):
    """What the plugin needs of a terminal: its bus, once started (``BusTerminal`` has it)."""

    @property
    def bus(self) -> EventBus: ...


@final
class BusPlugin:
    """A Lihil plugin that passes ``terminal.bus`` to every endpoint parameter typed as the bus.

    The parameter may be annotated ``PEventBus`` or plain ``EventBus``. Use the plugin itself where
    Lihil takes plugins (``Route(path, plugins=[bus_plugin])`` or ``@route.post(plugins=[...])``);
    ``bus_plugin.decorate`` is the same thing as a function. Endpoints without such a parameter are
    left as they are. The bus is read from the terminal on every request, so an endpoint called while
    the terminal is not running fails with the terminal's error (a 500), never with a stale bus.
    """

    __slots__ = ("_terminal",)

    def __init__(self, terminal: _HasBus) -> None:
        self._terminal = terminal

    @property
    def terminal(self) -> _HasBus:
        """The terminal whose bus is injected."""
        return self._terminal

    def __repr__(self) -> str:
        return f"BusPlugin({self._terminal!r})"

    def __call__(self, endpoint_info: IEndpointInfo[_P, _R], /) -> Callable[_P, Awaitable[_R]]:
        """Lihil calls each plugin with the endpoint being set up; same as ``decorate``."""
        return self.decorate(endpoint_info)

    def decorate(self, endpoint_info: IEndpointInfo[_P, _R], /) -> Callable[_P, Awaitable[_R]]:
        """Wrap the endpoint so that its bus parameters receive ``terminal.bus`` on every call."""
        func = endpoint_info.func
        names = _claim_bus_params(endpoint_info.sig)
        if not names:
            return func
        terminal = self._terminal

        @functools.wraps(func)
        async def with_bus(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            bus = terminal.bus
            params: dict[str, Any] = kwargs
            for name in names:
                params[name] = bus
            return await func(*args, **kwargs)

        return with_bus


def _is_bus_type(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, EventBus)


def _claim_bus_params(sig: EndpointSignature[Any]) -> tuple[str, ...]:
    """Names of the endpoint's bus parameters, taking plain ``EventBus`` ones from the query.

    Lihil parses an endpoint before plugins run: ``PEventBus`` lands among its plugin parameters, a
    plain ``EventBus`` among its query parameters (and a request would fail with 422). Lihil builds the
    request injector from the signature after the plugins ran, so moving the parameter here makes
    Lihil leave it to this plugin, and keeps it out of the OpenAPI schema.
    """
    for name, query in list(sig.query_params.items()):
        if _is_bus_type(query.type_):
            del sig.query_params[name]
            sig.plugins[name] = PluginParam(
                name=name, type_=query.type_, annotation=query.annotation, default=query.default
            )
    return tuple(name for name, param in sig.plugins.items() if _is_bus_type(param.type_))

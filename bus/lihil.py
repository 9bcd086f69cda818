"""Lihil integration: endpoints receive the bus of a running ``BusTerminal``.

Needs the ``lihil`` extra (lihil 0.2.41); ``import bus`` never imports this module.

```python
terminal = BusTerminal(registry)
bus_plugin = BusPlugin(terminal)                      # or BusPlugin(busterm=terminal), as in Lihil

bus_route = Route("/bus", plugins=[bus_plugin])      # every endpoint of the route
# or, per endpoint: @route.post(plugins=[bus_plugin.decorate])

@bus_route.post
async def create_todo(name: str, content: str, bus: PEventBus) -> Annotated[Empty, status.OK]:
    await bus.publish(TodoCreated(name, content))

app = Lihil(bus_route, lifespan=bus_plugin.lifespan)  # the terminal runs while the app serves
```

The bus is looked up when a request arrives, so the plugin may be built before the terminal starts.
``BusTerminal``, ``EventBus`` and ``MessageRegistry`` are re-exported here, so code written for
``lihil.plugins.bus`` runs with only its imports changed.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar, final, get_origin

import anyio
from lihil import Param
from lihil.signature.params import PluginParam

from bus._bus import EventBus
from bus._errors import BusClosedError
from bus._log import logger
from bus._registry import MessageRegistry
from bus._terminal import BusTerminal

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from lihil.plugins import IEndpointInfo
    from lihil.signature import EndpointSignature

__all__ = ("BusPlugin", "BusTerminal", "EventBus", "MessageRegistry", "PEventBus")

#: the line that runs a plugin's terminal for as long as the app serves
LIFESPAN_LINE = "app = Lihil(..., lifespan=bus_plugin.lifespan)"

_P = ParamSpec("_P")
_R = TypeVar("_R")

PEventBus = Annotated[EventBus[Any], Param("plugin")]
PEventBus.__doc__ = """An endpoint parameter that receives the bus: ``bus: PEventBus``.

``Param("plugin")`` tells Lihil the value comes from a plugin rather than from the request, which is
how Lihil's own ``PEventBus`` is marked (``get_origin`` of its type is ``EventBus``). In a bus
handler it resolves as ``EventBus``.
"""


@final
class BusPlugin:
    """A Lihil plugin that passes ``terminal.bus`` to every endpoint parameter typed as the bus.

    The parameter may be annotated ``PEventBus``, plain ``EventBus`` or ``EventBus[...]``. Use the
    plugin itself where Lihil takes plugins (``Route(path, plugins=[bus_plugin])`` or
    ``@route.post(plugins=[...])``); ``bus_plugin.decorate`` is the same thing as a function.
    Endpoints without such a parameter are left as they are.

    Run the terminal with the app: ``app = Lihil(..., lifespan=bus_plugin.lifespan)``. The bus is
    read from the terminal on every request:

    - terminal running: the request gets its bus;
    - terminal run by ``bus_plugin.lifespan`` (or by you) but not running now (before startup,
      after shutdown): the endpoint fails with `BusClosedError` naming that line (a 500);
    - terminal never started and not given to a lifespan (Lihil's own usage,
      ``BusPlugin(BusTerminal(registry))``, e.g. an endpoint called directly in a test): for
      compatibility with Lihil the terminal runs for the duration of the request (shared by the
      requests that overlap it), and a warning naming the lifespan line is logged once. This
      starts and stops the handlers' tree per request: fine for a test, slow for a server.
    """

    __slots__ = ("_bound", "_compat", "_shared", "_terminal", "_warned")

    def __init__(
        self, busterm: BusTerminal[Any] | None = None, *, terminal: BusTerminal[Any] | None = None
    ) -> None:
        given = busterm if busterm is not None else terminal
        if given is None or (busterm is not None and terminal is not None):
            raise TypeError("BusPlugin takes one BusTerminal: BusPlugin(terminal)")
        if not isinstance(given, BusTerminal):
            raise TypeError(f"BusPlugin takes a BusTerminal, got {given!r}")
        self._terminal = given
        self._bound = False
        self._warned = False
        #: the terminal has been run per request (Lihil compatibility), never otherwise
        self._compat = False
        self._shared: _Shared | None = None

    @property
    def terminal(self) -> BusTerminal[Any]:
        """The terminal whose bus is injected."""
        return self._terminal

    @property
    def busterm(self) -> BusTerminal[Any]:
        """The terminal, under the name Lihil's ``BusPlugin`` uses."""
        return self._terminal

    def __repr__(self) -> str:
        return f"BusPlugin({self._terminal!r})"

    async def lifespan(self, app: object) -> AsyncGenerator[None, None]:
        """A Lihil lifespan that runs the terminal while the app serves:
        ``app = Lihil(..., lifespan=bus_plugin.lifespan)``. With a lifespan of your own, write
        ``async with bus_plugin.terminal:`` around its ``yield`` instead."""
        self._bound = True
        async with self._terminal:
            yield

    def __call__(self, endpoint_info: IEndpointInfo[_P, _R], /) -> Callable[_P, Awaitable[_R]]:
        """Lihil calls each plugin with the endpoint being set up; same as ``decorate``."""
        return self.decorate(endpoint_info)

    def decorate(self, endpoint_info: IEndpointInfo[_P, _R], /) -> Callable[_P, Awaitable[_R]]:
        """Wrap the endpoint so that its bus parameters receive ``terminal.bus`` on every call."""
        func = endpoint_info.func
        names = _claim_bus_params(endpoint_info.sig)
        if not names:
            return func
        plugin = self

        @functools.wraps(func)
        async def with_bus(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            terminal = plugin._terminal
            if terminal.running:
                return await _call(func, names, terminal.bus, args, kwargs)
            if plugin._bound or (terminal.has_run and not plugin._compat):
                raise BusClosedError(
                    f"the bus terminal is not running: run it with the app, `{LIFESPAN_LINE}` "
                    "(or `async with terminal:` in your own lifespan), and call endpoints while "
                    "the app serves"
                )
            return await plugin._per_request(func, names, args, kwargs)

        return with_bus

    async def _per_request(
        self, func: Callable[..., Awaitable[_R]], names: tuple[str, ...], args: Any, kwargs: Any
    ) -> _R:
        """Lihil compatibility: run the never-started terminal for this request (and the requests
        that overlap it)."""
        self._compat = True
        if not self._warned:
            self._warned = True
            logger.warning(
                "BusPlugin: the terminal is not running, so it is started for each request; run "
                "it with the app instead: `%s`",
                LIFESPAN_LINE,
            )
        shared = self._shared
        if shared is not None:
            shared.users += 1
            try:
                await shared.ready.wait()
                if shared.error is not None:
                    raise BusClosedError("the bus terminal failed to start") from shared.error
                return await _call(func, names, self._terminal.bus, args, kwargs)
            finally:
                shared.leave()
        self._shared = shared = _Shared()
        shared.users += 1
        try:
            try:
                await self._terminal.__aenter__()
            except BaseException as exc:
                shared.error = exc
                shared.ready.set()
                raise
            shared.ready.set()
            try:
                return await _call(func, names, self._terminal.bus, args, kwargs)
            finally:
                shared.leave()
                await shared.idle.wait()  # the requests sharing the terminal finish first
                self._shared = None
                await self._terminal.__aexit__(None, None, None)
        finally:
            if self._shared is shared and shared.error is not None:
                self._shared = None


class _Shared:
    """A terminal started for overlapping requests: how many use it, and when it is ready/idle."""

    __slots__ = ("error", "idle", "ready", "users")

    def __init__(self) -> None:
        self.users = 0
        self.ready = anyio.Event()
        self.idle = anyio.Event()
        self.error: BaseException | None = None

    def leave(self) -> None:
        self.users -= 1
        if self.users == 0:
            self.idle.set()


async def _call(
    func: Callable[..., Awaitable[_R]],
    names: tuple[str, ...],
    bus: EventBus[Any],
    args: Any,
    kwargs: dict[str, Any],
) -> _R:
    for name in names:
        kwargs[name] = bus
    return await func(*args, **kwargs)


def _is_bus_type(annotation: object) -> bool:
    origin = get_origin(annotation) or annotation  # EventBus[Any] as well as EventBus
    return isinstance(origin, type) and issubclass(origin, EventBus)


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

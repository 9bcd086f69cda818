"""The Lihil plugin, exercised through Lihil's own LocalClient (asyncio only: Lihil is asyncio-bound)."""

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, get_args, get_origin

import anyio
import pytest
from lihil import Empty, Lihil, LocalClient, Param, Route, status

from bus import BusClosedError, BusTerminal, Event, MessageRegistry
from bus._bus import EventBus
from bus.lihil import BusPlugin, PEventBus

pytestmark = pytest.mark.anyio

Handler = Callable[..., Awaitable[None]]
TODO = {"name": "groceries", "content": "milk"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class TodoCreated(Event):
    name: str
    content: str


class TodoRejectedError(Exception):
    pass


def make_terminal(*handlers: Handler) -> BusTerminal:
    """A real terminal whose bus delivers events to ``handlers`` (each takes ``(event, ctx)``)."""
    registry = MessageRegistry(event_base=Event)
    if handlers:
        registry.register(*handlers)
    return BusTerminal(registry)


def recorder() -> tuple[list[Event], Handler]:
    received: list[Event] = []

    async def listen_create(created: TodoCreated, ctx) -> None:
        received.append(created)

    return received, listen_create


@asynccontextmanager
async def serving(app: Lihil) -> AsyncIterator[None]:
    """Run ``app``'s ASGI lifespan as a server does: startup on entry, shutdown on exit.

    (``LocalClient.call_app`` runs startup and shutdown back to back before its request, so a terminal
    entered in the lifespan would already be stopped when the endpoint runs.)
    """
    to_app, app_inbox = anyio.create_memory_object_stream[dict[str, str]](1)
    app_outbox, from_app = anyio.create_memory_object_stream[dict[str, str]](1)
    async with to_app, app_inbox, app_outbox, from_app, anyio.create_task_group() as tg:
        tg.start_soon(app, {"type": "lifespan"}, app_inbox.receive, app_outbox.send)
        await to_app.send({"type": "lifespan.startup"})
        assert (await from_app.receive())["type"] == "lifespan.startup.complete"
        yield
        await to_app.send({"type": "lifespan.shutdown"})
        assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"


def catching(app: Lihil, errors: list[Exception]) -> Callable[..., Awaitable[None]]:
    """``app`` as an ASGI server sees it: what the app raises after responding is collected."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertions
            errors.append(exc)

    return asgi


async def test_route_plugins_form_from_the_design_injects_the_bus() -> None:
    received, listen_create = recorder()
    terminal = make_terminal(listen_create)
    bus_plugin = BusPlugin(terminal)
    bus_route = Route("/bus", plugins=[bus_plugin])

    @bus_route.post
    async def create_todo(name: str, content: str, bus: PEventBus) -> Annotated[Empty, status.OK]:
        await bus.publish(TodoCreated(name, content))

    async with terminal:
        response = await LocalClient().call_route(bus_route, method="POST", query_params=TODO)

    assert response.status_code == 200, await response.text()
    assert received == [TodoCreated("groceries", "milk")]


async def test_decorate_form_injects_the_bus_into_one_endpoint() -> None:
    received, listen_create = recorder()
    terminal = make_terminal(listen_create)
    bus_plugin = BusPlugin(terminal)
    route = Route("/todos")

    @route.post(plugins=[bus_plugin.decorate])
    async def create_todo(name: str, content: str, bus: PEventBus) -> Annotated[Empty, status.OK]:
        await bus.publish(TodoCreated(name, content))

    async with terminal:
        response = await LocalClient().call_route(route, method="POST", query_params=TODO)

    assert response.status_code == 200, await response.text()
    assert received == [TodoCreated("groceries", "milk")]


async def test_a_plain_event_bus_annotation_is_injected_not_read_from_the_query() -> None:
    received, listen_create = recorder()
    terminal = make_terminal(listen_create)
    route = Route("/todos", plugins=[BusPlugin(terminal)])

    @route.post
    async def create_todo(name: str, content: str, bus: EventBus) -> Annotated[Empty, status.OK]:
        await bus.publish(TodoCreated(name, content))

    async with terminal:
        response = await LocalClient().call_route(route, method="POST", query_params=TODO)

    assert response.status_code == 200, await response.text()
    assert received == [TodoCreated("groceries", "milk")]


async def test_endpoints_without_a_bus_parameter_are_left_alone() -> None:
    terminal = make_terminal()
    route = Route("/health", plugins=[BusPlugin(terminal)])

    @route.get
    async def health(verbose: bool = False) -> dict[str, bool]:
        return {"ok": True, "verbose": verbose}

    # No terminal running: the endpoint never asks for the bus.
    response = await LocalClient().call_route(route, method="GET", query_params={"verbose": "true"})

    assert response.status_code == 200
    assert await response.json() == {"ok": True, "verbose": True}


async def test_the_bus_parameter_is_not_in_the_openapi_schema() -> None:
    terminal = make_terminal()
    route = Route("/todos", plugins=[BusPlugin(terminal)])

    @route.post
    async def create_todo(name: str, bus: PEventBus) -> Annotated[Empty, status.OK]:
        pass

    @route.put
    async def update_todo(name: str, bus: EventBus) -> Annotated[Empty, status.OK]:
        pass

    app = Lihil(route)
    schema = app.genereate_oas()
    operations = schema.paths["/todos"]
    for operation in (operations.post, operations.put):
        assert operation is not None
        assert [param.name for param in operation.parameters] == ["name"]


async def test_the_terminal_runs_inside_the_app_lifespan() -> None:
    received, listen_create = recorder()
    terminal = make_terminal(listen_create)
    bus_route = Route("/bus", plugins=[BusPlugin(terminal)])

    @bus_route.post
    async def create_todo(name: str, content: str, bus: PEventBus) -> Annotated[Empty, status.OK]:
        await bus.publish(TodoCreated(name, content))

    async def lifespan(app: Lihil) -> AsyncGenerator[None, None]:
        async with terminal:
            yield

    app = Lihil(bus_route, lifespan=lifespan)
    async with serving(app):
        response = await LocalClient().request(app, "POST", "/bus", query_params=TODO)

    assert response.status_code == 200, await response.text()
    assert received == [TodoCreated("groceries", "milk")]


async def test_a_failing_handler_gives_a_500_and_its_error_reaches_the_server() -> None:
    async def reject(created: TodoCreated, ctx) -> None:
        raise TodoRejectedError(created.name)

    terminal = make_terminal(reject)
    bus_route = Route("/bus", plugins=[BusPlugin(terminal)])

    @bus_route.post
    async def create_todo(name: str, content: str, bus: PEventBus) -> Annotated[Empty, status.OK]:
        await bus.publish(TodoCreated(name, content))

    async def lifespan(app: Lihil) -> AsyncGenerator[None, None]:
        async with terminal:
            yield

    app = Lihil(bus_route, lifespan=lifespan)
    errors: list[Exception] = []
    async with serving(app):
        response = await LocalClient().request(catching(app, errors), "POST", "/bus", query_params=TODO)

    assert response.status_code == 500
    assert [type(error) for error in errors] == [TodoRejectedError]


async def test_a_request_while_a_lifespan_terminal_is_not_running_fails_naming_the_lifespan_line() -> None:
    received, listen_create = recorder()
    terminal = make_terminal(listen_create)
    bus_plugin = BusPlugin(terminal)
    bus_route = Route("/bus", plugins=[bus_plugin])

    @bus_route.post
    async def create_todo(name: str, content: str, bus: PEventBus) -> Annotated[Empty, status.OK]:
        await bus.publish(TodoCreated(name, content))

    app = Lihil(bus_route, lifespan=bus_plugin.lifespan)  # the one line
    async with serving(app):
        response = await LocalClient().request(app, "POST", "/bus", query_params=TODO)
        assert response.status_code == 200, await response.text()
    errors: list[Exception] = []
    # after shutdown: the terminal stopped with the app
    response = await LocalClient().request(catching(app, errors), "POST", "/bus", query_params=TODO)
    assert response.status_code == 500
    assert [type(error) for error in errors] == [BusClosedError]
    assert "app = Lihil(..., lifespan=bus_plugin.lifespan)" in str(errors[0])
    assert received == [TodoCreated("groceries", "milk")]


async def test_a_never_started_terminal_runs_per_request_as_in_lihil_and_warns_with_the_lifespan_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received, listen_create = recorder()
    terminal = make_terminal(listen_create)
    bus_route = Route("/bus", plugins=[BusPlugin(busterm=terminal)])

    @bus_route.post
    async def create_todo(name: str, content: str, bus: PEventBus) -> Annotated[Empty, status.OK]:
        await bus.emit(TodoCreated(name, content))  # drained before the request ends

    app = Lihil(bus_route)  # no lifespan: nobody starts the terminal
    async with serving(app):
        for _ in range(2):
            response = await LocalClient().request(app, "POST", "/bus", query_params=TODO)
            assert response.status_code == 200, await response.text()
    assert received == [TodoCreated("groceries", "milk")] * 2
    assert not terminal.running
    warnings = [r for r in caplog.records if r.name == "bus" and r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "lifespan=bus_plugin.lifespan" in warnings[0].getMessage()


async def test_overlapping_requests_share_the_terminal_started_for_them() -> None:
    gate = anyio.Event()
    received, listen_create = recorder()
    terminal = make_terminal(listen_create)
    plugin = BusPlugin(terminal)
    route = Route("/todos")

    @route.post(plugins=[plugin.decorate])
    async def create_todo(name: str, content: str, bus: PEventBus) -> Annotated[Empty, status.OK]:
        await gate.wait()
        await bus.publish(TodoCreated(name, content))

    endpoint = route.get_endpoint("POST")
    statuses: list[int] = []

    async def call() -> None:
        response = await LocalClient().call_endpoint(endpoint, query_params=TODO)
        statuses.append(response.status_code)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        assert terminal.running
        gate.set()
    assert statuses == [200, 200, 200]
    assert len(received) == 3
    assert not terminal.running


def test_bus_plugin_takes_lihils_busterm_keyword_and_refuses_anything_else() -> None:
    terminal = make_terminal()
    assert BusPlugin(busterm=terminal).busterm is terminal
    assert BusPlugin(terminal).terminal is terminal
    with pytest.raises(TypeError, match="one BusTerminal"):
        BusPlugin()
    with pytest.raises(TypeError, match="BusTerminal"):
        BusPlugin(object())  # type: ignore[arg-type]


def test_the_bus_types_are_generic_as_in_lihil() -> None:
    assert get_origin(EventBus[Any]) is EventBus
    assert get_origin(MessageRegistry[Event]) is MessageRegistry
    assert get_origin(BusTerminal[Event]) is BusTerminal
    (bus_type, marker) = get_args(PEventBus)
    assert get_origin(bus_type) is EventBus
    assert marker == Param("plugin")


class TodoArchived(Event):
    name: str


async def test_a_bus_handler_can_take_lihils_peventbus_and_publish_nested_events() -> None:
    archived: list[tuple[str, str | None]] = []

    async def archive_on_create(created: TodoCreated, ctx: Any, bus: PEventBus) -> None:
        await bus.publish(TodoArchived(created.name))

    async def record(archived_event: TodoArchived, ctx: Any) -> None:
        archived.append((archived_event.name, ctx.causation_id))

    registry = MessageRegistry(event_base=Event)
    registry.register(archive_on_create, record)
    async with BusTerminal(registry) as terminal:
        await terminal.bus.publish(TodoCreated("groceries", "milk"))
    assert len(archived) == 1
    assert archived[0][0] == "groceries"
    assert archived[0][1] is not None  # caused by the TodoCreated message

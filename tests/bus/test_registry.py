"""MessageRegistry: handler signatures, handler policies, decorator forms, merging registries."""

import functools
import math
import re
import types
from typing import Annotated, Any, Union, get_type_hints

import pytest

from bus._bus import EventBus
from bus._errors import BusError, RegistrationError
from bus._events import Event, MessageContext
from bus._handlers import NO_DEFAULT, ParamSpec, parse_handler
from bus._policy import HandlerPolicy, PolicyOptions, policy_fields
from bus._registry import MessageRegistry, merge_registries


class TodoCreated(Event):
    name: str
    content: str


class TodoDeleted(Event):
    name: str


class UrgentTodoCreated(TodoCreated):
    pass


class AppEvent(Event):
    pass


class Repo:
    pass


FALLBACK = Repo()
PEventBus = Annotated[EventBus, "lihil-style marker"]


async def listen_create(created: TodoCreated, ctx: MessageContext) -> None:
    pass


async def listen_twice(created: TodoCreated, ctx: MessageContext, bus: EventBus) -> None:
    pass


def raises_registration_error(message: str) -> pytest.RaisesExc[RegistrationError]:
    return pytest.raises(RegistrationError, match=f"^{re.escape(message)}")


# --- HandlerPolicy -----------------------------------------------------------------------------


def test_handler_policy_defaults_are_the_documented_values() -> None:
    policy = HandlerPolicy()
    assert policy.retries == 3
    assert policy.retry_backoff == 0.1
    assert policy.retry_backoff_factor == 2.0
    assert policy.retry_backoff_max == 5.0
    assert policy.mailbox_capacity == 10_000
    assert policy.overflow == "backpressure"
    assert policy.max_restarts == 20
    assert policy.restart_period == 5.0
    assert policy.restart_backoff == 0.01
    assert policy.restart_backoff_factor == 2.0
    assert policy.restart_backoff_max == 2.0
    assert policy.restart_jitter == 0.2
    assert policy.shutdown_timeout == 5.0


def test_restart_delay_doubles_from_restart_backoff_and_is_capped() -> None:
    policy = HandlerPolicy()
    delays = [policy.restart_delay(streak) for streak in range(1, 11)]
    assert delays[:3] == [0.01, 0.02, 0.04]
    assert delays[-1] == 2.0
    assert sum(policy.restart_delay(s) for s in range(1, 21)) > 20  # a long dependency outage
    with pytest.raises(ValueError, match="streak"):
        policy.restart_delay(0)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"restart_backoff": 0.001}, "restart_backoff must be >= 0.01"),
        ({"restart_backoff_factor": 0.5}, "restart_backoff_factor"),
        ({"restart_backoff": 1.0, "restart_backoff_max": 0.5}, "restart_backoff_max"),
        ({"restart_jitter": -0.1}, "restart_jitter"),
    ],
)
def test_handler_policy_rejects_a_restart_backoff_that_would_not_back_off(
    options: dict[str, float], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        HandlerPolicy(**options)  # type: ignore[arg-type]


def test_default_restart_intensity_survives_every_attempt_of_a_poison_message() -> None:
    policy = HandlerPolicy()
    assert policy.max_restarts >= policy.retries + 1


def test_retry_delay_is_zero_first_then_exponential_and_capped() -> None:
    policy = HandlerPolicy(retry_backoff=0.5, retry_backoff_factor=3.0, retry_backoff_max=10.0)
    delays = [policy.retry_delay(attempt) for attempt in range(1, 6)]
    assert delays == [0.0, 0.5, 1.5, 4.5, 10.0]


def test_retry_delay_stays_at_the_cap_for_huge_attempt_numbers() -> None:
    assert HandlerPolicy().retry_delay(10**6) == 5.0


def test_retry_delay_with_zero_backoff_never_waits() -> None:
    policy = HandlerPolicy(retry_backoff=0.0)
    assert {policy.retry_delay(attempt) for attempt in (1, 2, 50)} == {0.0}


@pytest.mark.parametrize("attempt", [0, -1, True])
def test_retry_delay_rejects_an_attempt_below_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="attempt"):
        HandlerPolicy().retry_delay(attempt)


@pytest.mark.parametrize(
    ("options", "error", "field"),
    [
        ({"retries": -1}, ValueError, "retries"),
        ({"retries": 1.5}, TypeError, "retries"),
        ({"retries": True}, TypeError, "retries"),
        ({"retry_backoff": -0.1}, ValueError, "retry_backoff"),
        ({"retry_backoff": math.nan}, ValueError, "retry_backoff"),
        ({"retry_backoff": "1"}, TypeError, "retry_backoff"),
        ({"retry_backoff_factor": 0.5}, ValueError, "retry_backoff_factor"),
        ({"retry_backoff_factor": math.inf}, ValueError, "retry_backoff_factor"),
        ({"retry_backoff_max": 0.05}, ValueError, "retry_backoff_max"),
        ({"mailbox_capacity": 0}, ValueError, "mailbox_capacity"),
        ({"mailbox_capacity": 2.0}, TypeError, "mailbox_capacity"),
        ({"overflow": "drop"}, ValueError, "overflow"),
        ({"max_restarts": -1}, ValueError, "max_restarts"),
        ({"restart_period": 0}, ValueError, "restart_period"),
        ({"restart_period": math.inf}, ValueError, "restart_period"),
        ({"shutdown_timeout": -1}, ValueError, "shutdown_timeout"),
    ],
)
def test_handler_policy_rejects_a_bad_value_naming_the_field(
    options: dict[str, Any], error: type[Exception], field: str
) -> None:
    with pytest.raises(error, match=f"^{field} "):
        HandlerPolicy(**options)


def test_handler_policy_requires_max_restarts_of_at_least_retries_plus_one() -> None:
    with pytest.raises(ValueError, match=r"max_restarts \(5\) must be >= retries \+ 1 \(6\)"):
        HandlerPolicy(retries=5, max_restarts=5)
    assert HandlerPolicy(retries=5, max_restarts=6).max_restarts == 6


def test_handler_policy_accepts_an_unbounded_mailbox_and_an_endless_shutdown() -> None:
    policy = HandlerPolicy(mailbox_capacity=None, shutdown_timeout=math.inf)
    assert policy.mailbox_capacity is None


def test_handler_policy_accepts_every_overflow_policy() -> None:
    for overflow in ("backpressure", "drop_new", "drop_oldest", "fail"):
        assert HandlerPolicy(overflow=overflow).overflow == overflow


def test_handler_policy_is_frozen() -> None:
    policy = HandlerPolicy()
    with pytest.raises(AttributeError):
        policy.retries = 5  # type: ignore[misc]


def test_policy_options_name_exactly_the_policy_fields() -> None:
    assert tuple(get_type_hints(PolicyOptions)) == policy_fields()


# --- handler signatures --------------------------------------------------------------------------


def test_register_reads_the_subscription_and_the_context_of_a_handler() -> None:
    spec = parse_handler(listen_create)
    assert spec.qualname == "listen_create"
    assert spec.name == f"{__name__}.listen_create"
    assert spec.func is listen_create
    assert spec.is_async
    assert spec.subscriptions == (TodoCreated,)
    assert spec.params == (ParamSpec("ctx", "context", MessageContext),)
    assert spec.takes_context


def test_the_second_parameter_is_the_context_when_unannotated_or_annotated_any_object_or_context() -> (
    None
):
    async def unannotated(created: TodoCreated, ctx) -> None:  # type: ignore[no-untyped-def]
        pass

    async def any_annotated(created: TodoCreated, ctx: Any) -> None:
        pass

    async def object_annotated(created: TodoCreated, ctx: object) -> None:
        pass

    async def marked(created: TodoCreated, ctx: Annotated[MessageContext, "marker"]) -> None:
        pass

    for handler in (unannotated, any_annotated, object_annotated, marked, listen_create):
        spec = parse_handler(handler)
        assert spec.params == (ParamSpec("ctx", "context", MessageContext),)


def test_any_other_annotation_of_the_second_parameter_is_a_registration_error() -> None:
    # this used to be accepted, the annotation ignored: the handler got the context as an int
    async def oddly_annotated(created: TodoCreated, ctx: int) -> None:
        pass

    with pytest.raises(
        RegistrationError, match=r"oddly_annotated' parameter 'ctx' is annotated int"
    ):
        parse_handler(oddly_annotated)


def test_a_handler_may_take_only_the_event() -> None:
    async def listen(created: TodoCreated) -> None:
        pass

    spec = parse_handler(listen)
    assert spec.params == ()
    assert not spec.takes_context


def test_a_sync_handler_is_accepted_and_marked_as_not_async() -> None:
    def listen(created: TodoCreated, ctx: MessageContext) -> None:
        pass

    assert not parse_handler(listen).is_async


def test_a_union_annotation_subscribes_to_each_member() -> None:
    async def pipe_union(event: TodoCreated | TodoDeleted) -> None:
        pass

    async def typing_union(event: Union[TodoCreated, TodoDeleted]) -> None:  # noqa: UP007
        pass

    for handler in (pipe_union, typing_union):
        assert parse_handler(handler).subscriptions == (TodoCreated, TodoDeleted)


def test_annotated_subscriptions_are_unwrapped_also_inside_a_union() -> None:
    async def annotated(event: Annotated[TodoCreated, "meta"]) -> None:
        pass

    async def annotated_member(event: Annotated[TodoCreated, "meta"] | TodoDeleted) -> None:
        pass

    assert parse_handler(annotated).subscriptions == (TodoCreated,)
    assert parse_handler(annotated_member).subscriptions == (TodoCreated, TodoDeleted)


def test_a_handler_for_a_base_event_accepts_its_subclasses_even_later_ones() -> None:
    spec = parse_handler(listen_create)

    class LateTodoCreated(TodoCreated):
        pass

    assert spec.accepts(TodoCreated)
    assert spec.accepts(UrgentTodoCreated)
    assert spec.accepts(LateTodoCreated)
    assert not spec.accepts(TodoDeleted)


def test_register_rejects_a_first_parameter_that_is_not_an_event() -> None:
    async def listen(created: int, ctx: MessageContext) -> None:
        pass

    with raises_registration_error(
        "handler 'test_register_rejects_a_first_parameter_that_is_not_an_event.<locals>.listen' "
        "parameter 'created': annotation int is not a subclass of Event"
    ):
        MessageRegistry().register(listen)


def test_register_names_the_member_of_a_union_that_is_not_an_event() -> None:
    async def listen(created: TodoCreated | str) -> None:
        pass

    with pytest.raises(
        RegistrationError,
        match=r"parameter 'created': annotation TodoCreated \| str: str is not a subclass of Event",
    ):
        parse_handler(listen)


def test_register_rejects_an_optional_event() -> None:
    async def listen(created: TodoCreated | None) -> None:
        pass

    with pytest.raises(RegistrationError, match="None is not a subclass of Event"):
        parse_handler(listen)


def test_register_rejects_a_handler_without_an_event_annotation() -> None:
    async def listen(created, ctx: MessageContext) -> None:  # type: ignore[no-untyped-def]
        pass

    with pytest.raises(RegistrationError, match=r"listen' parameter 'created' has no annotation"):
        parse_handler(listen)


def test_register_rejects_a_handler_without_parameters() -> None:
    async def listen() -> None:
        pass

    with pytest.raises(RegistrationError, match=r"listen' takes no parameters"):
        parse_handler(listen)


def test_register_rejects_an_event_outside_the_registry_event_base() -> None:
    async def listen(created: TodoCreated) -> None:
        pass

    registry = MessageRegistry(event_base=AppEvent)
    with pytest.raises(
        RegistrationError,
        match="parameter 'created': annotation TodoCreated is not a subclass of AppEvent",
    ):
        registry.register(listen)


def test_further_parameters_resolve_by_annotation() -> None:
    async def listen(
        created: TodoCreated,
        ctx: object,
        bus: EventBus,
        *,
        pbus: PEventBus,
        context: MessageContext,
        annotated_context: Annotated[MessageContext, "x"],
        repo: Repo,
        annotated_repo: Annotated[Repo, "x"],
    ) -> None:
        pass

    spec = parse_handler(listen)
    assert [(param.name, param.kind) for param in spec.params] == [
        ("ctx", "context"),
        ("bus", "bus"),
        ("pbus", "bus"),
        ("context", "context"),
        ("annotated_context", "context"),
        ("repo", "dependency"),
        ("annotated_repo", "dependency"),
    ]
    assert spec.params[-1].annotation is Repo


def test_a_dependency_remembers_its_default() -> None:
    fallback = Repo()

    async def listen(created: TodoCreated, ctx: MessageContext, repo: Repo = fallback) -> None:
        pass

    (_, repo) = parse_handler(listen).params
    assert repo.has_default
    assert repo.default is fallback
    assert not ParamSpec("x", "dependency", Repo).has_default
    assert ParamSpec("x", "dependency", Repo).default is NO_DEFAULT


def test_register_rejects_an_unannotated_injected_parameter() -> None:
    async def listen(created: TodoCreated, ctx: MessageContext, repo) -> None:  # type: ignore[no-untyped-def]
        pass

    with pytest.raises(RegistrationError, match=r"listen' parameter 'repo' has no annotation"):
        parse_handler(listen)


def test_register_rejects_star_args_and_star_star_kwargs() -> None:
    async def with_args(created: TodoCreated, *args: Repo) -> None:
        pass

    async def with_kwargs(created: TodoCreated, ctx: MessageContext, **deps: Repo) -> None:
        pass

    with pytest.raises(RegistrationError, match=r"with_args' parameter \*args is not supported"):
        parse_handler(with_args)
    with pytest.raises(
        RegistrationError, match=r"with_kwargs' parameter \*\*deps is not supported"
    ):
        parse_handler(with_kwargs)


def test_event_and_context_may_be_positional_only_but_dependencies_may_not() -> None:
    async def fine(created: TodoCreated, ctx: MessageContext, /, repo: Repo) -> None:
        pass

    async def bad(created: TodoCreated, ctx: MessageContext, repo: Repo, /) -> None:
        pass

    assert [param.kind for param in parse_handler(fine).params] == ["context", "dependency"]
    with pytest.raises(RegistrationError, match=r"bad' parameter 'repo' is positional-only"):
        parse_handler(bad)


def test_register_rejects_a_keyword_only_event_and_injects_a_keyword_only_context() -> None:
    async def event_by_name(*, created: TodoCreated) -> None:
        pass

    async def context_by_name(created: TodoCreated, *, ctx: MessageContext) -> None:
        pass

    with pytest.raises(
        RegistrationError, match=r"'created': the event parameter must be positional"
    ):
        parse_handler(event_by_name)
    spec = parse_handler(context_by_name)
    assert not spec.takes_context
    assert [(param.name, param.kind) for param in spec.params] == [("ctx", "context")]


def test_keyword_only_dependencies_are_fine() -> None:
    async def listen(created: TodoCreated, ctx: MessageContext, *, repo: Repo) -> None:
        pass

    assert parse_handler(listen).params[1] == ParamSpec("repo", "dependency", Repo)


def test_register_rejects_generator_functions() -> None:
    async def agen(created: TodoCreated):  # type: ignore[no-untyped-def]
        yield

    def gen(created: TodoCreated):  # type: ignore[no-untyped-def]
        yield

    for handler in (agen, gen):
        with pytest.raises(RegistrationError, match="is a generator function"):
            parse_handler(handler)


@pytest.mark.parametrize("thing", [42, TodoCreated, Repo])
def test_register_rejects_what_is_not_a_handler_function(thing: Any) -> None:
    with pytest.raises(RegistrationError, match="cannot register"):
        MessageRegistry().register(thing)


def test_an_unresolvable_string_annotation_names_the_parameter_and_explains_why() -> None:
    class LocalRepo:
        pass

    async def listen(created: TodoCreated, ctx: MessageContext, repo: "LocalRepo") -> None:
        pass

    with pytest.raises(
        RegistrationError, match=r"listen' parameter 'repo': cannot resolve annotation 'LocalRepo'"
    ) as caught:
        parse_handler(listen)
    assert "define it at module level" in str(caught.value)
    assert isinstance(caught.value.__cause__, NameError)


class TodoService:
    async def on_created(self, created: TodoCreated, ctx: MessageContext, bus: EventBus) -> None:
        pass

    def on_deleted(self, deleted: TodoDeleted) -> None:
        pass


class CallableHandler:
    async def __call__(self, created: TodoCreated, ctx: MessageContext) -> None:
        pass


def test_bound_methods_are_handlers_without_their_self() -> None:
    service = TodoService()
    spec = parse_handler(service.on_created)
    assert spec.qualname == "TodoService.on_created"
    assert spec.is_async
    assert spec.subscriptions == (TodoCreated,)
    assert [param.kind for param in spec.params] == ["context", "bus"]
    assert not parse_handler(service.on_deleted).is_async


def test_callable_objects_with_an_async_call_are_handlers() -> None:
    spec = parse_handler(CallableHandler())
    assert spec.qualname == "CallableHandler"
    assert spec.is_async
    assert spec.subscriptions == (TodoCreated,)
    assert [param.kind for param in spec.params] == ["context"]


def test_partials_are_handlers_over_their_remaining_parameters() -> None:
    async def listen(prefix: str, created: TodoCreated, ctx: MessageContext) -> None:
        pass

    spec = parse_handler(functools.partial(listen, "todo"))
    assert spec.is_async
    assert spec.subscriptions == (TodoCreated,)
    assert spec.qualname.endswith("listen")


def test_arguments_pass_event_and_context_by_position_and_the_rest_by_name() -> None:
    async def listen(
        created: TodoCreated, ctx: MessageContext, bus: EventBus, repo: Repo, other: Repo = FALLBACK
    ) -> None:
        pass

    spec = parse_handler(listen)
    event, context, bus, repo = TodoCreated("a", "b"), MessageContext(), object(), Repo()
    args, kwargs = spec.arguments(event, context, bus, {"repo": repo})
    assert args == (event, context)
    assert kwargs == {"bus": bus, "repo": repo}
    assert parse_handler(listen_create).arguments(event, context, bus, {}) == ((event, context), {})


# --- MessageRegistry ----------------------------------------------------------------------------


def test_register_keeps_registration_order_and_returns_the_first_handler() -> None:
    registry = MessageRegistry(event_base=Event)
    assert registry.register(listen_create, listen_twice) is listen_create
    assert [handler.spec.func for handler in registry.handlers] == [listen_create, listen_twice]
    assert [handler.name for handler in registry.handlers] == [
        f"{__name__}.listen_create",
        f"{__name__}.listen_twice",
    ]
    assert registry.event_base is Event


def test_register_is_a_decorator_with_and_without_policy_options() -> None:
    registry = MessageRegistry()

    @registry.register
    async def plain(created: TodoCreated) -> None:
        pass

    @registry.register(retries=5, max_restarts=6)
    async def with_options(created: TodoCreated) -> None:
        pass

    @registry.register()
    async def empty_call(created: TodoCreated) -> None:
        pass

    @registry
    async def bare(created: TodoCreated) -> None:
        pass

    @registry(overflow="drop_oldest")
    async def called(created: TodoCreated) -> None:
        pass

    assert [handler.spec.func for handler in registry.handlers] == [
        plain,
        with_options,
        empty_call,
        bare,
        called,
    ]
    policies = [handler.policy for handler in registry.handlers]
    assert policies[0] == HandlerPolicy()
    assert policies[1] == HandlerPolicy(retries=5, max_restarts=6)
    assert policies[4].overflow == "drop_oldest"
    assert callable(plain)


def test_register_applies_one_policy_to_all_handlers_of_a_call() -> None:
    registry = MessageRegistry()
    registry.register(listen_create, listen_twice, mailbox_capacity=None)
    assert {handler.policy.mailbox_capacity for handler in registry.handlers} == {None}


def test_register_rejects_an_unknown_policy_option_with_a_suggestion() -> None:
    with raises_registration_error(
        "unknown handler policy option 'retires' (did you mean 'retries'?)"
    ):
        MessageRegistry().register(listen_create, retires=5)  # type: ignore[call-overload]


def test_register_rejects_a_bad_policy_value_before_decorating() -> None:
    registry = MessageRegistry()
    with raises_registration_error("invalid handler policy: retries must be >= 0, got -1"):
        registry.register(retries=-1)
    with pytest.raises(RegistrationError, match="max_restarts"):
        registry.register(listen_create, retries=20)
    assert registry.handlers == ()


def test_registering_the_same_handler_twice_is_an_error() -> None:
    registry = MessageRegistry()
    registry.register(listen_create)
    with raises_registration_error("handler 'listen_create' is already registered"):
        registry.register(listen_create)
    with raises_registration_error("handler 'listen_twice' is already registered"):
        registry.register(listen_twice, listen_twice)
    assert len(registry.handlers) == 1


def test_handler_names_must_be_unique_within_a_registry() -> None:
    def make() -> Any:
        async def listen(created: TodoCreated) -> None:
            pass

        return listen

    registry = MessageRegistry()
    registry.register(make())
    with pytest.raises(RegistrationError, match="another handler is already registered"):
        registry.register(make())


def test_register_is_all_or_nothing() -> None:
    async def bad(created: int) -> None:
        pass

    registry = MessageRegistry()
    with pytest.raises(RegistrationError):
        registry.register(listen_create, bad)
    assert registry.handlers == ()


@pytest.mark.parametrize("base", [int, object, 42, "Event"])
def test_the_registry_event_base_must_be_a_struct_class_and_the_error_says_so(base: Any) -> None:
    with pytest.raises(RegistrationError, match=r"event_base must be a class derived from bus\.Event"):
        MessageRegistry(event_base=base)


def test_registration_errors_are_bus_errors_and_type_errors() -> None:
    with pytest.raises(RegistrationError) as caught:
        MessageRegistry().register(42)  # type: ignore[call-overload]
    assert isinstance(caught.value, BusError)
    assert isinstance(caught.value, TypeError)


def test_factory_registers_a_provider_and_returns_it() -> None:
    registry = MessageRegistry()

    @registry.factory
    def make_repo() -> Repo:
        return Repo()

    assert callable(make_repo)
    assert registry.providers[Repo].func is make_repo
    assert isinstance(registry.providers, types.MappingProxyType)


def test_two_providers_for_one_type_are_an_error() -> None:
    def make_repo() -> Repo:
        return Repo()

    def other_repo() -> Repo:
        return Repo()

    registry = MessageRegistry()
    registry.factory(make_repo)
    with raises_registration_error("provider 'test_two_providers_for_one_type_are_an_error"):
        registry.factory(other_repo)
    with pytest.raises(RegistrationError, match="make_repo' is already registered"):
        registry.factory(make_repo)


def test_merge_registries_keeps_registry_then_registration_order() -> None:
    first, second = MessageRegistry(), MessageRegistry()
    first.register(listen_twice)
    second.register(listen_create)

    @second.factory
    def make_repo() -> Repo:
        return Repo()

    handlers, providers = merge_registries(first, second)
    assert [handler.spec.func for handler in handlers] == [listen_twice, listen_create]
    assert providers == {Repo: second.providers[Repo]}
    assert merge_registries() == ((), {})


def test_merge_registries_rejects_duplicates_across_registries() -> None:
    first, second = MessageRegistry(), MessageRegistry()
    first.register(listen_create)
    second.register(listen_create)
    with pytest.raises(RegistrationError, match=r"already registered \(in another registry\)"):
        merge_registries(first, second)
    with pytest.raises(RegistrationError, match="given twice"):
        merge_registries(first, first)

    def make_repo() -> Repo:
        return Repo()

    def other_repo() -> Repo:
        return Repo()

    third, fourth = MessageRegistry(), MessageRegistry()
    third.factory(make_repo)
    fourth.factory(other_repo)
    with pytest.raises(RegistrationError, match="both provide Repo"):
        merge_registries(third, fourth)

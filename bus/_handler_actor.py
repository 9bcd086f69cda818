"""The actor that runs one registered handler: dependencies per incarnation, one message at a time."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from types import MappingProxyType
from typing import Any

import anyio

from actors import Actor, DirectPath
from bus._bus import EventBus
from bus._dependencies import open_dependencies
from bus._dispatch import CURRENT_CHAIN, HandlerSlot
from bus._errors import HandlerCancelledError
from bus._events import (
    NOTICE_EVENTS,
    Emitted,
    Event,
    HandlerRestarted,
    MessageContext,
    Stamp,
    context_of,
    delivery_context,
    describe_error,
)
from bus._handlers import HandlerSpec, code_target
from bus._log import handlers_logger

#: the dependencies of a handler that has none: one shared, read-only mapping
_NO_DEPS: Mapping[str, object] = MappingProxyType({})


class HandlerActor(Actor):
    """Calls its handler for each delivery: an `Emitted` or ``(event, context)`` (emit), or
    ``(event, context or stamp, None)`` or the bare event (publish). Dependencies live as long as
    the incarnation: a restart gets fresh ones."""

    __slots__ = ("_bare", "_dispatcher", "_func", "_plain", "_slot", "_with_context")

    # A handler without dependencies or a bus parameter (most of them) keeps no slots for these:
    # the class answers (an idle incarnation is 32 B smaller); ``_ResourcedHandlerActor`` has them.
    _deps: Mapping[str, object] = _NO_DEPS
    _stack: AsyncExitStack | None = None
    _needs_bus: bool = False

    def __new__(cls, slot: HandlerSlot) -> HandlerActor:
        kind = cls
        if cls is HandlerActor and any(p.kind in _RESOURCES for p in slot.registered.spec.params):
            kind = _ResourcedHandlerActor
        return super().__new__(kind)

    def __init__(self, slot: HandlerSlot) -> None:
        self._slot = slot
        self._dispatcher = slot.dispatcher
        spec = slot.registered.spec
        self._func: Any = spec.func
        # the common shapes skip building kwargs: (event) or (event, ctx), an `async def` itself
        # (not a wrapper whose result must be checked for an awaitable)
        self._with_context = spec.takes_context
        self._plain = (
            spec.is_async
            and inspect.iscoroutinefunction(code_target(spec.func))
            and len(spec.params) == int(self._with_context)
        )
        #: plain and without a context: the emit fast path of ``receive``
        self._bare = self._plain and not self._with_context

    @property
    def _spec(self) -> HandlerSpec:
        return self._slot.registered.spec

    async def _open_dependencies(self) -> None:
        raise NotImplementedError  # only a handler with dependencies has a stack


    async def on_start(self) -> None:
        slot = self._slot
        incarnation = self.context.incarnation
        if slot.exhausted:
            self._give_up()
            return
        if self._stack is not None:
            await self._open_dependencies()
        slot.started()
        slot.actor = self
        if incarnation > 1:
            self._announce_restart(incarnation - 1)
        # deliveries dead-lettered by the crash that led here count for drain() until now
        self._dispatcher.release(slot)

    def on_activate(self) -> None:
        # this task executes this handler: publishes from it consult the wait-for graph. Set per
        # activation, not in on_start: a variable set there makes the runtime keep a copy of the
        # context for the whole incarnation (~250 B per idle handler)
        CURRENT_CHAIN.set((self._slot,))

    def direct(self) -> DirectPath | None:
        # a local emit (an `Emitted`) or a publish to an ``async def handler(event)`` or
        # ``(event, ctx)``: the actor loop awaits the user's coroutine itself (one coroutine
        # layer, not two)
        if not self._plain:
            return None
        func = self._func
        start: Callable[[Any], Awaitable[Any] | None]
        ask: Callable[[Any], Awaitable[Any] | None]
        if self._with_context:

            def start(message: Any) -> Awaitable[Any] | None:
                if type(message) is Emitted:
                    return func(message.event, delivery_context(message))  # type: ignore[no-any-return]
                return None

            def ask(message: Any) -> Awaitable[Any] | None:
                if len(message) == 3:  # published: (event, context or stamp, None)
                    return func(message[0], context_of(message[1]))  # type: ignore[no-any-return]
                return None

        else:

            def start(message: Any) -> Awaitable[Any] | None:
                if type(message) is Emitted:
                    return func(message.event)  # type: ignore[no-any-return]
                return None

            # a publish sends such a handler the bare event (``Route.bare``): the loop calls it as is
            ask = func

        dispatcher = self._dispatcher

        def done(message: Any) -> None:
            # dispatcher.done_one() inlined: once per message
            dispatcher.pending -= 1
            if dispatcher.pending <= 0 and dispatcher.drain_waiters:
                dispatcher.wake_drainers()

        return DirectPath(start, done, self._direct_failed, ask)

    def _direct_failed(self, message: Any, error: BaseException) -> BaseException:
        # a local emit, or a publish's payload: a tuple, or the bare event
        event = (
            message.event
            if type(message) is Emitted
            else message[0] if type(message) is tuple else message
        )
        if isinstance(error, Exception):
            self._failed(error, event)
        elif isinstance(error, asyncio.CancelledError) and _foreign(error):
            return self._cancelled(event)
        elif isinstance(error, GeneratorExit):
            return self._generator_exit(event)
        return error

    def _announce_restart(self, restarts: int) -> None:
        slot = self._slot
        error = slot.last_error
        text = describe_error(error) if error else ""
        handlers_logger.info(
            "handler %s restarted (restart %d) after: %s",
            slot.name,
            restarts,
            text,
            extra={"handler": slot.name, "restarts": restarts},
        )
        if slot.crashed_on_notice:
            # a crash on a notice is not announced with another notice: two handlers failing on
            # each other's notices would feed each other for ever
            slot.crashed_on_notice = False
            return
        self._dispatcher.notify(HandlerRestarted(slot.name, restarts, text), about=slot.name)

    def _give_up(self) -> None:
        """Too many crashes in a row without progress: end this incarnation normally (the handler's
        child is transient, so it is not restarted); the watcher announces ``HandlerStopped``."""
        slot = self._slot
        policy = slot.registered.policy
        error = slot.last_error
        reason = (
            f"crash loop: {slot.streak} crashes in a row without handling a message "
            f"(max_restarts={policy.max_restarts})"
            + (f"; last error: {describe_error(error)}" if error else "")
        )
        slot.stop_reason = reason
        handlers_logger.error(
            "handler %s stopped for good: %s",
            slot.name,
            reason,
            extra={"handler": slot.name},
        )
        self.context.stop()

    async def on_stop(self) -> None:
        if self._slot.actor is self:
            self._slot.actor = None
        if self._stack is not None:
            try:
                await self._stack.aclose()
            except Exception:
                handlers_logger.exception(
                    "handler %s: a dependency's teardown failed",
                    self._slot.name,
                    extra={"handler": self._slot.name},
                )

    async def receive(self, message: Any) -> Any:
        # what the direct path (see ``direct``) left to this method: redeliveries, handlers that are
        # not a plain ``async def``, emits that carry a context, and publishes
        if type(message) is Emitted:
            event = message.event
        elif len(message) == 3:  # published: (event, context or stamp, None)
            await self.handle(message[0], message[1])
            return
        else:  # emitted with a context: a notice, headers, or a transport's delivery
            event = message[0]
        if self._plain:
            try:
                if self._with_context:
                    # the context is built here, only for a handler that takes it
                    await self._func(event, self._delivery_context(message))
                else:
                    await self._func(event)
            except Exception as exc:
                self._failed(exc, event)
                raise
            except asyncio.CancelledError as exc:
                if not _foreign(exc):
                    raise
                raise self._cancelled(event) from exc
            except GeneratorExit as exc:
                raise self._generator_exit(event) from exc
        else:
            await self.handle(event, self._delivery_context(message))
        # emitted: counted done once processed, for drain()
        dispatcher = self._dispatcher
        dispatcher.pending -= 1
        if type(message) is not Emitted and type(message) is not tuple:
            message.settle()  # a transport's delivery: acknowledge it upstream
        if dispatcher.pending <= 0 and dispatcher.drain_waiters:
            dispatcher.wake_drainers()

    def _delivery_context(self, message: Any) -> MessageContext:
        context = delivery_context(message)
        attempt = self._context.attempt
        if attempt != 1:
            # counted from the message's own attempt: 1 when emitted here, the delivery count
            # for an entry a transport took over from a dead consumer
            context = context.with_attempt(context.attempt + attempt - 1)
        return context

    async def handle(self, event: Event, context: MessageContext | Stamp) -> None:
        """Call the handler once; its exception propagates (and crashes the incarnation)."""
        try:
            if self._plain:
                if self._with_context:
                    await self._func(event, context_of(context))
                else:
                    await self._func(event)
                return
            context = context_of(context)
            bus: EventBus[Event] | None = (
                EventBus(self._dispatcher, context) if self._needs_bus else None
            )
            args, kwargs = self._spec.arguments(event, context, bus, self._deps)
            if self._spec.is_async:
                result = self._func(*args, **kwargs)
            else:
                # a thread cannot be interrupted: when the actor is killed the thread is
                # abandoned (it runs to completion in the background, its result ignored)
                try:
                    (result,) = await anyio.to_thread.run_sync(
                        functools.partial(_call_boxed, self._func, args, kwargs),
                        abandon_on_cancel=True,
                        limiter=self._dispatcher.sync_limiter,
                    )
                except anyio.get_cancelled_exc_class():
                    handlers_logger.warning(
                        "handler %s was cancelled while its sync code ran: its worker thread is "
                        "abandoned and runs to completion in the background",
                        self._slot.name,
                        extra={
                            "handler": self._slot.name,
                            "message_id": context.message_id,
                            "attempt": context.attempt,
                        },
                    )
                    raise
            if inspect.isawaitable(result):
                # a wrapper (a plain `def` decorator around an `async def`) returned the awaitable
                await result
        except _ThreadRaisedGeneratorExit as exc:
            raise self._generator_exit(event) from exc.__cause__
        except Exception as exc:
            self._failed(exc, event)
            raise
        except asyncio.CancelledError as exc:
            if not _foreign(exc):
                raise
            raise self._cancelled(event) from exc
        except GeneratorExit as exc:
            raise self._generator_exit(event) from exc

    def _failed(self, exc: BaseException, event: Event) -> None:
        slot = self._slot
        slot.last_error = exc
        slot.crashed_on_notice = isinstance(event, NOTICE_EVENTS)

    def _cancelled(self, event: Event) -> HandlerCancelledError:
        """A ``CancelledError`` that did not cancel this actor left the handler: an ordinary crash
        of this one handler (the error's ``__cause__`` is the ``CancelledError``)."""
        error = HandlerCancelledError(
            f"handler {self._slot.name!r} let a CancelledError escape that was not a cancellation "
            "of the handler itself (it awaited something that another task cancelled): treated "
            "as a crash"
        )
        self._failed(error, event)
        return error

    def _generator_exit(self, event: Event) -> RuntimeError:
        """A ``GeneratorExit`` left the handler: an ordinary crash of this one handler, raised as a
        ``RuntimeError`` (its ``__cause__`` is the ``GeneratorExit``), as Python itself turns a
        ``StopIteration`` leaving a coroutine into one.

        It cannot be handed on as itself: thrown into an awaiting asyncio task (a publisher's),
        ``GeneratorExit`` closes that task's coroutines instead of raising in them, and the first
        ``await`` in their clean-up (an ``async with`` exit) fails with "coroutine ignored
        GeneratorExit". Nor is it a request to end the program, as ``SystemExit`` is."""
        error = RuntimeError(
            f"handler {self._slot.name!r} raised GeneratorExit: treated as a crash "
            "(a GeneratorExit belongs to the generator that received it and must not leave it)"
        )
        self._failed(error, event)
        return error


class _ResourcedHandlerActor(HandlerActor):
    """A handler with dependencies (built per incarnation, torn down by its stack) or a bus
    parameter."""

    __slots__ = ("_deps", "_needs_bus", "_stack")

    def __init__(self, slot: HandlerSlot) -> None:
        super().__init__(slot)
        params = slot.registered.spec.params
        self._deps = _NO_DEPS
        # only handlers with dependencies need a stack (an idle one costs ~1 KB)
        self._stack = AsyncExitStack() if any(p.kind == "dependency" for p in params) else None
        self._needs_bus = any(p.kind == "bus" for p in params)

    async def _open_dependencies(self) -> None:
        stack = self._stack
        assert stack is not None
        bus: EventBus[Event] = EventBus(self._dispatcher)
        try:
            self._deps = await open_dependencies(self._spec, self._dispatcher.providers, stack, bus)
        except BaseException as exc:
            self._slot.last_error = exc
            await stack.aclose()
            raise


#: the parameter kinds that need ``_ResourcedHandlerActor``
_RESOURCES = frozenset({"dependency", "bus"})


def _foreign(exc: asyncio.CancelledError) -> bool:
    """Whether an asyncio ``CancelledError`` did not come from a cancellation of this task."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return True  # not on asyncio (trio): nothing of ours raises asyncio's CancelledError
    # a cancel scope around us (kill, shutdown, a publisher's timeout inline) cancels the task,
    # which counts it in cancelling() until it is uncancelled
    return task is None or task.cancelling() == 0


class _ThreadRaisedGeneratorExit(Exception):
    """Carries a sync handler's ``GeneratorExit`` (its ``__cause__``) out of the worker thread: on
    asyncio the thread's future would throw it into the actor's task, which closes the task's
    coroutines instead of raising in them."""


def _call_boxed(
    func: Any, args: tuple[object, ...], kwargs: dict[str, object]
) -> tuple[object]:
    # boxed: trio refuses a coroutine returned from a worker thread, and this one is awaited
    try:
        return (func(*args, **kwargs),)
    except GeneratorExit as exc:
        raise _ThreadRaisedGeneratorExit from exc

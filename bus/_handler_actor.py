"""The actor that runs one registered handler: dependencies per incarnation, one message at a time."""

from __future__ import annotations

import contextlib
import functools
from contextlib import AsyncExitStack
from typing import Any

import anyio

from actors import Actor
from bus._bus import EventBus
from bus._dependencies import open_dependencies
from bus._dispatch import CURRENT_CHAIN, Dispatcher, HandlerSlot
from bus._events import Event, HandlerRestarted, MessageContext, describe_error


class HandlerActor(Actor):
    """Calls its handler for each delivery ``(event, context)`` (emit) or ``(event, context, None)``
    (publish). Dependencies live as long as the incarnation: a restart gets fresh ones."""

    __slots__ = (
        "_deps",
        "_dispatcher",
        "_func",
        "_needs_bus",
        "_own_chain",
        "_plain",
        "_slot",
        "_spec",
        "_stack",
        "_with_context",
    )

    def __init__(self, slot: HandlerSlot, dispatcher: Dispatcher) -> None:
        self._slot = slot
        self._dispatcher = dispatcher
        spec = slot.registered.spec
        self._func: Any = spec.func
        self._spec = spec
        self._own_chain = (slot,)
        self._deps: dict[str, object] = {}
        # only handlers with dependencies need a stack (an idle one costs ~1 KB)
        self._stack = (
            AsyncExitStack() if any(p.kind == "dependency" for p in spec.params) else None
        )
        # the common shapes skip building kwargs: (event) or (event, ctx), async
        self._with_context = spec.takes_context
        self._plain = spec.is_async and len(spec.params) == int(self._with_context)
        self._needs_bus = any(p.kind == "bus" for p in spec.params)

    async def on_start(self) -> None:
        if self._stack is not None:
            bus = EventBus(self._dispatcher)
            try:
                self._deps = await open_dependencies(
                    self._spec, self._dispatcher.providers, self._stack, bus
                )
            except BaseException:
                await self._stack.aclose()
                raise
        self._slot.actor = self
        # this task executes this handler: publishes from it consult the wait-for graph
        CURRENT_CHAIN.set(self._own_chain)
        incarnation = self.context.incarnation
        if incarnation > 1 and self._dispatcher.bus is not None:
            error = self._slot.last_error
            notice = HandlerRestarted(
                self._slot.name, incarnation - 1, describe_error(error) if error else ""
            )
            # a notice must never fail a restart (a full mailbox just loses the notice)
            with contextlib.suppress(Exception):
                self._dispatcher.bus.emit_nowait(notice)
        # deliveries dead-lettered by the crash that led here count for drain() until now
        self._dispatcher.release(self._slot)

    async def on_stop(self) -> None:
        if self._slot.actor is self:
            self._slot.actor = None
        if self._stack is not None:
            await self._stack.aclose()

    async def receive(self, message: Any) -> Any:
        if len(message) == 2:  # emitted: count it done once processed, for drain()
            event, context = message
            attempt = self._context.attempt
            if attempt != 1:
                # counted from the message's own attempt: 1 when emitted here, the delivery count
                # for an entry a transport took over from a dead consumer
                context = context.with_attempt(context.attempt + attempt - 1)
            if self._plain:
                try:
                    if self._with_context:
                        await self._func(event, context)
                    else:
                        await self._func(event)
                except Exception as exc:
                    self._slot.last_error = exc
                    raise
            else:
                await self.handle(event, context)
            dispatcher = self._dispatcher
            dispatcher.pending -= 1
            if type(message) is not tuple:  # a transport's delivery: acknowledge it upstream
                message.settle()
            if dispatcher.pending <= 0 and dispatcher.drain_waiters:
                dispatcher.wake_drainers()
        else:
            await self.handle(message[0], message[1])

    async def handle(self, event: Event, context: MessageContext) -> None:
        """Call the handler once; its exception propagates (and crashes the incarnation)."""
        try:
            if self._plain:
                if self._with_context:
                    await self._func(event, context)
                else:
                    await self._func(event)
                return
            bus = EventBus(self._dispatcher, context) if self._needs_bus else None
            args, kwargs = self._spec.arguments(event, context, bus, self._deps)
            if self._spec.is_async:
                await self._func(*args, **kwargs)
            else:
                # a thread cannot be interrupted: when the actor is killed the thread is
                # abandoned (it runs to completion in the background, its result ignored)
                await anyio.to_thread.run_sync(
                    functools.partial(self._func, *args, **kwargs), abandon_on_cancel=True
                )
        except Exception as exc:
            self._slot.last_error = exc
            raise

"""The README's quick start: publish, emit, drain, and a DeadLetter subscriber."""

import anyio

from bus import BusTerminal, DeadLetter, Event, MessageContext, MessageRegistry


class TodoCreated(Event):  # a frozen msgspec Struct; positional construction works
    name: str
    content: str


registry = MessageRegistry(event_base=Event)


@registry.register  # also usable as a plain call: registry.register(listen_create)
async def listen_create(created: TodoCreated, ctx: MessageContext) -> None:
    print(f"created {created.name!r} (attempt {ctx.attempt})")


@registry.register(retries=1, retry_backoff=0.01)  # a policy: 2 attempts, 10 ms apart
async def reject_empty(created: TodoCreated, ctx: MessageContext) -> None:
    if not created.content:
        raise ValueError(f"todo {created.name!r} has no content")


@registry.register
async def on_dead_letter(letter: DeadLetter, ctx: MessageContext) -> None:
    print(f"dead letter: {letter.handler} gave up after {letter.attempts} attempts: {letter.error}")


async def main() -> None:
    async with BusTerminal(registry) as terminal:
        bus = terminal.bus
        await bus.publish(TodoCreated("a", "b"))  # returns once every handler has run, in order
        await bus.emit(TodoCreated("c", "d"))  # returns once queued
        await bus.emit(TodoCreated("e", ""))  # reject_empty fails twice: a DeadLetter
        await terminal.drain()  # every mailbox empty, no handler running
        print(terminal.statistics())
    # leaving the block drains what is still queued, then stops the supervision tree


if __name__ == "__main__":
    anyio.run(main)

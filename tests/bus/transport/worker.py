"""A worker process for the multi-process tests and the demo: runs one handler over RedisStreams.

    python -m tests.bus.transport.worker URL NAMESPACE CONSUMER OUT [--delay S] [--claim-idle S]
        [--max-len N]

Each handled event appends one line ``<consumer> <n> <attempt>`` to OUT (an unbuffered write per
line, so what was handled before a SIGKILL is on disk). Prints ``ready`` once consuming; stops
cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import anyio

from bus import BusTerminal, Event, MessageContext, MessageRegistry
from bus.transport import RedisStreams


class Job(Event):
    """The event the multi-process tests emit."""

    __type_name__ = "tests.transport.job"
    n: int


def build(consumer: str, out: int, delay: float) -> MessageRegistry:
    registry = MessageRegistry()

    async def handle_job(job: Job, ctx: MessageContext) -> None:
        if delay:
            await anyio.sleep(delay)
        os.write(out, f"{consumer} {job.n} {ctx.attempt}\n".encode())

    registry.register(handle_job)
    return registry


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("namespace")
    parser.add_argument("consumer")
    parser.add_argument("out")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--claim-idle", type=float, default=1.0)
    parser.add_argument("--max-len", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args(argv)
    out = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    transport = RedisStreams(
        args.url,
        namespace=args.namespace,
        consumer=args.consumer,
        claim_idle=args.claim_idle,
        max_len=args.max_len,
        batch_size=args.batch_size,
    )
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with BusTerminal(build(args.consumer, out, args.delay), transport=transport):
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            async for _ in signals:
                break
    os.close(out)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:], backend="asyncio")

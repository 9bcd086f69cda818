"""Per-sender order: each sender's messages to one actor are processed in the order sent, whatever the
interleaving of senders, the mailbox bound, and restarts of the receiver (with redelivery, none lost)."""

from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings

from actors import Actor, MailboxSpec, Redelivery
from supervisor import ChildSpec, open_supervisor
from tests.actors.helpers import Boom
from tests.strategies import SendPlan, send_plans

pytestmark = pytest.mark.anyio


class Receiver(Actor):
    """Crashes on the first delivery of the plan's crashing messages, records everything else."""

    def __init__(self, plan: SendPlan, received: list[Any]) -> None:
        self.plan = plan
        self.received = received

    async def receive(self, message: Any) -> Any:
        if message in self.plan.crash_on and self.context.attempt == 1:
            raise Boom(f"crash on {message}")
        self.received.append(message)
        return self.context.incarnation


@settings(max_examples=30)
@given(plan=send_plans())
async def test_each_senders_messages_arrive_in_order_across_restarts_of_the_receiver(
    plan: SendPlan,
) -> None:
    received: list[Any] = []
    spec = ChildSpec(
        "receiver",
        lambda: Receiver(plan, received),
        mailbox=MailboxSpec(capacity=plan.capacity),
        redelivery=Redelivery(max_redeliveries=1),
    )

    # generous bound: a receiver that died unnoticed would leave the senders blocked for good
    with anyio.fail_after(10.0):
        async with open_supervisor([spec], intensity=None) as sup:
            ref = sup.ref("receiver")

            async def send_all(sender: int) -> None:
                for seq in range(1, plan.per_sender + 1):
                    await ref.tell((sender, seq))
                    if (sender, seq) in plan.pauses:
                        await anyio.lowlevel.checkpoint()

            async with anyio.create_task_group() as tg:
                for sender in range(plan.senders):
                    tg.start_soon(send_all, sender)
            incarnation = await ref.ask("end")  # queued behind every message sent

    expected = list(range(1, plan.per_sender + 1))
    for sender in range(plan.senders):
        assert [seq for s, seq in received[:-1] if s == sender] == expected
    assert len(received) == plan.senders * plan.per_sender + 1
    assert incarnation == 1 + len(plan.crash_on)

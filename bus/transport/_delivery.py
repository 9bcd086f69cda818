"""One stream entry on its way through a handler's mailbox, and the records waiting to be settled."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from bus.transport._group import GroupState


class Delivery(tuple[Any, ...]):
    """``(event, context)`` as the handler actor expects an emitted message, plus the stream entry
    it came from. Being a tuple subclass, it is told apart from local emits by ``type(...)``: the
    handler actor calls `settle` once the handler succeeded, and the runtime's dead letters of a
    delivery go to the transport, not to the local dead-letter path."""

    group: GroupState
    entry_id: bytes
    envelope: bytes

    def settle(self) -> None:
        """The handler succeeded: acknowledge the entry (batched with the group's next XACK)."""
        self.group.handled(self)


def make_delivery(
    event: Any, context: Any, group: GroupState, entry_id: bytes, envelope: bytes
) -> Delivery:
    delivery = Delivery((event, context))
    delivery.group = group
    delivery.entry_id = entry_id
    delivery.envelope = envelope
    return delivery


@attrs.define
class DeadRecord:
    """An entry on its way to the dead-letter stream (then acknowledged in its group)."""

    entry_id: bytes
    envelope: bytes
    handler: str
    reason: str
    error: str
    attempts: int
    message_id: str

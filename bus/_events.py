"""Events and the context that travels with each message."""

from __future__ import annotations

import time
import uuid
from typing import ClassVar

import msgspec


class Event(msgspec.Struct, frozen=True):
    """Base class of every event: a frozen msgspec Struct, positional construction works."""

    __type_name__: ClassVar[str]


def new_message_id() -> str:
    return uuid.uuid4().hex


class MessageContext(msgspec.Struct, frozen=True):
    """What travels with a message: identity, causality, delivery attempt and headers."""

    message_id: str = msgspec.field(default_factory=new_message_id)
    correlation_id: str = ""
    causation_id: str | None = None
    timestamp: float = msgspec.field(default_factory=time.time)
    attempt: int = 1
    headers: dict[str, str] = msgspec.field(default_factory=dict)

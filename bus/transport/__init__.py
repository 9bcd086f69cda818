"""Transports: ``emit`` across processes and machines.

`RedisStreams` carries emitted events through Redis Streams (optional extra ``actorbus[redis]``):
every handler is a consumer group, every process running it a consumer in that group. Give one
to ``BusTerminal(registry, transport=...)``. ``publish`` and ``sink`` stay as they are.
"""

from bus.transport._base import Transport, TransportError, TransportStatistics
from bus.transport._redis import RedisStreams

__all__ = ("RedisStreams", "Transport", "TransportError", "TransportStatistics")

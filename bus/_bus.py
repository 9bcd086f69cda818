"""The EventBus handle (stub: the real implementation lands with the bus core)."""

from __future__ import annotations


class EventBus:
    """The handle handlers and endpoints use to publish, emit and sink events."""

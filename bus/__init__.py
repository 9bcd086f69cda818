"""The event bus (stub until the bus issue lands)."""
from bus._events import Event, MessageContext

__all__ = ("Event", "MessageContext")

"""The event bus: Lihil's message system (publish, emit, sink) on supervised actors.

Every registered handler becomes an actor with its own mailbox under a supervision tree built by
``BusTerminal``. ``publish`` awaits each subscribed handler in registration order, ``emit`` queues and
returns, ``sink`` returns once the event is durably stored.
"""

from bus._bus import EventBus
from bus._codec import JSON, MSGPACK, Codec
from bus._dependencies import ProviderSpec
from bus._errors import (
    BusClosedError,
    BusError,
    HandlerCancelledError,
    HandlerStoppedError,
    MailboxFullError,
    RegistrationError,
    SinkError,
    SinkUnsetError,
    UnknownEventTypeError,
)
from bus._events import (
    DeadLetter,
    Event,
    HandlerRestarted,
    HandlerStopped,
    MessageContext,
    SupervisorGaveUp,
    event_class,
    event_type_name,
)
from bus._handlers import HandlerSpec, ParamSpec, RegisteredHandler
from bus._policy import HandlerPolicy
from bus._registry import MessageRegistry
from bus._terminal import BusStatistics, BusTerminal

__all__ = (
    "JSON",
    "MSGPACK",
    "BusClosedError",
    "BusError",
    "BusStatistics",
    "BusTerminal",
    "Codec",
    "DeadLetter",
    "Event",
    "EventBus",
    "HandlerCancelledError",
    "HandlerPolicy",
    "HandlerRestarted",
    "HandlerSpec",
    "HandlerStopped",
    "HandlerStoppedError",
    "MailboxFullError",
    "MessageContext",
    "MessageRegistry",
    "ParamSpec",
    "ProviderSpec",
    "RegisteredHandler",
    "RegistrationError",
    "SinkError",
    "SinkUnsetError",
    "SupervisorGaveUp",
    "UnknownEventTypeError",
    "event_class",
    "event_type_name",
)

"""Property-test your own handlers: record deliveries, inject faults, assert the bus's guarantees.

The core (`Recorder`, the assertions, fault plans, `run`) needs nothing beyond actorbus. The
Hypothesis strategies and the state machine need the ``testing`` extra
(``pip install 'actorbus[testing]'``): they are importable from here (loaded on first use) or from
`bus.testing.strategies` and `bus.testing.stateful`. The pytest plugin (fixtures ``bus_recorder``
and ``bus_terminal``) is registered by the distribution's entry point. See docs/testing.md.
"""

from typing import Any

from bus.testing._assertions import (
    DeliveryAssertionError,
    assert_at_least_once,
    assert_causal_order,
    assert_delivery_guarantees,
    assert_exactly_once,
    assert_failures_resolved,
    assert_fifo_per_sender,
    assert_nothing_after_stop,
    assert_publish_order,
)
from bus.testing._clock import backend_options, run
from bus.testing._faults import Fault, FaultPlan
from bus.testing._recorder import Recorder, SendingBus
from bus.testing._records import Delivery, InjectedFault, Notice, Send

#: names that need Hypothesis, by the module that defines them
_LAZY = {
    "events": "bus.testing.strategies",
    "interleavings": "bus.testing.strategies",
    "sends": "bus.testing.strategies",
    "fault_plans": "bus.testing.strategies",
    "BusStateMachine": "bus.testing.stateful",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bus.testing' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = (
    "BusStateMachine",
    "Delivery",
    "DeliveryAssertionError",
    "Fault",
    "FaultPlan",
    "InjectedFault",
    "Notice",
    "Recorder",
    "Send",
    "SendingBus",
    "assert_at_least_once",
    "assert_causal_order",
    "assert_delivery_guarantees",
    "assert_exactly_once",
    "assert_failures_resolved",
    "assert_fifo_per_sender",
    "assert_nothing_after_stop",
    "assert_publish_order",
    "backend_options",
    "events",
    "fault_plans",
    "interleavings",
    "run",
    "sends",
)

"""Supervision trees in the manner of Erlang/OTP.

Strategies one-for-one, one-for-all and rest-for-one; restart types permanent, transient and temporary;
restart intensity over a sliding window with escalation to the parent; ordered start and reverse-order
stop with shutdown timeouts; exponential restart backoff with jitter; watches; dynamic children; and a
printable snapshot of the whole tree.
"""

import logging

from supervisor._backoff import Backoff
from supervisor._child import ChildState
from supervisor._errors import (
    ChildNotFoundError,
    ChildStartError,
    RestartIntensityExceeded,
    SupervisorError,
)
from supervisor._open import open_supervisor
from supervisor._snapshot import ChildCounts, ChildInfo, TreeSnapshot
from supervisor._spec import (
    BRUTAL_KILL,
    INFINITY,
    ChildSpec,
    Intensity,
    Restart,
    Strategy,
    SupervisorSpec,
)
from supervisor._supervisor import Supervisor

# the library never configures logging: records go nowhere unless the application adds a handler
logging.getLogger("supervisor").addHandler(logging.NullHandler())

__all__ = (
    "BRUTAL_KILL",
    "INFINITY",
    "Backoff",
    "ChildCounts",
    "ChildInfo",
    "ChildNotFoundError",
    "ChildSpec",
    "ChildStartError",
    "ChildState",
    "Intensity",
    "Restart",
    "RestartIntensityExceeded",
    "Strategy",
    "Supervisor",
    "SupervisorError",
    "SupervisorSpec",
    "TreeSnapshot",
    "open_supervisor",
)

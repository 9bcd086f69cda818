"""The bus's loggers: ``bus`` and children, silent unless the application configures logging.

Records carry structured ``extra`` fields where they apply: ``handler`` (the handler's name),
``message_id`` and ``attempt``.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("bus")
logger.addHandler(logging.NullHandler())

#: restarts (INFO), give-ups (ERROR), provider teardown errors, abandoned sync-handler threads
handlers_logger = logging.getLogger("bus.handlers")
#: notices (DeadLetter, HandlerRestarted, ...) that could not be delivered
notices_logger = logging.getLogger("bus.notices")

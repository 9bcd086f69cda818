"""The check that asyncio-only clients (redis-py, asyncpg) make before they start."""

from __future__ import annotations

import asyncio

from bus._errors import BusError


def running_library() -> str:
    """The async library running this task: ``"asyncio"``, ``"trio"``, or a description."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return "asyncio"
    try:
        # sniffio comes with trio; anyio alone does not install it
        import sniffio
    except ImportError:
        return "an event loop other than asyncio"
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return "no event loop"


def require_asyncio(what: str, error: type[BusError]) -> None:
    """Raise ``error`` unless this task runs on asyncio, saying that ``what`` needs it."""
    library = running_library()
    if library != "asyncio":
        msg = f"{what} needs asyncio (its client library is asyncio-only), and this runs on {library}"
        raise error(msg)

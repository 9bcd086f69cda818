"""Durable storage for ``bus.sink(event)``: the `Sink` contract and the built-in sinks.

`SQLiteSink` is the embedded default (stdlib sqlite3, WAL, one transaction per batch);
`JSONLinesSink` appends one JSON envelope per line; `PostgresSink` writes to PostgreSQL (extra
``actorbus[postgres]``). Subclass `Sink` to store elsewhere.
"""

from bus.sinks._base import OnError, Sink
from bus.sinks._jsonl import JSONLinesSink
from bus.sinks._postgres import PostgresSink
from bus.sinks._sqlite import SQLiteSink

__all__ = ("JSONLinesSink", "OnError", "PostgresSink", "SQLiteSink", "Sink")

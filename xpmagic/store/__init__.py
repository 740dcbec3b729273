"""The SQLite store: schema migrations and typed reads and writes."""

from ._store import Store, utc_now

__all__ = ["Store", "utc_now"]

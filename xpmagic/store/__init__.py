"""The SQLite store: schema migrations and typed reads and writes."""

from ._store import Store, file_identity, utc_now

__all__ = ["Store", "file_identity", "utc_now"]

"""Where a study's Optuna storage lives.

By default a SQLite file beside the database (xpmagic.db -> xpmagic.optuna.db), which
optuna-dashboard opens unchanged. ``--storage postgresql://...`` (or
``%config XPMagics.optuna_storage``) puts it on a server that workers on other machines
reach. The URL recorded with the study never carries a password: workers get it from
PGPASSWORD or ~/.pgpass, as every libpq program does, or from their own ``--storage``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..errors import XPError, first_line
from ..store import file_identity
from ..store._postgres import is_database_url, redact


def optuna_path(db_path: Path) -> Path:
    """Optuna's storage file beside the database: xpmagic.db -> xpmagic.optuna.db."""
    return db_path.with_name(f"{db_path.stem}.optuna{db_path.suffix or '.db'}")


def default_url(db_path: Path) -> str:
    return f"sqlite:///{optuna_path(db_path)}"


def recorded_url(url: str) -> str:
    """The URL as recorded and shown: no password."""
    if url.startswith("sqlite"):
        return url
    from sqlalchemy.engine import make_url

    return make_url(url)._replace(password=None).render_as_string(hide_password=False)


def _sqlalchemy_url(url: str) -> str:
    """PostgreSQL through psycopg 3 (what the team extra installs), unless a driver is named."""
    scheme, rest = url.split("://", 1)
    return f"postgresql+psycopg://{rest}" if scheme in ("postgresql", "postgres") else url


# Each storage holds a pool of connections: one per study ran long sessions out of file
# descriptors. Studies of this process on the same URL share one (Optuna's storages serve many
# studies and threads); a SQLite file deleted and created anew gets a new one.
_OPEN: dict[str, tuple[Any, Any]] = {}
_OPEN_LOCK = threading.Lock()


def open_storage(url: str) -> Any:
    """An Optuna RDB storage, shared per URL; one clear line when the server cannot be reached."""
    with _OPEN_LOCK:
        cached = _OPEN.get(url)
        if cached is not None and cached[0] is not None and cached[0] == _identity(url):
            return cached[1]
        storage = _open_storage(url)
        _OPEN[url] = (_identity(url), storage)
        return storage


def _identity(url: str) -> Any:
    """Which file a SQLite URL names now (None: none); a server's URL names the same one."""
    return file_identity(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else url


def _open_storage(url: str) -> Any:
    import optuna

    if url.startswith("sqlite:///"):
        return _sqlite_storage(url)
    if not is_database_url(url):
        raise XPError(f"--storage takes sqlite:///FILE or postgresql://user@host/db, got {redact(url)!r}")
    try:
        return optuna.storages.RDBStorage(_sqlalchemy_url(url), engine_kwargs={"pool_pre_ping": True})
    except Exception as exc:  # SQLAlchemy's OperationalError, a missing driver, ...
        raise XPError(f"cannot open the Optuna storage {redact(url)}: {first_line(exc)}") from None


def _sqlite_storage(url: str) -> Any:
    """Writes take SQLite's lock up front, as the Store's do, so concurrent trials queue on the
    busy timeout instead of failing on a lock upgrade. The file is in WAL mode, like the
    database: readers (optuna-dashboard, the sidebar) never block trials, and a commit is an
    append instead of a synced rewrite (safe against a crashed kernel, as the Store is)."""
    import sqlite3

    import optuna
    from sqlalchemy import event

    path = url[len("sqlite:///"):]
    with sqlite3.connect(path, timeout=60) as conn:  # WAL is a property of the file: set it once
        conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    storage = optuna.storages.RDBStorage(
        url, engine_kwargs={"connect_args": {"timeout": 60, "isolation_level": None}})

    @event.listens_for(storage.engine, "connect")
    def _normal_sync(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")

    @event.listens_for(storage.engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    storage.engine.dispose()  # connections made while the tables were created reconnect with the pragma
    return storage

"""The knowledge table on a PostgreSQL server: one table a whole team feeds and draws from.

Only the knowledge lives here; runs and their provenance stay in each person's SQLite
file. The tables sit in their own schema (``xpmagic``) so they never collide with a
team database's other tables. The SQL is KnowledgeMixin's; this module supplies the
connection, the schema and the few statements PostgreSQL spells differently.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import MissingDependency, XPError, first_line
from ._knowledge import KnowledgeMixin

SCHEMA = "xpmagic"
_SCHEMA_LOCK = 0x78706D61  # advisory lock id: two first users must not both create the tables
_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.tasks (
    fingerprint TEXT PRIMARY KEY,
    name TEXT,
    meta TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.knowledge (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL,
    task_name TEXT,
    meta TEXT NOT NULL,
    model_family TEXT,
    config TEXT NOT NULL,
    metric TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('minimize', 'maximize')),
    score DOUBLE PRECISION NOT NULL,
    cost_s DOUBLE PRECISION,
    rating INTEGER,
    notes TEXT,
    "user" TEXT,
    created_at TEXT NOT NULL,
    origin TEXT NOT NULL,
    experiment TEXT,
    study TEXT,
    trial_number INTEGER,
    sampler TEXT
);
CREATE INDEX IF NOT EXISTS knowledge_by_family
    ON {SCHEMA}.knowledge (model_family, metric, direction, task, score);
CREATE INDEX IF NOT EXISTS knowledge_by_experiment ON {SCHEMA}.knowledge (experiment, id);
CREATE INDEX IF NOT EXISTS knowledge_rated
    ON {SCHEMA}.knowledge (model_family, metric, direction, id) WHERE rating IS NOT NULL;
CREATE TABLE IF NOT EXISTS {SCHEMA}.knowledge_tasks (
    model_family TEXT,
    metric TEXT NOT NULL,
    direction TEXT NOT NULL,
    task TEXT NOT NULL,
    task_name TEXT,
    meta TEXT NOT NULL,
    top TEXT NOT NULL,
    score_min DOUBLE PRECISION,
    score_max DOUBLE PRECISION,
    n INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS knowledge_tasks_key
    ON {SCHEMA}.knowledge_tasks ((coalesce(model_family, '')), metric, direction, task);
"""


def is_database_url(text: str | None) -> bool:
    return bool(text) and text.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def redact(url: str) -> str:
    """The URL without its password, for messages and records."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def libpq_url(url: str) -> str:
    """psycopg takes libpq URLs: drop an SQLAlchemy driver suffix (postgresql+psycopg://)."""
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


class _Connection:
    """sqlite3's calling convention (``?`` marks, ``total_changes``) over a psycopg connection."""

    def __init__(self, pg: Any, errors: type[Exception], url: str):
        self._pg = pg
        self._errors = errors
        self._url = url
        self.total_changes = 0

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, args: tuple | list = ()) -> Any:
        try:
            cursor = self._pg.execute(self._sql(sql), tuple(args))
        except self._errors as exc:
            raise XPError(f"the knowledge database {self._url} failed: {first_line(exc)}") from None
        self.total_changes += max(cursor.rowcount, 0)
        return cursor

    def executemany(self, sql: str, rows: list[tuple]) -> Any:
        cursor = self._pg.cursor()
        try:
            cursor.executemany(self._sql(sql), rows)
        except self._errors as exc:
            raise XPError(f"the knowledge database {self._url} failed: {first_line(exc)}") from None
        self.total_changes += max(cursor.rowcount, 0)
        return cursor


class PostgresKnowledge(KnowledgeMixin):
    _insert_ignore = "INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"
    _null_safe_equal = "IS NOT DISTINCT FROM"
    _upsert_summary = (
        "INSERT INTO knowledge_tasks ({columns}) VALUES ({marks})"
        " ON CONFLICT ((coalesce(model_family, '')), metric, direction, task) DO UPDATE SET"
        " task_name = excluded.task_name, meta = excluded.meta, top = excluded.top,"
        " score_min = excluded.score_min, score_max = excluded.score_max, n = excluded.n")

    def __init__(self, url: str, connect_timeout_s: int = 10):
        try:
            import psycopg
        except ImportError:
            raise MissingDependency("psycopg", "a PostgreSQL knowledge table", extra="team") from None
        self.url = redact(url)
        self.path = self.url  # what messages and row origins name
        self._lock = threading.RLock()
        try:
            pg = psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=connect_timeout_s,
                                 options=f"-c search_path={SCHEMA}")
        except psycopg.Error as exc:
            raise XPError(f"cannot reach the knowledge database {self.url}: {first_line(exc)}") from None
        self._pg = pg
        self._errors = psycopg.Error
        self.conn = _Connection(pg, psycopg.Error, self.url)
        with self._write() as conn:
            conn.execute(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
            for statement in _DDL.split(";"):
                if statement.strip():
                    conn.execute(statement)

    @contextmanager
    def _write(self) -> Iterator[_Connection]:
        with self._lock:
            try:
                with self._pg.transaction():
                    yield self.conn
            except self._errors as exc:
                raise XPError(f"the knowledge database {self.url} refused a write: {first_line(exc)}") from None

    def close(self) -> None:
        self._pg.close()

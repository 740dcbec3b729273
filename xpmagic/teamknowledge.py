"""Knowledge shared by a team through a PostgreSQL server.

With ``XPMAGIC_KNOWLEDGE=postgresql://...`` (or ``%config XPMagics.knowledge_url``), every
knowledge row is written to the local database first — provenance stays there and is never
lost — and then to the team's table, which recommendations read. When the server cannot be
reached, work goes on locally with one warning; ``xpmagic push --to URL`` publishes the rows
later (rows are keyed by run and metric, so pushing twice adds nothing).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import XPError
from .knowledge import KNOWLEDGE_ENV
from .store import Store
from .store._postgres import PostgresKnowledge, is_database_url, redact


def knowledge_location(configured: str = "") -> str | None:
    return configured or os.environ.get(KNOWLEDGE_ENV) or None


def open_knowledge(store: Store, configured: str = "") -> Any:
    """Where knowledge goes for this database: itself, a shared file, or a team server."""
    chosen = knowledge_location(configured)
    if is_database_url(chosen):
        return SharedKnowledge(store, chosen)
    if not chosen:
        return store
    path = Path(chosen).expanduser().resolve()
    return store if path == store.path else Store(path)


class SharedKnowledge:
    """Writes go to the local store, then to the team's table; reads come from the team's table
    (from the local one, with a warning, while the server cannot be reached)."""

    def __init__(self, local: Store, url: str, warn: Callable[[str], None] | None = None):
        self.local = local
        self._url = url
        self.path = redact(url)
        self._remote: PostgresKnowledge | None = None
        self._warn = warn or _print_warning
        self._warned = False

    def remote(self) -> PostgresKnowledge:
        if self._remote is None:
            self._remote = PostgresKnowledge(self._url)
        return self._remote

    def _share(self, write: Callable[[Any], Any]) -> None:
        try:
            write(self.remote())
        except XPError as exc:
            self._remote = None  # reconnect next time
            self._warn_once(f"{exc}; the knowledge is kept in {self.local.path} — publish it later "
                            f"with: xpmagic push --to {self.path}")

    def _read(self, read: Callable[[Any], Any]) -> Any:
        try:
            return read(self.remote())
        except XPError as exc:
            self._remote = None
            self._warn_once(f"{exc}; using the knowledge in {self.local.path} for now")
            return read(self.local)

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            self._warn(message)

    # -- writes: local first, then shared ------------------------------------------
    def save_task(self, fingerprint: str, name: str | None, meta: dict[str, Any], at: str) -> None:
        self.local.save_task(fingerprint, name, meta, at)
        self._share(lambda k: k.save_task(fingerprint, name, meta, at))

    def add_knowledge(self, rows: list[dict[str, Any]]) -> int:
        added = self.local.add_knowledge(rows)
        self._share(lambda k: k.add_knowledge(rows))
        return added

    def rate_knowledge(self, study: str, trial_number: int, rating: int) -> None:
        self.local.rate_knowledge(study, trial_number, rating)
        self._share(lambda k: k.rate_knowledge(study, trial_number, rating))

    def note_knowledge(self, study: str, notes: str) -> None:
        self.local.note_knowledge(study, notes)
        self._share(lambda k: k.note_knowledge(study, notes))

    # -- reads: the team's table --------------------------------------------------
    def knowledge_rows(self, **filters: Any) -> list[dict[str, Any]]:
        return self._read(lambda k: k.knowledge_rows(**filters))

    def best_per_task(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return self._read(lambda k: k.best_per_task(*args, **kwargs))

    def task_summaries(self, *args: Any, **kwargs: Any) -> list[Any]:
        return self._read(lambda k: k.task_summaries(*args, **kwargs))

    def task_rows(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return self._read(lambda k: k.task_rows(*args, **kwargs))

    def rated_rows(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return self._read(lambda k: k.rated_rows(*args, **kwargs))

    def knowledge_families(self) -> list[str]:
        return self._read(lambda k: k.knowledge_families())

    def knowledge_count(self) -> int:
        return self._read(lambda k: k.knowledge_count())

    def task_meta(self, fingerprint: str) -> dict[str, Any] | None:
        return self._read(lambda k: k.task_meta(fingerprint))

    def close(self) -> None:
        if self._remote is not None:
            self._remote.close()


def push(store: Store, url: str, *, experiment: str | None = None,
         run_ids: list[int] | None = None) -> dict[str, Any]:
    """Publish local knowledge rows (all, an experiment's, or some runs') to a team server."""
    if not is_database_url(url):
        raise XPError(f"push needs a PostgreSQL URL (postgresql://user@host/db), got {redact(url)!r}")
    rows = store.knowledge_rows(experiment=experiment)
    if run_ids:
        uuids = {store.get_run(run_id).uuid for run_id in run_ids}
        rows = [r for r in rows if r["uid"].split(":", 1)[0] in uuids]
    remote = PostgresKnowledge(url)
    try:
        for row in {r["task"]: r for r in rows}.values():
            remote.save_task(row["task"], row["task_name"], row["meta"], row["created_at"])
        added = remote.add_knowledge(rows)
    finally:
        remote.close()
    return {"to": redact(url), "rows": len(rows), "new": added, "already_there": len(rows) - added}


def _print_warning(message: str) -> None:
    print(f"xpmagic: {message}", file=sys.stderr)

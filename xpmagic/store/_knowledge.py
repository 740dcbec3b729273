"""Store methods for the knowledge table: what every finished run taught."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ._json import dumps

KNOWLEDGE_COLUMNS = ("uid", "task", "task_name", "meta", "model_family", "config", "metric",
                     "direction", "score", "cost_s", "rating", "notes", "user", "created_at",
                     "origin", "experiment", "study", "trial_number", "sampler")
_JSON = ("meta", "config")
_COLUMNS_SQL = ", ".join(f'"{c}"' for c in KNOWLEDGE_COLUMNS)  # quoted: "user" is reserved in PostgreSQL
_SUMMARY_COLUMNS = ("model_family", "metric", "direction", "task", "task_name", "meta", "top",
                    "score_min", "score_max", "n")


@dataclass
class TaskSummary:
    """One past task as the knowledge summaries describe it."""

    task: str
    name: str | None
    meta: dict[str, Any]
    score_min: float | None
    score_max: float | None
    rows: int
    top_json: str  # its best rows, best first: parsed by best(), for the few tasks that are used

    def best(self, count: int) -> list[dict[str, Any]]:
        return [{"task": self.task, "task_name": self.name, "meta": self.meta, **entry,
                 "task_min": self.score_min, "task_max": self.score_max, "task_rows": self.rows}
                for entry in json.loads(self.top_json)[:count]]


class KnowledgeMixin:
    """Mixed into Store (SQLite) and PostgresKnowledge: needs ``conn`` and ``_write``.

    The SQL is the subset both engines speak; the few statements that differ are the
    class attributes below, which the PostgreSQL backend overrides.
    """

    _insert_ignore = "INSERT OR IGNORE INTO {table} ({columns}) VALUES ({marks})"
    _null_safe_equal = "IS"
    _upsert_summary = ("INSERT OR REPLACE INTO knowledge_tasks ({columns}) VALUES ({marks})")

    def _insert_ignore_sql(self, table: str, columns: str, count: int) -> str:
        return self._insert_ignore.format(table=table, columns=columns, marks=", ".join("?" * count))

    def save_task(self, fingerprint: str, name: str | None, meta: dict[str, Any], at: str) -> None:
        with self._write() as conn:
            conn.execute(self._insert_ignore_sql("tasks", "fingerprint, name, meta, created_at", 4),
                         (fingerprint, name, dumps(meta), at))

    def task_meta(self, fingerprint: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT meta FROM tasks WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return None if row is None else json.loads(row[0])

    def add_knowledge(self, rows: list[dict[str, Any]]) -> int:
        """Insert rows; a row whose uid is already known is skipped. Returns how many were new."""
        if not rows:
            return 0
        with self._write() as conn:
            before = conn.total_changes
            conn.executemany(
                self._insert_ignore_sql("knowledge", _COLUMNS_SQL, len(KNOWLEDGE_COLUMNS)),
                [tuple(dumps(r.get(c)) if c in _JSON else r.get(c) for c in KNOWLEDGE_COLUMNS)
                 for r in rows])
            added = conn.total_changes - before
            groups = {(r.get("model_family"), r["metric"], r["direction"], r["task"]) for r in rows}
            for group in sorted(groups, key=str):
                self._refresh_task_summary(conn, *group)
            return added

    def _refresh_task_summary(self, conn: Any, family: str | None, metric: str, direction: str,
                              task: str, keep: int = 5) -> None:
        order = "DESC" if direction == "maximize" else "ASC"
        where = f"model_family {self._null_safe_equal} ? AND metric = ? AND direction = ? AND task = ?"
        args = (family, metric, direction, task)
        top = conn.execute(
            f"SELECT config, score, rating, trial_number, study, task_name, meta, cost_s FROM knowledge"
            f" WHERE {where} AND (rating IS NULL OR rating > 2) ORDER BY score {order}, id LIMIT ?",
            (*args, keep)).fetchall()
        lo, hi, n = conn.execute(f"SELECT min(score), max(score), count(*) FROM knowledge WHERE {where}",
                                 args).fetchone()
        if not top:
            conn.execute(f"DELETE FROM knowledge_tasks WHERE {where}", args)
            return
        entries = [{"config": json.loads(c), "score": sc, "rating": ra, "trial_number": tn, "study": st,
                    "cost_s": cost} for c, sc, ra, tn, st, _, _, cost in top]
        conn.execute(
            self._upsert_summary.format(columns=", ".join(_SUMMARY_COLUMNS),
                                        marks=", ".join("?" * len(_SUMMARY_COLUMNS))),
            (family, metric, direction, task, top[0][5], top[0][6], dumps(entries), lo, hi, n))

    def rate_knowledge(self, study: str, trial_number: int, rating: int) -> None:
        """A person's rating: poorly rated configurations stop being recommended."""
        with self._write() as conn:
            conn.execute("UPDATE knowledge SET rating = ? WHERE study = ? AND trial_number = ?",
                         (rating, study, trial_number))
            for group in conn.execute(
                    "SELECT DISTINCT model_family, metric, direction, task FROM knowledge"
                    " WHERE study = ? AND trial_number = ?", (study, trial_number)).fetchall():
                self._refresh_task_summary(conn, *group)

    def note_knowledge(self, study: str, notes: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE knowledge SET notes = ? WHERE study = ?", (notes, study))

    def knowledge_rows(self, *, model_family: str | None = None, metric: str | None = None,
                       experiment: str | None = None, limit: int | None = None,
                       newest_first: bool = False) -> list[dict[str, Any]]:
        sql = f"SELECT {_COLUMNS_SQL} FROM knowledge"
        filters = {"experiment": experiment, "model_family": model_family, "metric": metric}
        where = [f"{column} = ?" for column, value in filters.items() if value is not None]
        args = [value for value in filters.values() if value is not None]
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC" if newest_first else " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._knowledge_dict(row) for row in self.conn.execute(sql, args)]

    def task_summaries(self, model_family: str | None, metric: str, direction: str) -> list[TaskSummary]:
        """Every task's summary (kept up to date on insert: one row per task is read), by task.
        The metas are parsed at once; each task's best rows only when asked for."""
        found = self.conn.execute(
            "SELECT task, task_name, meta, top, score_min, score_max, n FROM knowledge_tasks"
            f" WHERE model_family {self._null_safe_equal} ? AND metric = ? AND direction = ? ORDER BY task",
            (model_family, metric, direction)).fetchall()
        metas = json.loads(f"[{','.join(row[2] for row in found)}]")  # one parse, not one per task
        return [TaskSummary(task, name, meta, lo, hi, n, top)
                for (task, name, _, top, lo, hi, n), meta in zip(found, metas)]

    def best_per_task(self, model_family: str | None, metric: str, direction: str,
                      per_task: int = 5) -> list[dict[str, Any]]:
        """The top rows of every task, best first, with each task's score range."""
        return [row for summary in self.task_summaries(model_family, metric, direction)
                for row in summary.best(per_task)]

    def task_rows(self, model_family: str | None, metric: str, direction: str, task: str,
                  limit: int = 64) -> list[dict[str, Any]]:
        """One task's best rows, best first; configurations rated 1-2 stars left out."""
        order = "DESC" if direction == "maximize" else "ASC"
        rows = self.conn.execute(
            f"SELECT config, score, cost_s, rating FROM knowledge WHERE model_family {self._null_safe_equal} ?"
            f" AND metric = ? AND direction = ? AND task = ? AND (rating IS NULL OR rating > 2)"
            f" ORDER BY score {order}, id LIMIT ?", (model_family, metric, direction, task, limit)).fetchall()
        configs = json.loads(f"[{','.join(c for c, _, _, _ in rows)}]")  # one parse: the guide reads thousands
        return [{"config": config, "score": sc, "cost_s": cost, "rating": ra}
                for config, (_, sc, cost, ra) in zip(configs, rows)]

    def rated_rows(self, model_family: str | None, metric: str, direction: str,
                   limit: int = 500) -> list[dict[str, Any]]:
        """The newest rows a person rated (low ratings included), each with its task's score range."""
        same = f"m.model_family {self._null_safe_equal} k.model_family AND m.metric = k.metric" \
               " AND m.direction = k.direction AND m.task = k.task"
        rows = self.conn.execute(
            f"SELECT k.task, k.config, k.score, k.cost_s, k.rating,"
            f" (SELECT min(m.score) FROM knowledge m WHERE {same}),"
            f" (SELECT max(m.score) FROM knowledge m WHERE {same})"
            f" FROM knowledge k WHERE k.model_family {self._null_safe_equal} ? AND k.metric = ?"
            " AND k.direction = ? AND k.rating IS NOT NULL ORDER BY k.id DESC LIMIT ?",
            (model_family, metric, direction, limit)).fetchall()
        return [{"task": t, "config": json.loads(c), "score": sc, "cost_s": cost, "rating": ra,
                 "task_min": lo, "task_max": hi} for t, c, sc, cost, ra, lo, hi in rows]

    def knowledge_families(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT model_family FROM knowledge_tasks WHERE model_family IS NOT NULL")]

    def knowledge_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM knowledge").fetchone()[0]

    @staticmethod
    def _knowledge_dict(row: tuple) -> dict[str, Any]:
        data = dict(zip(KNOWLEDGE_COLUMNS, row))
        for key in _JSON:
            data[key] = json.loads(data[key])
        return data

"""Store methods for optimization studies, their control requests and interactions."""

from __future__ import annotations

import json
from typing import Any

from .. import procinfo
from ..errors import UsageError
from ._json import dumps as _dumps

_STUDY_COLUMNS = ("id", "name", "experiment_id", "optuna_name", "storage", "metric", "direction",
                  "sampler", "seed", "state", "budget", "timeout_s", "jobs", "approve",
                  "constraints", "space", "code", "message", "n_done", "best_value", "best_params",
                  "created_at", "updated_at", "host", "pid", "pid_started")
_JSON_COLUMNS = ("constraints", "space", "best_params")
_SELECTED = ", ".join(f"s.{c}" for c in _STUDY_COLUMNS) + ", e.name"  # with the experiment's name


class StudiesMixin:
    """Mixed into Store: needs ``conn``, ``_write`` and ``experiment_id``."""

    def create_study(self, *, name: str, experiment: str, optuna_name: str, storage: str,
                     metric: str, direction: str, sampler: str, seed: int | None,
                     budget: int | None, timeout_s: float | None, jobs: int, approve: int,
                     constraints: list[str], space: dict, code: str, now: str) -> int:
        experiment_id = self.experiment_id(experiment)
        pid, marker = procinfo.current_process()
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO studies (name, experiment_id, optuna_name, storage, metric, direction,"
                " sampler, seed, state, budget, timeout_s, jobs, approve, constraints, space, code,"
                " created_at, updated_at, host, pid, pid_started)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, experiment_id, optuna_name, storage, metric, direction, sampler, seed,
                 budget, timeout_s, jobs, int(approve), _dumps(constraints), _dumps(space), code,
                 now, now, procinfo.host(), pid, marker),
            )
        return cursor.lastrowid

    def claim_study(self, study_id: int, now: str) -> None:
        """This process now drives the study (after --resume)."""
        pid, marker = procinfo.current_process()
        with self._write() as conn:
            conn.execute("UPDATE studies SET host = ?, pid = ?, pid_started = ?, state = 'running',"
                         " message = NULL, updated_at = ? WHERE id = ?",
                         (procinfo.host(), pid, marker, now, study_id))

    def update_study(self, study_id: int, now: str, **fields: Any) -> None:
        unknown = set(fields) - set(_STUDY_COLUMNS)
        if unknown:
            raise ValueError(f"unknown study columns {unknown}")
        values = [_dumps(v) if k in _JSON_COLUMNS else v for k, v in fields.items()]
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._write() as conn:
            conn.execute(f"UPDATE studies SET {assignments}, updated_at = ? WHERE id = ?",
                         (*values, now, study_id))

    def study(self, name: str) -> dict[str, Any]:
        """A study by its name, or the experiment's latest study (re-running a cell starts a new one)."""
        cursor = self.conn.execute(
            f"SELECT {_SELECTED} FROM studies s"
            " JOIN experiments e ON e.id = s.experiment_id"
            " WHERE s.name = ? OR e.name = ? ORDER BY s.id DESC LIMIT 1",
            (name, name))
        row = cursor.fetchone()
        if row is None:
            shown = name if len(name) <= 80 else name[:79] + "…"
            raise UsageError(f"no study named {shown!r}; list them with `xpmagic studies`")
        return self._study_dict(row)

    def studies(self) -> list[dict[str, Any]]:
        cursor = self.conn.execute(
            f"SELECT {_SELECTED} FROM studies s JOIN experiments e ON e.id = s.experiment_id ORDER BY s.id")
        return [self._study_dict(row) for row in cursor.fetchall()]

    def study_names_for(self, experiment: str) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT s.name FROM studies s JOIN experiments e ON e.id = s.experiment_id"
            " WHERE e.name = ? ORDER BY s.id", (experiment,))]

    @staticmethod
    def _study_dict(row: tuple) -> dict[str, Any]:
        data = dict(zip((*_STUDY_COLUMNS, "experiment"), row))
        for key in _JSON_COLUMNS:
            if data[key] is not None:
                data[key] = json.loads(data[key])
        data["approve"] = bool(data["approve"])
        return data

    # -- control requests from other processes ------------------------------
    def request_control(self, study_id: int, action: str, payload: dict, source: str, now: str) -> int:
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO study_controls (study_id, action, payload, source, requested_at)"
                " VALUES (?, ?, ?, ?, ?)", (study_id, action, _dumps(payload), source, now))
        return cursor.lastrowid

    def pending_controls(self, study_id: int) -> list[tuple[int, str, dict, str]]:
        return [(i, a, json.loads(p), s) for i, a, p, s in self.conn.execute(
            "SELECT id, action, payload, source FROM study_controls"
            " WHERE study_id = ? AND applied_at IS NULL ORDER BY id", (study_id,))]

    def mark_control_applied(self, control_id: int, result: str, now: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE study_controls SET applied_at = ?, result = ? WHERE id = ?",
                         (now, result, control_id))

    def control_result(self, control_id: int) -> tuple[str | None, str | None]:
        row = self.conn.execute("SELECT applied_at, result FROM study_controls WHERE id = ?",
                                (control_id,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    # -- interactions -------------------------------------------------------
    def record_interaction(self, study_id: int, action: str, source: str, before: Any,
                           after: Any, now: str, trial_number: int | None = None) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO interactions (study_id, at, action, source, before, after, trial_number)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (study_id, now, action, source, _dumps(before), _dumps(after), trial_number))

    def interactions(self, study_id: int) -> list[dict[str, Any]]:
        return [
            {"at": at, "action": action, "source": source, "before": json.loads(b),
             "after": json.loads(a), "trial": trial}
            for at, action, source, b, a, trial in self.conn.execute(
                "SELECT at, action, source, before, after, trial_number FROM interactions"
                " WHERE study_id = ? ORDER BY id", (study_id,))]

    def best_trial_run(self, study_id: int) -> int | None:
        """The run of the study's best complete trial (infeasible and failed trials never count)."""
        study = self.conn.execute("SELECT metric, direction FROM studies WHERE id = ?", (study_id,)).fetchone()
        if study is None:
            return None
        order = "DESC" if study[1] == "maximize" else "ASC"
        row = self.conn.execute(
            "SELECT r.id FROM runs r JOIN metrics m ON m.run_id = r.id AND m.name = ?"
            " WHERE r.study_id = ? AND r.trial_state = 'complete' AND m.last IS NOT NULL"
            f" ORDER BY m.last {order}, r.trial_number LIMIT 1", (study[0], study_id)).fetchone()
        return None if row is None else row[0]

    def trial_results(self, study_id: int) -> dict[int, tuple[int, str, float | None]]:
        """Trial number -> (run id, trial state, the study's metric as logged), for every trial run."""
        rows = self.conn.execute(
            "SELECT r.trial_number, r.id, r.trial_state, m.last FROM runs r JOIN studies s ON s.id = r.study_id"
            " LEFT JOIN metrics m ON m.run_id = r.id AND m.name = s.metric"
            " WHERE r.study_id = ? AND r.trial_number IS NOT NULL", (study_id,))
        return {number: (run_id, state, value) for number, run_id, state, value in rows}

    def is_replay_study(self, study_id: int) -> bool:
        """Whether the study's trials were a replay's, linked to an earlier study's (replay.py)."""
        return self.conn.execute("SELECT 1 FROM runs WHERE study_id = ? AND replay_of IS NOT NULL LIMIT 1",
                                 (study_id,)).fetchone() is not None

    def study_runs(self, study_id: int) -> list[tuple[int, int, str, str]]:
        return self.conn.execute(
            "SELECT id, trial_number, status, trial_state FROM runs WHERE study_id = ?"
            " ORDER BY trial_number", (study_id,)).fetchall()

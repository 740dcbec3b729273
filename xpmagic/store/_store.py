"""The Store: the only module that writes SQL.

One SQLite file in WAL mode, shared by kernels, the CLI and (later) the server.
Writers take the write lock up front (BEGIN IMMEDIATE) so that concurrent
processes queue on SQLite's busy timeout instead of failing on a lock upgrade.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import clock, procinfo
from ..errors import DatabaseCorrupt, DatabaseLocked, DatabaseNotFound, DatabaseTooNew, RunNotFound
from ..fingerprint import SCHEME as FINGERPRINT_SCHEME
from ..fingerprint import SETTING_KINDS, why_unhashed
from ..records import ErrorInfo, MetricChunk, NewRun, ParamSpec, Run, RunOutcome, RunStatus, param_value
from ..redaction import scrub
from ..studystate import shown_state
from . import _schema
from ._json import dumps as _dumps
from ._knowledge import KnowledgeMixin
from ._phases import PhasesMixin
from ._studies import StudiesMixin

BUSY_TIMEOUT_S = 60.0


def utc_now() -> str:
    return clock.iso()


def file_identity(path: str | Path) -> tuple[int, int] | None:
    """Which file a path names now (device, inode), or None: tells a database deleted and
    created anew from the one a connection still holds open."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def time_ordered_uuid() -> str:
    """A UUIDv7 (RFC 9562) in hex: the millisecond time first, so a new run's uuid lands
    at the end of the unique index instead of on a random page (one page per commit)."""
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 4122 variant
    return f"{value:032x}"


def _dumps_floats(values: list[float]) -> str:
    """JSON for a list of floats; NaN becomes null and infinities 1e999 (valid JSON)."""
    try:
        return json.dumps(values, separators=(",", ":"), allow_nan=False)
    except ValueError:
        cleaned = [None if v != v else v for v in values]
        text = json.dumps(cleaned, separators=(",", ":"))
        return text.replace("-Infinity", "-1e999").replace("Infinity", "1e999")


def _loads_floats(text: str) -> list[float]:
    return [math.nan if v is None else v for v in json.loads(text)]


class Store(StudiesMixin, PhasesMixin, KnowledgeMixin):
    """Typed access to one xpmagic database."""

    def __init__(self, path: str | Path, *, create: bool = True):
        self.path = Path(path).expanduser().resolve()
        if self.path.is_dir():
            raise DatabaseCorrupt(f"{self.path} is a folder, not a database file; name a file in it, "
                                  f"such as {self.path / 'xpmagic.db'} (--db, XPMAGIC_DB or %config XPMagics.db_path)")
        existed = self.path.exists()
        if not existed:
            if not create:
                raise DatabaseNotFound(
                    f"no xpmagic database at {self.path}; run an %%experiment cell first, "
                    "or pass --db / set XPMAGIC_DB to the file you mean"
                )
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseCorrupt(_cannot_create(self.path, exc.strerror or str(exc))) from None
        # No peeking at the file's header with open(): closing any descriptor of the file drops
        # every POSIX lock this process holds on it, and another process then deletes the WAL
        # from under this process's open connections ("disk I/O error"). SQLite reports a file
        # that is not a database itself, without writing to it.
        self._lock = threading.RLock()
        self._experiment_ids: dict[str, int] = {}
        self._environment_ids: dict[str, int] = {}
        self._git_state_ids: dict[str, int] = {}  # hash -> id, of committed rows only
        self._local_code_ids: dict[str, int] = {}
        self._local_code_by_versions: dict[tuple, int] = {}  # (module, path, sha256) of each -> id
        try:
            self.conn = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                check_same_thread=False,
            )
            self.conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
            self.mark_dead_runs_interrupted()
        except sqlite3.DatabaseError as exc:
            if "file is not a database" in str(exc):
                raise DatabaseCorrupt(
                    f"{self.path} is not a SQLite database (corrupt, or another kind of file); "
                    "move it aside or choose another file (--db, XPMAGIC_DB or %config XPMagics.db_path)"
                ) from None
            if not existed:
                raise DatabaseCorrupt(_cannot_create(self.path, str(exc))) from None
            raise DatabaseCorrupt(
                f"{self.path} cannot be read as an xpmagic database ({exc}); "
                "move it aside or choose another file (--db, XPMAGIC_DB or %config XPMagics.db_path)"
            ) from None

    # -- schema ------------------------------------------------------------
    def _applied_migrations(self) -> list[str]:
        """As sqlite-utils lists them (Migrations.applied), without importing it on every open."""
        if not self._table_names() & {_schema.MIGRATIONS_TABLE}:
            return []
        return [name for (name,) in self.conn.execute(
            f"SELECT name FROM {_schema.MIGRATIONS_TABLE} WHERE migration_set = ? ORDER BY rowid",
            (_schema.MIGRATION_SET,))]

    def _table_names(self) -> set[str]:
        return {name for (name,) in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _migrate(self) -> None:
        known = _schema.known_migrations()
        applied = self._applied_migrations()
        self._refuse_if_newer(applied, known)
        if applied == known:
            return
        with self._write():  # one writer migrates; the others wait and find it done
            applied = self._applied_migrations()
            self._refuse_if_newer(applied, known)
            if len(applied) == 0 and self._has_foreign_tables():
                raise DatabaseCorrupt(
                    f"{self.path} is a SQLite database of another application; "
                    "choose another file (--db, XPMAGIC_DB or %config XPMagics.db_path)"
                )
            from sqlite_utils import Database

            _schema.migrations().apply(Database(self.conn))

    def _refuse_if_newer(self, applied: list[str], known: list[str]) -> None:
        unknown = [name for name in applied if name not in known]
        if unknown:
            raise DatabaseTooNew(
                f"{self.path} was written by a newer xpmagic (schema {unknown[-1]}); "
                "upgrade with: pip install -U xpmagic"
            )

    def _has_foreign_tables(self) -> bool:
        names = self._table_names() - {_schema.MIGRATIONS_TABLE}
        return bool(names)

    def schema_version(self) -> str:
        return self._applied_migrations()[-1]

    # -- transactions --------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding SQLite's write lock from the start."""
        with self._lock:
            self._begin_immediate()
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    def _begin_immediate(self) -> None:
        # busy_timeout covers nearly all waiting; this loop covers the rest
        # (e.g. a WAL checkpoint racing the lock) so "locked" never reaches a user.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise DatabaseLocked(
                        f"{self.path} stayed locked by another program for {BUSY_TIMEOUT_S:.0f} s (a write it has "
                        "not committed, such as unsaved changes in a database browser): commit or close it, "
                        "then try again") from None
                time.sleep(0.01)

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    # -- writing runs ----------------------------------------------------------
    def experiment_id(self, name: str) -> int:
        cached = self._experiment_ids.get(name)
        if cached is not None:
            return cached
        row = self.conn.execute("SELECT id FROM experiments WHERE name = ?", (name,)).fetchone()
        if row is None:
            with self._write() as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO experiments (name, created_at) VALUES (?, ?)",
                    (name, utc_now()),
                )
                row = conn.execute("SELECT id FROM experiments WHERE name = ?", (name,)).fetchone()
        self._experiment_ids[name] = row[0]
        return row[0]

    def local_code_id(self, modules: list[Any]) -> int | None:
        """Id of a set of the person's module versions (localcode.LocalModule), stored once per
        distinct set; each version's source once. None when no such module is loaded."""
        if not modules:
            return None
        versions = tuple((m.module, m.path, m.sha256) for m in modules)
        known = self._local_code_by_versions.get(versions)  # every cell asks: no JSON, no hashing then
        if known is not None:
            return known
        listed = [m.to_dict() for m in modules]
        key = hashlib.sha256(_dumps(listed).encode()).hexdigest()
        cached = self._local_code_ids.get(key)
        if cached is not None:
            self._local_code_by_versions[versions] = cached
            return cached
        with self._write() as conn:
            conn.executemany("INSERT OR IGNORE INTO code_sources (sha256, source) VALUES (?, ?)",
                             [(m.sha256, m.source) for m in modules if m.source is not None])
            conn.execute("INSERT OR IGNORE INTO local_code (hash, modules) VALUES (?, ?)", (key, _dumps(listed)))
            row = conn.execute("SELECT id FROM local_code WHERE hash = ?", (key,)).fetchone()
        self._local_code_ids[key] = self._local_code_by_versions[versions] = row[0]
        return row[0]

    def code_source(self, sha256: str) -> str | None:
        row = self.conn.execute("SELECT source FROM code_sources WHERE sha256 = ?", (sha256,)).fetchone()
        return row[0] if row else None

    def environment_id(self, snapshot: dict[str, Any]) -> int:
        """Id of an environment snapshot, stored once per distinct snapshot."""
        key = snapshot["hash"]
        cached = self._environment_ids.get(key)
        if cached is not None:
            return cached
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO environments (hash, python, platform, packages, env_vars)"
                " VALUES (?, ?, ?, ?, ?)",
                (key, snapshot["python"], snapshot["platform"],
                 _dumps(snapshot["packages"]), _dumps(snapshot["env_vars"])),
            )
            row = conn.execute("SELECT id FROM environments WHERE hash = ?", (key,)).fetchone()
        self._environment_ids[key] = row[0]
        return row[0]

    def start_run(self, new: NewRun) -> tuple[int, str]:
        """Insert a run in state 'running'; returns (id, uuid)."""
        experiment_id = self.experiment_id(new.experiment)
        run_uuid = time_ordered_uuid()
        pid, marker = procinfo.current_process()
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (uuid, experiment_id, status, started_at, code, code_hash,"
                " notebook, cell_id, seed, tags, note, phase, environment_id, host, pid,"
                " pid_started, user, study_id, trial_number, trial_state, replay_of, fingerprint_scheme)"
                " VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_uuid, experiment_id, new.started_at, new.code, new.code_hash, new.notebook,
                 new.cell_id, new.seed, _dumps(new.tags), new.note, new.phase,
                 new.environment_id, procinfo.host(), pid, marker, procinfo.user(),
                 new.study_id, new.trial_number, None if new.study_id is None else "running",
                 new.replay_of, FINGERPRINT_SCHEME),
            )
        return cursor.lastrowid, run_uuid

    def write_metric_chunks(self, run_id: int, chunks: list[MetricChunk]) -> None:
        with self._write() as conn:
            self._insert_chunks(conn, run_id, chunks)

    @staticmethod
    def _insert_chunks(conn: sqlite3.Connection, run_id: int, chunks: list[MetricChunk]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO metric_points (run_id, name, chunk, steps, vals)"
            " VALUES (?, ?, ?, ?, ?)",
            [(run_id, c.name, c.chunk, _dumps(c.steps), _dumps_floats(c.values)) for c in chunks],
        )

    def finish_run(self, run_id: int, outcome: RunOutcome) -> None:
        """Write everything a run produced, atomically, and set its final status (with no
        secret of the environment in it: redaction.py)."""
        outcome = scrub(outcome)
        error = outcome.error
        git_state_id = None
        with self._write() as conn:
            if outcome.git_state is not None:
                git_state_id = self._git_state_id(conn, outcome.git_state)
            conn.execute(
                "UPDATE runs SET status = ?, ended_at = ?, duration_s = ?, stdout = ?, stderr = ?,"
                " result = ?, error_type = ?, error_message = ?, error_traceback = ?,"
                " environment_id = coalesce(?, environment_id), git_state_id = coalesce(?, git_state_id),"
                " local_code_id = coalesce(?, local_code_id),"
                " trial_state = coalesce(?, trial_state), host = coalesce(?, host), imports = ?, definitions = ?"
                " WHERE id = ?",
                (outcome.status.value, outcome.ended_at, outcome.duration_s, outcome.stdout,
                 outcome.stderr, outcome.result, error and error.type, error and error.message,
                 error and error.traceback, outcome.environment_id, git_state_id, outcome.local_code_id,
                 outcome.trial_state,
                 outcome.host, _dumps(outcome.imports) if outcome.imports else None,
                 _dumps(outcome.definitions) if outcome.definitions else None, run_id),
            )
            if outcome.params:
                conn.executemany(
                    "INSERT OR REPLACE INTO params (run_id, name, value, low, high, log, step,"
                    " choices) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, p.name, _dumps(p.value), p.low, p.high, int(p.log), p.step,
                      None if p.choices is None else _dumps(list(p.choices)))
                     for p in outcome.params],
                )
            if outcome.metrics:
                conn.executemany(
                    "INSERT OR REPLACE INTO metrics (run_id, name, last, last_step, min, max, count)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, m.name, _none_if_nan(m.last), m.last_step,  # an infinity is a result (it diverged)
                      _none_if_nan(m.min), _none_if_nan(m.max), m.count)
                     for m in outcome.metrics],
                )
            if outcome.metric_chunks:
                self._insert_chunks(conn, run_id, outcome.metric_chunks)
            if outcome.variables:
                conn.executemany(
                    "INSERT OR REPLACE INTO run_variables (run_id, direction, name, fingerprint,"
                    " kind, summary) VALUES (?, ?, ?, ?, ?, ?)",
                    [(run_id, v.direction, v.name, v.fingerprint, v.kind, _dumps(v.summary))
                     for v in outcome.variables],
                )
            if outcome.lineage:
                conn.executemany(
                    "INSERT OR IGNORE INTO lineage (run_id, source_run_id, variable) VALUES (?, ?, ?)",
                    [(run_id, source, name) for source, name in outcome.lineage],
                )
            if outcome.datasets:
                conn.executemany(
                    "INSERT OR REPLACE INTO datasets (run_id, name, fingerprint, kind, shape,"
                    " dtypes, target) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, d.name, d.fingerprint, d.kind, _dumps(d.shape), _dumps(d.dtypes),
                      None if d.target is None else _dumps(d.target)) for d in outcome.datasets],
                )
            if outcome.displays:
                conn.executemany(
                    "INSERT OR REPLACE INTO run_displays (run_id, position, mime, sha256, size, data)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [(run_id, d.position, d.mime, d.sha256, d.size, d.data) for d in outcome.displays],
                )
            if outcome.artifacts:
                conn.executemany(
                    "INSERT OR REPLACE INTO artifacts (run_id, name, path, sha256, size)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [(run_id, a.name, a.path, a.sha256, a.size) for a in outcome.artifacts],
                )
        if git_state_id is not None:
            self._git_state_ids[outcome.git_state["hash"]] = git_state_id

    def set_git_state(self, run_ids: list[int], state: dict[str, Any]) -> None:
        """Attach a git snapshot (stored once per distinct state) to runs."""
        with self._write() as conn:
            state_id = self._git_state_id(conn, state)
            conn.executemany(
                "UPDATE runs SET git_state_id = ? WHERE id = ?", [(state_id, i) for i in run_ids]
            )
        self._git_state_ids[state["hash"]] = state_id  # committed: safe to remember

    def _git_state_id(self, conn: sqlite3.Connection, state: dict[str, Any]) -> int:
        state_id = self._git_state_ids.get(state["hash"])
        if state_id is None:
            conn.execute(
                "INSERT OR IGNORE INTO git_states (hash, root, commit_sha, branch, dirty, diff_hash)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (state["hash"], state["root"], state["commit"], state["branch"],
                 int(state["dirty"]), state["diff_hash"]),
            )
            (state_id,) = conn.execute(
                "SELECT id FROM git_states WHERE hash = ?", (state["hash"],)
            ).fetchone()
        return state_id

    def mark_dead_runs_interrupted(self) -> int:
        """Runs left 'running' by a process on this host that no longer exists."""
        rows = self.conn.execute(
            "SELECT id, pid, pid_started, started_at FROM runs"
            " WHERE status = 'running' AND host = ?", (procinfo.host(),),
        ).fetchall()
        dead = [row for row in rows if not procinfo.is_alive(row[1], row[2])]
        if not dead:
            return 0
        now = utc_now()
        with self._write() as conn:
            conn.executemany(
                "UPDATE runs SET status = 'interrupted', ended_at = ?,"
                " trial_state = CASE trial_state WHEN 'running' THEN 'failed' ELSE trial_state END,"
                " error_type = 'ProcessDied', error_message = ? WHERE id = ? AND status = 'running'",
                [(now, f"process {pid} ended before the run finished", run_id)
                 for run_id, pid, _, _ in dead],
            )
        return len(dead)

    # -- reading -------------------------------------------------------------
    def find_producer(self, fingerprint: str, name: str | None, before_run: int) -> int | None:
        """Latest earlier run that wrote a value with this fingerprint (and name, if given) without
        having read it: a run that copied a value it read (`out = df.copy()`) did not produce it."""
        sql = ("SELECT run_id FROM run_variables v WHERE fingerprint = ? AND direction = 'out' AND run_id < ?"
               " AND NOT EXISTS (SELECT 1 FROM run_variables i WHERE i.run_id = v.run_id AND i.direction = 'in'"
               " AND i.fingerprint = v.fingerprint)")
        args: list[Any] = [fingerprint, before_run]
        if name is not None:
            sql += " AND name = ?"
            args.append(name)
        row = self.conn.execute(sql + " ORDER BY run_id DESC LIMIT 1", args).fetchone()
        return row[0] if row else None

    def experiments(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT e.name, count(r.id), max(r.started_at) FROM experiments e"
            " LEFT JOIN runs r ON r.experiment_id = e.id GROUP BY e.id ORDER BY e.name"
        ).fetchall()
        return [{"name": n, "runs": c, "last_started_at": last} for n, c, last in rows]

    def run_ids(self, experiment: str | None = None, limit: int | None = None) -> list[int]:
        sql = "SELECT r.id FROM runs r"
        args: list[Any] = []
        if experiment is not None:
            sql += " JOIN experiments e ON e.id = r.experiment_id WHERE e.name = ?"
            args.append(experiment)
        sql += " ORDER BY r.id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [row[0] for row in self.conn.execute(sql, args)]

    def list_runs(self, experiment: str | None = None, limit: int | None = None) -> list[Run]:
        """Runs, newest first, with params and metrics (not code or outputs)."""
        ids = self.run_ids(experiment, limit)
        return self.list_runs_by_ids(ids) if ids else []

    def list_runs_by_ids(self, ids: list[int]) -> list[Run]:
        rows = self._runs_rows(ids, light=True)
        params = self._params_for(ids)
        metrics = self._metrics_for(ids)
        return [self._run_from_row(row, params.get(row["id"], {}), metrics.get(row["id"], {}))
                for row in rows]

    def get_run(self, run_id: int) -> Run:
        rows = self._runs_rows([run_id], light=False) if 0 < run_id < 2**63 else []  # SQLite's integers
        if not rows:
            raise RunNotFound(
                f"no run {run_id} in {self.path}; list runs with %xp runs or `xpmagic runs`"
            )
        row = rows[0]
        specs = self._param_specs(run_id)
        metrics = self._metrics_for([run_id]).get(run_id, {})
        variables = self.conn.execute(
            "SELECT direction, name, fingerprint, kind, summary FROM run_variables WHERE run_id = ?"
            " ORDER BY direction DESC, name", (run_id,),  # 'out' first: what it read wins below
        ).fetchall()
        return self._run_from_row(
            row, {s.name: s.value for s in specs}, metrics,
            param_specs=specs,
            inputs={n: f for d, n, f, _, _ in variables if d == "in"},
            outputs={n: f for d, n, f, _, _ in variables if d == "out"},
            settings={n: json.loads(summary) for _, n, _, kind, summary in variables if kind in SETTING_KINDS},
            sampled=sorted({n for _, n, _, _, summary in variables if summary and '"sampled":true' in summary}),
            boosted=sorted({n for _, n, _, _, summary in variables if summary and '"booster":true' in summary}),
            unhashed={n: why_unhashed(json.loads(summary)) for _, n, f, _, summary in variables
                      if f is None and summary},
            models={n: json.loads(summary) for _, n, f, kind, summary in variables
                    if kind == "model" and f is not None and summary},
            lineage=self.lineage_sources(run_id),
            imports=json.loads(row["imports"] or "[]"),
            definitions=json.loads(row["definitions"] or "[]"),
            datasets=self._datasets(run_id),
            artifacts=self._artifacts(run_id),
            displays=self._displays(run_id),
            local_code=self._local_code(row["local_code_id"]),
            env=self._environment(row["environment_id"]),
            git=self._git_state(row["git_state_id"]),
            study=self._study_name(row["study_id"]),
        )

    def _study_name(self, study_id: int | None) -> str | None:
        if study_id is None:
            return None
        row = self.conn.execute("SELECT name FROM studies WHERE id = ?", (study_id,)).fetchone()
        return row[0] if row else None

    def lineage_sources(self, run_id: int) -> list[int]:
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT source_run_id FROM lineage WHERE run_id = ? ORDER BY source_run_id",
            (run_id,))]

    def lineage_edges(self, run_id: int) -> list[tuple[int, str]]:
        return self.conn.execute(
            "SELECT source_run_id, variable FROM lineage WHERE run_id = ?"
            " ORDER BY source_run_id, variable", (run_id,),
        ).fetchall()

    def metric_series(self, run_id: int, name: str) -> tuple[list[int], list[float]]:
        steps: list[int] = []
        values: list[float] = []
        for step_text, value_text in self.conn.execute(
            "SELECT steps, vals FROM metric_points WHERE run_id = ? AND name = ? ORDER BY chunk",
            (run_id, name),
        ):
            steps.extend(json.loads(step_text))
            values.extend(_loads_floats(value_text))
        if not steps:  # logged once: only the summary row exists
            row = self.conn.execute(
                "SELECT last_step, last, count FROM metrics WHERE run_id = ? AND name = ?",
                (run_id, name)).fetchone()
            if row is not None and row[2] == 1:
                return [row[0]], [math.nan if row[1] is None else row[1]]
        return steps, values

    def experiment_overview(self) -> list[dict[str, Any]]:
        """Per experiment: run count, last activity, its main metric and best value, studies."""
        from ..knowledge import guess_direction

        overview = []
        for exp_id, name, runs, last in self.conn.execute(
                "SELECT e.id, e.name, count(r.id), max(r.started_at) FROM experiments e"
                " LEFT JOIN runs r ON r.experiment_id = e.id GROUP BY e.id ORDER BY max(r.started_at) DESC"):
            metric_row = self.conn.execute(
                "SELECT m.name, count(*) FROM metrics m JOIN runs r ON r.id = m.run_id"
                " WHERE r.experiment_id = ? GROUP BY m.name ORDER BY count(*) DESC, m.name LIMIT 1",
                (exp_id,)).fetchone()
            best = None
            if metric_row:
                pick = "max" if guess_direction(metric_row[0]) == "maximize" else "min"
                best = self.conn.execute(
                    f"SELECT {pick}(m.last) FROM metrics m JOIN runs r ON r.id = m.run_id"
                    " WHERE r.experiment_id = ? AND m.name = ? AND r.status = 'ok'",
                    (exp_id, metric_row[0])).fetchone()[0]
            studies = [self._study_overview(dict(zip(("name", "state", "n_done", "budget", "best_value", "message",
                                                      "host", "pid", "pid_started"), row)))
                       for row in self.conn.execute(
                           "SELECT name, state, n_done, budget, best_value, message, host, pid, pid_started"
                           " FROM studies WHERE experiment_id = ? ORDER BY id", (exp_id,))]
            overview.append({"name": name, "runs": runs, "last_activity": last,
                             "metric": metric_row[0] if metric_row else None, "best": best,
                             "studies": studies})
        return overview

    @staticmethod
    def _study_overview(record: dict[str, Any]) -> dict[str, Any]:
        state, message = shown_state(record)  # a study its killed kernel left 'running' is interrupted
        return {"name": record["name"], "state": state, "n_done": record["n_done"], "budget": record["budget"],
                "best_value": record["best_value"], "message": message}

    def page_runs(self, *, experiment: str | None, limit: int, offset: int, sort: str, order: str,
                  status: str | None) -> dict[str, Any]:
        """One page of runs, sorted on the server. ``sort`` is validated by the caller:
        a fixed column, or metrics.NAME / params.NAME whose NAME is bound as a value."""
        from ..queries import run_summary_dict

        joins, where, args = "", [], []
        if experiment is not None:
            where.append("e.name = ?")
            args.append(experiment)
        if status is not None:
            where.append("r.status = ?")
            args.append(status)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        direction = "ASC" if order == "asc" else "DESC"
        if sort.startswith("metrics."):
            joins = " LEFT JOIN metrics s ON s.run_id = r.id AND s.name = ?"
            key = "s.last"
            args = [sort.split(".", 1)[1], *args]
        elif sort.startswith("params."):
            joins = " LEFT JOIN params s ON s.run_id = r.id AND s.name = ?"
            key = "CAST(s.value AS REAL)"
            args = [sort.split(".", 1)[1], *args]
        else:
            key = f"r.{sort}"
        base = f"FROM runs r JOIN experiments e ON e.id = r.experiment_id{joins}{clause}"
        total = self.conn.execute(f"SELECT count(*) {base}", args).fetchone()[0]
        ids = [row[0] for row in self.conn.execute(
            f"SELECT r.id {base} ORDER BY {key} IS NULL, {key} {direction}, r.id {direction}"
            " LIMIT ? OFFSET ?", [*args, limit, offset])]
        runs = self.list_runs_by_ids(ids) if ids else []
        return {"total": total, "offset": offset, "limit": limit,
                "runs": [run_summary_dict(r) for r in runs]}

    def recorded_cells(self, up_to: int, experiments: list[str]) -> list[tuple[int, str, str]]:
        """(id, experiment, code) of the runs of these experiments a cell made (no trial, no
        replay), up to run ``up_to``, oldest first."""
        if not experiments:
            return []
        marks = ", ".join("?" * len(experiments))
        return [tuple(row) for row in self.conn.execute(
            "SELECT r.id, e.name, r.code FROM runs r JOIN experiments e ON e.id = r.experiment_id"
            f" WHERE r.id <= ? AND r.trial_number IS NULL AND r.replay_of IS NULL AND e.name IN ({marks})"
            " ORDER BY r.id", (up_to, *experiments))]

    def set_replay_of(self, run_id: int, original: int) -> None:
        with self._write() as conn:
            conn.execute("UPDATE runs SET replay_of = ? WHERE id = ?", (original, run_id))

    def replays_of(self, original: int) -> list[int]:
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM runs WHERE replay_of = ? ORDER BY id", (original,))]

    def max_run_id(self) -> int:
        return self.conn.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0]

    def db_info(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM db_info"))

    def run_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM runs").fetchone()[0]

    # -- row helpers -----------------------------------------------------------
    _LIGHT_COLUMNS = ("r.id, r.uuid, e.name AS experiment, r.status, r.started_at, r.ended_at,"
                      " r.duration_s, r.seed, r.tags, r.note, r.phase, r.notebook, r.cell_id,"
                      " r.code_hash, r.error_type, r.error_message, r.host, r.user, r.replay_of,"
                      " r.study_id, r.trial_number")

    def _runs_rows(self, ids: list[int], light: bool) -> list[sqlite3.Row]:
        columns = self._LIGHT_COLUMNS
        if not light:
            columns += (", r.code, r.stdout, r.stderr, r.result, r.error_traceback,"
                        " r.environment_id, r.git_state_id, r.imports, r.definitions, r.local_code_id,"
                        " r.fingerprint_scheme")
        cursor = self.conn.cursor()
        cursor.row_factory = sqlite3.Row
        rows = []
        for batch in _batches(ids):
            rows += cursor.execute(
                f"SELECT {columns} FROM runs r JOIN experiments e ON e.id = r.experiment_id"
                f" WHERE r.id IN ({','.join('?' * len(batch))})", batch,
            ).fetchall()
        order = {run_id: i for i, run_id in enumerate(ids)}
        return sorted(rows, key=lambda row: order[row["id"]])

    def _params_for(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        result: dict[int, dict[str, Any]] = {}
        for batch in _batches(ids):
            for run_id, name, value in self.conn.execute(
                f"SELECT run_id, name, value FROM params WHERE run_id IN ({','.join('?' * len(batch))})",
                batch,
            ):
                result.setdefault(run_id, {})[name] = param_value(json.loads(value))
        return result

    def _metrics_for(self, ids: list[int]) -> dict[int, dict[str, float | None]]:
        result: dict[int, dict[str, float | None]] = {}
        for batch in _batches(ids):
            for run_id, name, last in self.conn.execute(
                f"SELECT run_id, name, last FROM metrics WHERE run_id IN ({','.join('?' * len(batch))})",
                batch,
            ):
                result.setdefault(run_id, {})[name] = last
        return result

    def _param_specs(self, run_id: int) -> list[ParamSpec]:
        return [
            ParamSpec(name=name, value=param_value(json.loads(value)), low=low, high=high, log=bool(log), step=step,
                      choices=None if choices is None else tuple(param_value(c) for c in json.loads(choices)))
            for name, value, low, high, log, step, choices in self.conn.execute(
                "SELECT name, value, low, high, log, step, choices FROM params WHERE run_id = ?"
                " ORDER BY name", (run_id,))
        ]

    def _datasets(self, run_id: int) -> list[dict[str, Any]]:
        return [
            {"name": n, "fingerprint": f, "kind": k, "shape": json.loads(s),
             "dtypes": json.loads(d), "target": None if t is None else json.loads(t)}
            for n, f, k, s, d, t in self.conn.execute(
                "SELECT name, fingerprint, kind, shape, dtypes, target FROM datasets"
                " WHERE run_id = ? ORDER BY name", (run_id,))
        ]

    def artifact_paths(self, experiments: list[str]) -> list[str]:
        """Every path recorded as an artifact by a run (or trial) of these experiments."""
        if not experiments:
            return []
        marks = ", ".join("?" * len(experiments))
        return [row[0] for row in self.conn.execute(
            "SELECT DISTINCT a.path FROM artifacts a JOIN runs r ON r.id = a.run_id"
            f" JOIN experiments e ON e.id = r.experiment_id WHERE e.name IN ({marks})", experiments)]

    def runs_with_artifacts(self, run_ids: list[int]) -> set[int]:
        """Those of the runs that recorded an artifact (the primary key's index answers)."""
        found: set[int] = set()
        for start in range(0, len(run_ids), 500):  # SQLite's limit on a statement's parameters
            part = run_ids[start:start + 500]
            found.update(row[0] for row in self.conn.execute(
                f"SELECT DISTINCT run_id FROM artifacts WHERE run_id IN ({', '.join('?' * len(part))})", part))
        return found

    def move_artifacts(self, after_run: int, moved: dict[str, str]) -> None:
        """Runs after ``after_run`` recorded files at the keys of ``moved``: they are now at its values."""
        with self._write() as conn:
            conn.executemany("UPDATE artifacts SET path = ? WHERE run_id > ? AND path = ?",
                             [(new, after_run, old) for old, new in moved.items()])

    def _displays(self, run_id: int) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT position, mime, sha256, size, data IS NOT NULL FROM run_displays WHERE run_id = ?"
            " ORDER BY position, mime", (run_id,)).fetchall()
        return [{"position": p, "mime": m, "sha256": s, "size": n, "kept": bool(k)} for p, m, s, n, k in rows]

    def display_data(self, run_id: int, mime_prefix: str = "") -> list[tuple[int, str, bytes]]:
        """The kept data of what a run displayed, ``(position, mime, data)`` in order; only MIME
        types starting with ``mime_prefix`` (``"image/"``)."""
        return [(p, m, bytes(d)) for p, m, d in self.conn.execute(
            "SELECT position, mime, data FROM run_displays WHERE run_id = ? AND data IS NOT NULL"
            " AND substr(mime, 1, ?) = ? ORDER BY position, mime", (run_id, len(mime_prefix), mime_prefix))]

    def _artifacts(self, run_id: int) -> list[dict[str, Any]]:
        return [
            {"name": n, "path": p, "sha256": h, "size": s}
            for n, p, h, s in self.conn.execute(
                "SELECT name, path, sha256, size FROM artifacts WHERE run_id = ? ORDER BY name",
                (run_id,))
        ]

    def _local_code(self, local_code_id: int | None) -> list[dict[str, str]]:
        if local_code_id is None:
            return []
        row = self.conn.execute("SELECT modules FROM local_code WHERE id = ?", (local_code_id,)).fetchone()
        return json.loads(row[0]) if row else []

    def _environment(self, env_id: int | None) -> dict[str, Any] | None:
        if env_id is None:
            return None
        row = self.conn.execute(
            "SELECT hash, python, platform, packages, env_vars FROM environments WHERE id = ?",
            (env_id,),
        ).fetchone()
        return {"hash": row[0], "python": row[1], "platform": row[2],
                "packages": json.loads(row[3]), "env_vars": json.loads(row[4])}

    def _git_state(self, state_id: int | None) -> dict[str, Any] | None:
        if state_id is None:
            return None
        row = self.conn.execute(
            "SELECT root, commit_sha, branch, dirty, diff_hash FROM git_states WHERE id = ?",
            (state_id,),
        ).fetchone()
        return {"root": row[0], "commit": row[1], "branch": row[2], "dirty": bool(row[3]),
                "diff_hash": row[4]}

    @staticmethod
    def _run_from_row(row: sqlite3.Row, params: dict, metrics: dict, **extra: Any) -> Run:
        keys = row.keys()
        error = None
        if row["error_type"] is not None:
            error = ErrorInfo(row["error_type"], row["error_message"] or "",
                              row["error_traceback"] if "error_traceback" in keys else "")
        optional = {k: row[k] for k in ("code", "stdout", "stderr", "result") if k in keys}
        return Run(
            id=row["id"], uuid=row["uuid"], experiment=row["experiment"], status=row["status"],
            started_at=row["started_at"], ended_at=row["ended_at"], duration_s=row["duration_s"],
            params=params, metrics=metrics, code_hash=row["code_hash"], seed=row["seed"],
            tags=json.loads(row["tags"]), note=row["note"], phase=row["phase"],
            notebook=row["notebook"], cell_id=row["cell_id"], error=error, host=row["host"],
            user=row["user"], replay_of=row["replay_of"], study_id=row["study_id"],
            trial_number=row["trial_number"], **{k: v for k, v in optional.items() if v is not None}, **extra,
            **({"fingerprint_scheme": row["fingerprint_scheme"] or 1} if "fingerprint_scheme" in keys else {}),
        )


def _cannot_create(path: Path, why: str) -> str:
    return (f"cannot create a database at {path} ({why}); choose a file in a folder you can write to "
            "(--db, XPMAGIC_DB or %config XPMagics.db_path)")


def _none_if_nan(value: float | None) -> float | None:
    return None if value is None or value != value else value


def _batches(ids: list[int], size: int = 500) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


RUN_STATUSES = [s.value for s in RunStatus]

"""The schema, as an explicit and numbered migration history.

Each migration is plain SQL so that the README can document exactly what is on
disk. Never edit an applied migration: add the next one. A database that has a
migration this list does not know was written by a newer xpmagic.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

MIGRATION_SET = "xpmagic"
MIGRATIONS_TABLE = "_sqlite_migrations"  # where sqlite-utils records the applied migrations
_STEPS: list[Callable[[Database], None]] = []


def _step(migration: Callable[[Database], None]) -> Callable[[Database], None]:
    _STEPS.append(migration)
    return migration

M001 = """
CREATE TABLE experiments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE environments (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    python TEXT NOT NULL,
    platform TEXT NOT NULL,
    packages TEXT NOT NULL,      -- JSON object: distribution -> version
    env_vars TEXT NOT NULL       -- JSON object, secret-looking names removed
);
CREATE TABLE git_states (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    root TEXT NOT NULL,
    commit_sha TEXT,
    branch TEXT,
    dirty INTEGER NOT NULL,
    diff_hash TEXT
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
    started_at TEXT NOT NULL,    -- ISO 8601, UTC
    ended_at TEXT,
    duration_s REAL,
    code TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    notebook TEXT,
    cell_id TEXT,
    seed INTEGER,                -- NULL: no seed was set
    tags TEXT NOT NULL DEFAULT '[]',
    note TEXT,
    phase TEXT,
    stdout TEXT NOT NULL DEFAULT '',
    stderr TEXT NOT NULL DEFAULT '',
    result TEXT,                 -- repr of the cell's last expression, capped
    error_type TEXT,
    error_message TEXT,
    error_traceback TEXT,
    environment_id INTEGER REFERENCES environments(id),
    git_state_id INTEGER REFERENCES git_states(id),
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_started TEXT,            -- process start marker, to tell a reused pid apart
    user TEXT
);
CREATE INDEX runs_by_experiment ON runs (experiment_id, id);
CREATE INDEX runs_running ON runs (status) WHERE status = 'running';
CREATE TABLE params (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT,                  -- JSON
    low REAL,
    high REAL,
    log INTEGER NOT NULL DEFAULT 0,
    step REAL,
    choices TEXT,                -- JSON list or NULL
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
CREATE TABLE metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    last REAL,
    last_step INTEGER,
    min REAL,
    max REAL,
    count INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
CREATE TABLE metric_points (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    steps TEXT NOT NULL,         -- JSON list of step numbers
    vals TEXT NOT NULL,          -- JSON list of values (NaN as null)
    PRIMARY KEY (run_id, name, chunk)
) WITHOUT ROWID;
CREATE TABLE run_variables (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    name TEXT NOT NULL,
    fingerprint TEXT,            -- NULL: the value could not be fingerprinted
    kind TEXT NOT NULL,
    summary TEXT NOT NULL,       -- JSON
    PRIMARY KEY (run_id, direction, name)
) WITHOUT ROWID;
CREATE INDEX variables_by_fingerprint ON run_variables (fingerprint, direction);
CREATE TABLE lineage (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    source_run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    variable TEXT NOT NULL,
    PRIMARY KEY (run_id, source_run_id, variable)
) WITHOUT ROWID;
CREATE TABLE datasets (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    kind TEXT NOT NULL,
    shape TEXT NOT NULL,         -- JSON
    dtypes TEXT NOT NULL,        -- JSON
    target TEXT,                 -- JSON summary of y, or NULL
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
CREATE INDEX datasets_by_fingerprint ON datasets (fingerprint);
CREATE TABLE artifacts (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
"""


def _execute_script(db: Database, script: str) -> None:
    """Run statements one by one: executescript() would commit the migration's transaction."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {statement[:80]!r}")


@_step
def m001_initial(db: Database) -> None:
    _execute_script(db, M001)




M002 = """
CREATE TABLE studies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    optuna_name TEXT NOT NULL,
    storage TEXT NOT NULL,       -- Optuna storage URL (no credentials)
    metric TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('minimize', 'maximize')),
    sampler TEXT NOT NULL,
    seed INTEGER,
    state TEXT NOT NULL CHECK (state IN ('running', 'paused', 'stopped', 'finished')),
    budget INTEGER,              -- trials to run in all; NULL: until --timeout or stop
    timeout_s REAL,
    jobs INTEGER NOT NULL DEFAULT 1,
    approve INTEGER NOT NULL DEFAULT 0,
    constraints TEXT NOT NULL DEFAULT '[]',
    space TEXT NOT NULL DEFAULT '{}',   -- JSON: the search space as last edited
    code TEXT NOT NULL,
    message TEXT,                -- why the study paused or stopped
    n_done INTEGER NOT NULL DEFAULT 0,
    best_value REAL,
    best_params TEXT,            -- JSON
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    host TEXT,
    pid INTEGER,
    pid_started TEXT
);
CREATE TABLE study_controls (
    id INTEGER PRIMARY KEY,
    study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
    action TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    source TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    applied_at TEXT,
    result TEXT
);
CREATE INDEX controls_pending ON study_controls (study_id) WHERE applied_at IS NULL;
CREATE TABLE interactions (
    id INTEGER PRIMARY KEY,
    study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    source TEXT NOT NULL,        -- panel, magic, python, cli, other-process, system
    before TEXT,                 -- JSON
    after TEXT,                  -- JSON
    trial_number INTEGER
);
CREATE INDEX interactions_by_study ON interactions (study_id, id);
ALTER TABLE runs ADD COLUMN study_id INTEGER REFERENCES studies(id);
ALTER TABLE runs ADD COLUMN trial_number INTEGER;
ALTER TABLE runs ADD COLUMN trial_state TEXT;   -- complete, failed, infeasible, cancelled
CREATE INDEX runs_by_study ON runs (study_id, trial_number);
"""


@_step
def m002_studies(db: Database) -> None:
    _execute_script(db, M002)



M003 = """
CREATE TABLE phase_events (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('focus', 'revisit')),
    phase TEXT NOT NULL,         -- the focus phase, or the phase revisited
    from_phase TEXT,             -- revisits: the phase in focus at the time
    started_at TEXT NOT NULL,
    ended_at TEXT,               -- NULL while open
    reason TEXT,
    note TEXT,
    run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    experiment TEXT,
    user TEXT,
    host TEXT,
    session TEXT NOT NULL
);
CREATE INDEX phase_events_open ON phase_events (user, kind) WHERE ended_at IS NULL;
CREATE TABLE phase_reasons (
    code TEXT PRIMARY KEY,
    description TEXT,
    added_at TEXT NOT NULL
);
CREATE TABLE activity (
    session TEXT NOT NULL,
    started_at TEXT NOT NULL,    -- cells ran from here ...
    ended_at TEXT NOT NULL,      -- ... to here with no gap above the idle cut-off
    user TEXT,
    PRIMARY KEY (session, started_at)
) WITHOUT ROWID;
"""


@_step
def m003_phases(db: Database) -> None:
    _execute_script(db, M003)



M004 = """
ALTER TABLE runs ADD COLUMN replay_of INTEGER REFERENCES runs(id);
CREATE INDEX runs_by_replay ON runs (replay_of) WHERE replay_of IS NOT NULL;
CREATE TABLE db_info (
    key TEXT PRIMARY KEY,
    value TEXT
);
"""


@_step
def m004_replay(db: Database) -> None:
    _execute_script(db, M004)
    # Who created the database: replay runs stored code only for them unless told to trust it.
    from .. import procinfo

    db.execute("INSERT OR IGNORE INTO db_info (key, value) VALUES ('created_by', ?), ('created_on', ?)",
               (procinfo.user(), procinfo.host()))



M005 = """
CREATE TABLE tasks (
    fingerprint TEXT PRIMARY KEY,  -- the data set's content fingerprint (X and y)
    name TEXT,
    meta TEXT NOT NULL,            -- JSON meta-features
    created_at TEXT NOT NULL
);
CREATE TABLE knowledge (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,      -- run uuid + metric: the same fact is never stored twice
    task TEXT NOT NULL,            -- task fingerprint
    task_name TEXT,
    meta TEXT NOT NULL,            -- JSON meta-features, so a row travels on its own
    model_family TEXT,             -- estimator class, e.g. SVC
    config TEXT NOT NULL,          -- JSON: parameter name -> value
    metric TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('minimize', 'maximize')),
    score REAL NOT NULL,
    cost_s REAL,
    rating INTEGER,
    notes TEXT,
    user TEXT,
    created_at TEXT NOT NULL,
    origin TEXT NOT NULL,          -- the database the row was first recorded in
    experiment TEXT,
    study TEXT,
    trial_number INTEGER,
    sampler TEXT
);
CREATE INDEX knowledge_by_family ON knowledge (model_family, metric, direction, task, score);
CREATE TABLE knowledge_tasks (   -- kept up to date on insert, so recommending reads one row per task
    model_family TEXT,
    metric TEXT NOT NULL,
    direction TEXT NOT NULL,
    task TEXT NOT NULL,
    task_name TEXT,
    meta TEXT NOT NULL,
    top TEXT NOT NULL,             -- JSON: the best rows, best first
    score_min REAL,
    score_max REAL,
    n INTEGER NOT NULL,
    PRIMARY KEY (model_family, metric, direction, task)
);
"""


@_step
def m005_knowledge(db: Database) -> None:
    _execute_script(db, M005)


M006 = """
CREATE INDEX knowledge_by_experiment ON knowledge (experiment, id);
"""


@_step
def m006_knowledge_by_experiment(db: Database) -> None:
    """The sidebar lists an experiment's knowledge rows, newest first."""
    _execute_script(db, M006)


M007 = """
DROP INDEX variables_by_fingerprint;
CREATE INDEX variables_by_fingerprint ON run_variables (fingerprint)
    WHERE direction = 'out' AND fingerprint IS NOT NULL;
DROP INDEX runs_by_study;
CREATE INDEX runs_by_study ON runs (study_id, trial_number) WHERE study_id IS NOT NULL;
"""


@_step
def m007_lean_indexes(db: Database) -> None:
    """Index only what lineage and studies look up: every index entry is a page a run's
    commit writes, and fingerprints land on random pages."""
    _execute_script(db, M007)


M008 = """
CREATE INDEX knowledge_rated ON knowledge (model_family, metric, direction, id) WHERE rating IS NOT NULL;
"""


@_step
def m008_knowledge_rated(db: Database) -> None:
    """Recommendations learn from every rated row of a model family (xpmagic/ratings.py)."""
    _execute_script(db, M008)


M009 = """
DELETE FROM knowledge_tasks WHERE model_family IS NULL AND rowid NOT IN
    (SELECT max(rowid) FROM knowledge_tasks WHERE model_family IS NULL GROUP BY metric, direction, task);
CREATE UNIQUE INDEX knowledge_tasks_key ON knowledge_tasks (coalesce(model_family, ''), metric, direction, task);
"""


@_step
def m009_one_summary_per_task(db: Database) -> None:
    """A primary key lets NULLs differ, so runs whose model family is unknown added a task
    summary per insert; keep the newest (it is the up-to-date one) and key on the family or ''."""
    _execute_script(db, M009)


M010 = """
ALTER TABLE runs ADD COLUMN imports TEXT;      -- JSON list: the import statements binding what the cell read
ALTER TABLE runs ADD COLUMN definitions TEXT;  -- JSON list of {name, source}: the notebook's functions and classes
"""


@_step
def m010_run_bindings(db: Database) -> None:
    """A replay rebuilt from the records imports and defines what the run's cell read
    (bindings.py): most notebooks do that in plain cells no run records."""
    _execute_script(db, M010)


M011 = """
CREATE TABLE local_code (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,   -- sha256 of the modules list: one row per distinct set of versions
    modules TEXT NOT NULL        -- JSON list of {module, path, sha256}
);
CREATE TABLE code_sources (
    sha256 TEXT PRIMARY KEY,     -- one row per version of a module's source
    source TEXT NOT NULL
);
ALTER TABLE runs ADD COLUMN local_code_id INTEGER REFERENCES local_code(id);
"""


@_step
def m011_local_code(db: Database) -> None:
    """The person's own modules a run's session had loaded (localcode.py): when helpers.py
    changes, diff and replay can say so, in a folder that is no git repository too."""
    _execute_script(db, M011)


M012 = """
ALTER TABLE runs ADD COLUMN fingerprint_scheme INTEGER;  -- fingerprint.SCHEME of the xpmagic that recorded it; NULL: 1
"""


@_step
def m012_fingerprint_scheme(db: Database) -> None:
    """Which way a run's values were fingerprinted: when a new xpmagic fingerprints some values
    differently, replay and diff must not report the old digests as changed data."""
    _execute_script(db, M012)


M013 = """
CREATE TABLE run_displays (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    position INTEGER NOT NULL,   -- the order the cell displayed them in, from 1
    mime TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,       -- bytes: an image's own, text's in UTF-8
    data BLOB,                   -- NULL past the run's budget (XPMagics.max_display_bytes), or a widget's view
    PRIMARY KEY (run_id, position, mime)
) WITHOUT ROWID;
"""


@_step
def m013_run_displays(db: Database) -> None:
    """What a run's cell displayed (displaycapture.py): a notebook's result is often a figure."""
    _execute_script(db, M013)


def known_migrations() -> list[str]:
    """Names of every migration this version knows, oldest first."""
    return [step.__name__ for step in _STEPS]


@cache
def migrations() -> Migrations:
    """sqlite-utils' migration set of these steps, made when a database needs them: importing
    sqlite-utils imports pandas (0.3 s), which a command reading a current database never uses."""
    from sqlite_utils.migrations import Migrations

    steps = Migrations(MIGRATION_SET)
    for step in _STEPS:
        steps()(step)
    return steps

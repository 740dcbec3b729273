"""The store on real SQLite files: schema history, refusals, concurrency."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest
from sqlite_utils import Database

from conftest import rows
from xpmagic.errors import DatabaseCorrupt, DatabaseNotFound, DatabaseTooNew
from xpmagic.records import NewRun, RunOutcome, RunStatus
from xpmagic.store import Store, _schema, utc_now


def _new_run(name="e"):
    return NewRun(experiment=name, code="x = 1", code_hash="h", started_at=utc_now())


def test_new_database_has_the_schema_and_its_migration_history(db_path):
    store = Store(db_path)
    assert store.schema_version() == _schema.known_migrations()[-1]
    tables = set(Database(db_path).table_names())
    assert {"runs", "params", "metrics", "metric_points", "run_variables", "lineage",
            "datasets", "artifacts", "environments", "git_states", "_sqlite_migrations"} <= tables
    assert rows(db_path, "PRAGMA journal_mode") == [("wal",)]


def test_older_database_is_migrated_and_keeps_its_runs(db_path):
    db = Database(db_path)
    _schema.migrations().apply(db, stop_before="m002_studies")
    db.execute("INSERT INTO experiments (name, created_at) VALUES ('old', 'then')")
    db.execute("INSERT INTO runs (uuid, experiment_id, status, started_at, code, code_hash, host, pid)"
               " VALUES ('u1', 1, 'ok', 'then', 'x = 1', 'h', 'elsewhere', 1)")
    db.conn.commit()
    db.close()
    assert "studies" not in Database(db_path).table_names()
    store = Store(db_path)
    assert store.schema_version() == _schema.known_migrations()[-1]
    assert [r.experiment for r in store.list_runs()] == ["old"]
    store.start_run(_new_run())
    assert rows(db_path, "SELECT count(*) FROM runs") == [(2,)]


def test_database_from_a_newer_version_is_refused_and_left_alone(db_path):
    Store(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
                     " VALUES ('xpmagic', 'm999_future', 'later')")
    before = db_path.read_bytes()
    with pytest.raises(DatabaseTooNew, match="newer xpmagic.*pip install -U xpmagic"):
        Store(db_path)
    assert db_path.read_bytes() == before


def test_corrupt_file_is_refused_and_not_overwritten(db_path):
    db_path.write_bytes(b"this is not a database at all" * 10)
    with pytest.raises(DatabaseCorrupt, match="not a SQLite database"):
        Store(db_path)
    assert db_path.read_bytes() == b"this is not a database at all" * 10


def test_opening_the_database_twice_in_one_process_keeps_its_wal_when_another_process_leaves(db_path):
    """A study opens its own connection while the session's is open. Reading the file's header
    with open()/close() dropped this process's SQLite locks; a CLI process closing next then took
    itself for the last user and deleted the WAL: 'disk I/O error', committed runs unreadable."""
    session = Store(db_path)
    run_id, _ = session.start_run(_new_run())
    session.finish_run(run_id, RunOutcome(status=RunStatus.OK, ended_at=utc_now(), duration_s=0.1))
    study = Store(db_path)
    subprocess.run([sys.executable, "-c", f"import sqlite3; c = sqlite3.connect({str(db_path)!r}); "
                    "c.execute('SELECT count(*) FROM runs').fetchall(); c.close()"], check=True)
    run_id, _ = study.start_run(_new_run())
    assert session.run_count() == 2
    assert rows(db_path, "SELECT count(*), sum(status = 'ok') FROM runs") == [(2, 1)]
    session.close()
    study.close()


def test_another_applications_database_is_refused(db_path):
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(DatabaseCorrupt, match="another application"):
        Store(db_path)
    assert rows(db_path, "SELECT name FROM sqlite_master") == [("customers",)]


def test_missing_database_is_not_created_for_readers(db_path):
    with pytest.raises(DatabaseNotFound, match="no xpmagic database"):
        Store(db_path, create=False)
    assert not db_path.exists()


def test_run_left_running_by_a_dead_process_becomes_interrupted(db_path):
    store = Store(db_path)
    run_id, _ = store.start_run(_new_run())
    with sqlite3.connect(db_path) as conn:  # pretend a process that has since exited wrote it
        conn.execute("UPDATE runs SET pid = 999999999, pid_started = 'gone' WHERE id = ?", (run_id,))
    store.close()
    Store(db_path).close()
    assert rows(db_path, "SELECT status FROM runs") == [("interrupted",)]


def test_a_live_run_is_left_running(db_path):
    store = Store(db_path)
    store.start_run(_new_run())
    Store(db_path).close()  # another reader opens while this process is alive
    assert rows(db_path, "SELECT status FROM runs") == [("running",)]


def test_nan_and_infinite_metric_values_survive(db_path):
    from xpmagic.records import MetricChunk

    store = Store(db_path)
    run_id, _ = store.start_run(_new_run())
    store.finish_run(run_id, RunOutcome(
        status=RunStatus.OK, ended_at=utc_now(), duration_s=0.1,
        metric_chunks=[MetricChunk("m", 0, [0, 1, 2], [1.0, float("nan"), float("inf")])]))
    steps, values = store.metric_series(run_id, "m")
    assert steps == [0, 1, 2] and values[0] == 1.0 and values[1] != values[1]
    assert values[2] == float("inf")
    assert rows(db_path, "SELECT count(*) FROM metric_points, json_each(metric_points.vals)") == [(3,)]


WRITER = textwrap.dedent("""
    import sys
    from IPython.testing.globalipapp import start_ipython
    shell = start_ipython()
    shell.run_line_magic("load_ext", "xpmagic")
    shell.run_line_magic("config", "XPMagics.show_summary = False")
    worker = int(sys.argv[1])
    for i in range(int(sys.argv[2])):
        result = shell.run_cell(
            f"%%experiment load\\n"
            f"xp.param('worker', {worker})\\nxp.param('i', {i})\\n"
            f"xp.log(value={worker * 1000 + i})\\n")
        if not result.success:
            print("FAILED", worker, i, result.error_in_exec, file=sys.stderr)
            sys.exit(1)
""")


def test_four_processes_writing_at_once_lose_nothing(db_path, tmp_path):
    Store(db_path).close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {"XPMAGIC_DB": str(db_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, str(script), str(w), "200"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(4)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert "locked" not in out + err
    assert rows(db_path, "SELECT status, count(*) FROM runs GROUP BY status") == [("ok", 800)]
    values = {r[0] for r in rows(db_path, "SELECT last FROM metrics WHERE name = 'value'")}
    assert values == {float(w * 1000 + i) for w in range(4) for i in range(200)}
    assert rows(db_path, "SELECT count(*) FROM params") == [(1600,)]
    assert rows(db_path, "PRAGMA integrity_check") == [("ok",)]

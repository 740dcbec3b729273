"""Team scale against a real PostgreSQL server: shared knowledge, shared studies, workers.

`.ci/run` (scripts/test) starts Debian's PostgreSQL on loopback through scripts/postgres and
passes its URL in XPMAGIC_TEST_PG; run alone, these tests call scripts/postgres themselves.
Every test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from test_knowledge import SVC_CELL, WINE

from conftest import run_ok, stop_all_studies

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _stop_studies():
    yield
    stop_all_studies()


@pytest.fixture(scope="session")
def pg_server() -> str:
    url = os.environ.get("XPMAGIC_TEST_PG")
    if not url:
        done = subprocess.run(["bash", str(ROOT / "scripts" / "postgres")], capture_output=True, text=True)
        assert done.returncode == 0, f"PostgreSQL is needed for the team tests: {done.stderr[-1000:]}"
        url = done.stdout.strip().splitlines()[-1]
    return url


@pytest.fixture
def pg_url(pg_server):
    """A fresh database on the server, for this test only."""
    import psycopg

    name = f"xp_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield pg_server.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def xpmagic(*args, env=None):
    exe = shutil.which("xpmagic", path=os.path.dirname(sys.executable))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def remote_rows(url):
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT uid, origin, experiment, score FROM xpmagic.knowledge ORDER BY id").fetchall()


def test_knowledge_is_shared_between_two_databases(shell, tmp_path, pg_url, capsys):
    alice, bob = tmp_path / "alice.db", tmp_path / "bob.db"
    run_ok(shell, f"%config XPMagics.knowledge_url = {pg_url!r}")
    run_ok(shell, f"%config XPMagics.db_path = {str(alice)!r}")
    run_ok(shell, WINE)
    for C in (0.01, 10.0):
        run_ok(shell, f"%%experiment wine-svc\n{SVC_CELL.replace('1.0, low', f'{C}, low')}")
    shared = remote_rows(pg_url)
    assert len(shared) == 2 and {r[1] for r in shared} == {str(alice)}  # each row keeps its origin
    from xpmagic.store import Store

    assert len(Store(alice).knowledge_rows()) == 2  # and the local record keeps them too

    run_ok(shell, f"%config XPMagics.db_path = {str(bob)!r}")  # a colleague's database
    run_ok(shell, f"%%experiment bob-svc\n{SVC_CELL.replace('1.0, low', '1.0, low')}")
    recommendation = shell.run_line_magic("xp", "recommend bob-svc")
    best_of_alice = max(shared, key=lambda r: r[3])
    assert best_of_alice[2] == "wine-svc" and recommendation.warm_start  # bob draws on alice's runs
    assert recommendation.warm_start[0]["C"] == pytest.approx(10.0 if best_of_alice[3] == shared[1][3] else 0.01)
    assert len(remote_rows(pg_url)) == 3
    assert "xpmagic:xpmagic@" not in capsys.readouterr().err  # the password is never printed


def test_the_environment_variable_points_every_tool_at_the_team_table(shell, tmp_path, pg_url, monkeypatch):
    monkeypatch.setenv("XPMAGIC_KNOWLEDGE", pg_url)
    run_ok(shell, f"%config XPMagics.db_path = {str(tmp_path / 'carol.db')!r}")
    run_ok(shell, WINE)
    run_ok(shell, f"%%experiment carol-svc\n{SVC_CELL}")
    assert [r[2] for r in remote_rows(pg_url)] == ["carol-svc"]
    Path(tmp_path / "empty.db").unlink(missing_ok=True)
    from xpmagic.store import Store

    Store(tmp_path / "empty.db").close()  # a database with no rows of its own reads the team's
    shown = xpmagic("knowledge", "--db", str(tmp_path / "empty.db"), "--json")
    assert shown.returncode == 0, shown.stderr
    assert [r["experiment"] for r in json.loads(shown.stdout)["rows"]] == ["carol-svc"]


def test_an_unreachable_server_keeps_the_knowledge_local_and_push_publishes_it_later(shell, tmp_path, pg_url):
    db = tmp_path / "offline.db"
    unreachable = "postgresql://xpmagic:s3cret@127.0.0.1:1/nowhere"
    run_ok(shell, f"%config XPMagics.knowledge_url = {unreachable!r}")
    run_ok(shell, f"%config XPMagics.db_path = {str(db)!r}")
    run_ok(shell, WINE)
    result = shell.run_cell(f"%%experiment offline-svc\n{SVC_CELL}")
    assert result.success
    from xpmagic.store import Store

    assert [r["experiment"] for r in Store(db).knowledge_rows()] == ["offline-svc"]
    pushed = xpmagic("push", "--to", pg_url, "--db", str(db), "--json")
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["new"] == 1 and "xpmagic:***@" in json.loads(pushed.stdout)["to"]
    again = xpmagic("push", "--to", pg_url, "--db", str(db))
    assert again.returncode == 0 and "0 new, 1 already there" in again.stdout
    assert [r[2] for r in remote_rows(pg_url)] == ["offline-svc"]


def test_the_unreachable_server_is_one_warning_line_without_the_password(shell, tmp_path, capfd):
    run_ok(shell, "%config XPMagics.knowledge_url = 'postgresql://xpmagic:s3cret@127.0.0.1:1/nowhere'")
    run_ok(shell, f"%config XPMagics.db_path = {str(tmp_path / 'x.db')!r}")
    run_ok(shell, WINE)
    run_ok(shell, f"%%experiment warn-svc\n{SVC_CELL}")
    run_ok(shell, f"%%experiment warn-svc\n{SVC_CELL}")
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if "knowledge database" in line]
    assert len(warnings) == 1 and "Traceback" not in err
    assert "s3cret" not in err and "127.0.0.1:1/nowhere" in warnings[0]
    assert "xpmagic push --to" in warnings[0]


def test_push_refuses_a_url_that_is_not_postgresql(tmp_path):
    from xpmagic.store import Store

    Store(tmp_path / "a.db").close()
    done = xpmagic("push", "--to", "mysql://root:pw@host/db", "--db", str(tmp_path / "a.db"))
    assert done.returncode != 0 and "push needs a PostgreSQL URL" in done.stderr and "pw" not in done.stderr


DATA_CELL = "%%experiment make-data\ncentre = 0.3\n"
OBJECTIVE = ("import os, time\n"
             "x = xp.param('x', 0.0, low=0.0, high=1.0)\n"
             "time.sleep({sleep})\n"
             "print('trial in', os.getpid())\n"
             "xp.log(score=-(x - centre) ** 2, pid=os.getpid())\n")


def start_worker(study, db_path, pg_url, *extra):
    exe = shutil.which("xpmagic", path=os.path.dirname(sys.executable))
    env = {**os.environ, "PGPASSWORD": "xpmagic"}  # the recorded storage URL carries no password
    return subprocess.Popen([exe, "worker", study, "--db", str(db_path), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(predicate, timeout=60.0):
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def trial_runs(db_path):
    import sqlite3

    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT trial_number, pid, host, status FROM runs WHERE trial_number IS NOT NULL"
                            " ORDER BY trial_number").fetchall()


def test_two_workers_and_the_kernel_run_one_study_each_trial_recorded_once(shell, db_path, pg_url):
    import optuna

    run_ok(shell, DATA_CELL)
    run_ok(shell, "from math import sqrt\n")  # a plain cell: workers import it from the study's records
    run_ok(shell, f"%%experiment shared --optimize score --trials 36 --storage {pg_url}\n"
                  + OBJECTIVE.format(sleep=0.25) + "%time root = sqrt(x)\nxp.log(root=root)\n")  # IPython syntax too
    study = shell.user_ns["xp"].study("shared")
    workers = [start_worker("shared", db_path, pg_url, "--max-idle", "30") for _ in range(2)]
    try:
        assert study.wait(180) and study.state == "finished"
        outputs = [w.communicate(timeout=120) for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert all(w.returncode == 0 for w in workers), [o[1][-2000:] for o in outputs]
    runs = trial_runs(db_path)
    numbers = [r[0] for r in runs]
    assert len(numbers) == len(set(numbers)) == 36, numbers  # every trial recorded once, the budget honoured
    stored = optuna.load_study(study_name="shared", storage=pg_url.replace("postgresql://", "postgresql+psycopg://"))
    assert sorted(t.number for t in stored.trials if not t.user_attrs.get("xpmagic_cancelled")) == numbers
    pids = {r[1] for r in runs}
    assert len(pids) == 3 and os.getpid() in pids  # the kernel and both workers ran trials
    assert all(r[2] for r in runs) and all(r[3] == "ok" for r in runs)
    record = shell.user_ns["xp"].study("shared").record
    assert "xpmagic:xpmagic@" not in record["storage"] and "xpmagic:xpmagic@" not in record["code"]
    assert record["n_done"] == 36 and record["best_value"] > -0.01  # worker trials count in the study's view
    panel = study.panel()
    panel.refresh()
    assert panel.progress.value == 36 and "36/36" in panel.progress_label.value  # and in the panel
    assert "joined study shared" in outputs[0][1]


def test_steering_reaches_remote_workers(shell, db_path, pg_url):
    import time

    run_ok(shell, DATA_CELL)
    run_ok(shell, f"%%experiment steered --optimize score --trials 400 --storage {pg_url}\n"
                  + OBJECTIVE.format(sleep=0.15))
    study = shell.user_ns["xp"].study("steered")
    worker = start_worker("steered", db_path, pg_url, "--max-idle", "60")
    try:
        wait_until(lambda: sum(r[1] == worker.pid for r in trial_runs(db_path)) >= 2)
        study.pause()
        time.sleep(1.0)  # trials already running finish
        paused_at = len(trial_runs(db_path))
        time.sleep(2.0)
        assert len(trial_runs(db_path)) == paused_at  # the worker started nothing while paused
        study.set_space("x", 0.5, 0.6)
        study.resume()
        wait_until(lambda: sum(r[1] == worker.pid for r in trial_runs(db_path)[paused_at:]) >= 2)
        import sqlite3

        with sqlite3.connect(db_path) as conn:
            after = conn.execute("SELECT p.value FROM runs r JOIN params p ON p.run_id = r.id AND p.name = 'x'"
                                 " WHERE r.pid = ? AND r.trial_number >= ?", (worker.pid, paused_at + 1)).fetchall()
        assert after and all(0.5 <= float(v) <= 0.6 for (v,) in after)  # the edited space reached it
        study.stop()
        _, err = worker.communicate(timeout=30)
        assert worker.returncode == 0 and "is stopped" in err
    finally:
        worker.kill()


def test_a_dask_cluster_runs_the_trials(shell, db_path):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        worker_pids = set(client.run(os.getpid).values())
        run_ok(shell, "centre = 0.3\n")
        run_ok(shell, f"%%experiment on-dask --optimize score --trials 8 --seed 0 --jobs {cluster.scheduler_address}\n"
                      + OBJECTIVE.format(sleep=0.05))
        study = shell.user_ns["xp"].study("on-dask")
        assert study.wait(120) and study.state == "finished"
        run_ok(shell, "%%experiment client-dask --optimize score --trials 3 --jobs dask\n"  # the notebook's Client
                      + OBJECTIVE.format(sleep=0.0))
        other = shell.user_ns["xp"].study("client-dask")
        assert other.wait(120) and other.record["n_done"] == 3
    from xpmagic.store import Store

    store = Store(db_path)
    runs = [store.get_run(i) for i in store.run_ids()]
    trials = [r for r in runs if r.trial_number is not None and r.experiment == "on-dask"]
    assert len(trials) == 8 and all(r.status == "ok" for r in trials)
    assert {int(r.metrics["pid"]) for r in trials} <= worker_pids  # evaluated in the Dask workers
    assert all("trial in" in r.stdout for r in trials) and all(r.host for r in trials)
    assert study.best_value == max(r.metrics["score"] for r in trials)
    assert study.record["jobs"] == 2  # as many at once as the cluster has threads


def test_a_bad_dask_address_or_storage_is_one_line(shell):
    result = shell.run_cell("%%experiment nowhere --optimize score --jobs dask://127.0.0.1:1\n"
                            "x = xp.param('x', 0.0, low=0.0, high=1.0)\nxp.log(score=x)\n")
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in str(result.error_in_exec)
    result = shell.run_cell("%%experiment nowhere --optimize score --storage postgresql://u:pw@127.0.0.1:1/db\n"
                            "x = xp.param('x', 0.0, low=0.0, high=1.0)\nxp.log(score=x)\n")
    message = str(result.error_in_exec)
    assert "cannot open the Optuna storage postgresql://u:***@127.0.0.1:1/db" in message and "pw" not in message
    result = shell.run_cell("%%experiment nowhere --optimize score --jobs dask://127.0.0.1:1\n"
                            "x = xp.param('x', 0.0, low=0.0, high=1.0)\n%time y = x\nxp.log(score=y)\n")
    assert "on a Dask cluster the objective must be plain Python" in str(result.error_in_exec)


def test_a_worker_refuses_a_study_whose_inputs_no_recorded_cell_made(shell, db_path, pg_url):
    run_ok(shell, "centres = [0.3]\n")  # a plain cell: nothing recorded (a literal constant would be)
    run_ok(shell, f"%%experiment orphan --optimize score --trials 3 --storage {pg_url}\n"
                  + OBJECTIVE.format(sleep=0).replace("centre", "centres[0]"))
    shell.user_ns["xp"].study("orphan").wait(60)
    worker = start_worker("orphan", db_path, pg_url)
    _, err = worker.communicate(timeout=120)
    assert worker.returncode != 0 and "reads centres, which no recorded cell produced" in err
    assert "Traceback" not in err

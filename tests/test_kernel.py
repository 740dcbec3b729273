"""A real Jupyter kernel killed with SIGKILL in the middle of a run."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from jupyter_client.manager import start_new_kernel

from xpmagic import queries
from xpmagic.store import Store


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("XPMAGIC_DB", str(tmp_path / "kernel.db"))
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    yield manager, client
    client.stop_channels()
    if manager.is_alive():
        manager.shutdown_kernel(now=True)


def _execute(client, code: str) -> dict:
    reply = client.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
    return reply["content"]


def _status(db, experiment: str) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT r.status FROM runs r JOIN experiments e ON e.id = r.experiment_id"
            " WHERE e.name = ?", (experiment,)).fetchone()
    return row[0] if row else None


def test_kernel_killed_mid_run_leaves_a_consistent_database(kernel, tmp_path):
    manager, client = kernel
    db = tmp_path / "kernel.db"
    assert _execute(client, "%load_ext xpmagic")["status"] == "ok"
    done = _execute(client, "%%experiment finished\nxp.param('lr', 0.1)\nxp.log(acc=0.75)\n")
    assert done["status"] == "ok"
    client.execute("%%experiment doomed\nfor i in range(30_000):\n    xp.log('loss', i)\n"
                   "import time\ntime.sleep(120)\n")
    deadline = time.monotonic() + 60
    while _status(db, "doomed") != "running":
        assert time.monotonic() < deadline, "the doomed run never started"
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(manager.provisioner.process.pid, signal.SIGKILL)
    manager.provisioner.process.wait(timeout=30)

    store = Store(db)
    try:
        assert store.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finished, doomed = sorted(store.list_runs(), key=lambda r: r.id)
        assert finished.status == "ok" and finished.params == {"lr": 0.1}
        assert finished.metrics == {"acc": 0.75}
        assert doomed.status == "interrupted"
        assert doomed.error is not None and "ended before the run finished" in doomed.error.message
        steps, _ = store.metric_series(doomed.id, "loss")
        assert len(steps) == 20_000  # the full chunk written while it ran survives
    finally:
        store.close()


def test_notebook_path_and_cell_id_come_from_jupyter(tmp_path, monkeypatch):
    monkeypatch.setenv("XPMAGIC_DB", str(tmp_path / "kernel.db"))
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "analysis.ipynb"))
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        _execute(client, "%load_ext xpmagic")
        content = {"code": "%%experiment located\nx = 1\n", "silent": False, "store_history": True,
                   "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
        message = client.session.msg("execute_request", content, metadata={"cellId": "cell-42"})
        client.shell_channel.send(message)
        reply = client.get_shell_msg(timeout=60)
        assert reply["content"]["status"] == "ok"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    run = Store(tmp_path / "kernel.db").list_runs()[0]
    assert run.notebook == str(tmp_path / "analysis.ipynb") and run.cell_id == "cell-42"


def test_failing_cell_in_a_kernel_fails_with_the_users_exception(kernel, tmp_path):
    _, client = kernel
    _execute(client, "%load_ext xpmagic")
    reply = _execute(client, "%%experiment boom\nx = 1\nraise KeyError('missing column')\n")
    assert reply["status"] == "error" and reply["ename"] == "KeyError"
    assert _status(tmp_path / "kernel.db", "boom") == "failed"


SLOW_STUDY = ("%%experiment revive --optimize score --trials 8 {flags}\n"
              "import time\n"
              "x = xp.param('x', 0.0, low=-1.0, high=1.0)\n"
              "time.sleep(0.4)\n"
              "xp.log(score=-x * x)\n")


def _count(db, sql):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchone()[0]


def test_resume_after_a_kernel_restart_keeps_trials_and_honours_the_budget(kernel, tmp_path):
    manager, client = kernel
    db = tmp_path / "kernel.db"
    _execute(client, "%load_ext xpmagic")
    assert _execute(client, SLOW_STUDY.format(flags=""))["status"] == "ok"
    deadline = time.monotonic() + 60
    # kill while a trial sleeps: two finished, one recorded as running
    while not (_count(db, "SELECT count(*) FROM runs WHERE status = 'ok'") >= 2
               and _count(db, "SELECT count(*) FROM runs WHERE status = 'running'") == 1):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(manager.provisioner.process.pid, signal.SIGKILL)
    manager.provisioner.process.wait(timeout=30)
    client.stop_channels()
    # Steering now says no kernel drives the study (instead of waiting for an answer that cannot come)...
    exe = shutil.which("xpmagic", path=os.path.dirname(sys.executable))
    steered = subprocess.run([exe, "budget", "revive", "8", "--db", str(db)], capture_output=True, text=True)
    assert "no kernel drives study 'revive' now" in steered.stdout, steered.stdout + steered.stderr
    approved = subprocess.run([exe, "approve", "revive", "--db", str(db)], capture_output=True, text=True)
    assert approved.stderr.strip() == "xpmagic: study 'revive' runs without --approve: no trial waits for approval"
    # ... and the study, left 'running' in the database, shows as interrupted with the way on
    listed = json.loads(subprocess.run([exe, "studies", "--json", "--db", str(db)], capture_output=True,
                                       text=True).stdout)
    assert listed[0]["state"] == "interrupted" and "--resume" in listed[0]["message"]

    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        _execute(client, "%load_ext xpmagic")
        assert _execute(client, SLOW_STUDY.format(flags="--resume"))["status"] == "ok"
        assert _execute(client, "assert xp.study('revive').wait(120)")["status"] == "ok"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    import optuna

    study = optuna.load_study(study_name="revive", storage=f"sqlite:///{tmp_path / 'kernel.optuna.db'}")
    trials = study.get_trials()
    interrupted = [t for t in trials if t.user_attrs.get("xpmagic_interrupted")]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(interrupted) == 1 and interrupted[0].state == optuna.trial.TrialState.FAIL
    assert len(complete) == 7 and len(trials) == 8  # budget of 8 counts the interrupted trial
    assert _count(db, "SELECT count(*) FROM runs WHERE status = 'interrupted' AND trial_state = 'failed'") == 1
    assert _count(db, "SELECT count(*) FROM studies") == 1
    # ... and the request applied once the cell ran again with --resume
    assert _count(db, "SELECT count(*) FROM study_controls WHERE applied_at IS NULL") == 0
    assert _count(db, "SELECT count(*) FROM interactions WHERE source = 'cli' AND action = 'budget'") == 1
    assert _count(db, "SELECT state FROM studies") == "finished"


def test_a_figure_the_cell_shows_is_kept_with_the_run(kernel, tmp_path):
    """A notebook's result is often a plot: the PNG the person saw under the cell is recorded
    with the run (the same bytes), and `%xp show` in a notebook shows it again."""
    _, client = kernel
    _execute(client, "%load_ext xpmagic\nimport matplotlib.pyplot as plt\n%matplotlib inline")
    seen: list[dict] = []
    client.execute_interactive("%%experiment plot\nplt.plot([1, 3, 2])\nplt.title('loss')\nxp.log(last=2.0)\n",
                               timeout=60, output_hook=seen.append)
    shown = [m["content"]["data"] for m in seen if m["header"]["msg_type"] == "display_data"]
    png = base64.b64decode(next(data["image/png"] for data in shown if "image/png" in data))
    store = Store(tmp_path / "kernel.db", create=False)
    run = store.list_runs()[0]
    displays = store.get_run(run.id).displays
    assert {(d["position"], d["mime"]) for d in displays} >= {(1, "image/png"), (1, "text/plain")}
    (kept,) = [d for d in displays if d["mime"] == "image/png"]
    assert kept["sha256"] == hashlib.sha256(png).hexdigest() and kept["kept"] and kept["size"] == len(png)
    assert store.display_data(run.id, "image/") == [(1, "image/png", png)]
    html: list[dict] = []
    client.execute_interactive(f"%xp show {run.id}", timeout=60, output_hook=html.append)
    page = next(m["content"]["data"]["text/html"] for m in html if m["header"]["msg_type"] == "execute_result")
    assert base64.b64encode(png).decode() in page
    _execute(client, "%config XPMagics.max_display_bytes = 100")  # past the budget: listed, not kept
    client.execute_interactive("%%experiment plot\nplt.plot([1, 2])\nplt.title('loss')\nxp.log(last=2.0)\n", timeout=60,
                               output_hook=lambda m: None)
    later = [d for d in store.get_run(store.max_run_id()).displays if d["mime"] == "image/png"]
    assert later and not later[0]["kept"] and store.display_data(store.max_run_id(), "image/") == []
    changed = queries.diff_runs(store, run.id, store.max_run_id()).to_dict()["displays"]
    assert [c["name"] for c in changed] == ["1 image/png"]  # another figure; its text/plain is the same

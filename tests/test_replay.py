"""Replay in a fresh kernel: verdicts, explanations, exported notebooks, exit status."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import nbformat
import pytest

from conftest import rows, run_ok
from xpmagic.fingerprint import SCHEME

LOAD = ("%%experiment load-data\n"
        "import pandas as pd\n"
        "frame = pd.read_csv('data.csv')\n"
        "xp.dataset(frame, name='table')\n")
TRAIN = ("%%experiment train --seed 0\n"
         "from sklearn.linear_model import LogisticRegression\n"
         "C = xp.param('C', 1.0, low=0.01, high=100.0, log=True)\n"
         "X, y = frame[['a', 'b']].to_numpy(), frame['label'].to_numpy()\n"
         "model = LogisticRegression(C=C).fit(X, y)\n"
         "xp.log(accuracy=model.score(X, y), mean_a=float(X[:, 0].mean()))\n")


def write_data(folder, shift=0.0):
    rows = ["a,b,label"] + [f"{i * 0.1 + shift},{(i * 7) % 5},{int(i % 3 == 0)}" for i in range(60)]
    (folder / "data.csv").write_text("\n".join(rows) + "\n")


def xpmagic(*args, cwd):
    exe = shutil.which("xpmagic", path=os.path.dirname(sys.executable))
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture
def recorded(shell, tmp_path, db_path):
    write_data(tmp_path)
    run_ok(shell, LOAD)
    run_ok(shell, TRAIN)
    return db_path


def verdicts(result):
    assert result.stdout, result.stderr
    return {v["experiment"]: v for v in json.loads(result.stdout)}


def test_a_deterministic_run_reproduces(recorded, tmp_path):
    result = xpmagic("replay", "train", "--db", str(recorded), "--json", cwd=tmp_path)
    found = verdicts(result)
    assert found["train"]["verdict"] == "reproduced" and found["load-data"]["verdict"] == "reproduced"
    assert result.returncode == 0
    with sqlite3.connect(recorded) as conn:
        assert conn.execute("SELECT replay_of FROM runs WHERE id = ?",
                            (found["train"]["replay_run"],)).fetchone() == (2,)


def test_a_display_that_looks_otherwise_in_the_replay_is_said_not_counted(shell, tmp_path, db_path):
    """What a cell displayed is compared too, as a note: a figure's pixels follow fonts and
    backend settings, and a displayed time differs in every run."""
    run_ok(shell, "%%experiment shown\nimport time\ndisplay('table of results')\ndisplay(time.time_ns())\n"
                  "display(object())\nxp.log(a=1.0)\n")  # its memory address differs: no other content
    found = verdicts(xpmagic("replay", "1", "--db", str(db_path), "--json", cwd=tmp_path))["shown"]
    assert found["verdict"] == "reproduced", found
    assert [c for c in found["changes"] if c.startswith("display ")] == [
        f"display 2 (text/plain) looks otherwise than the original's (xpmagic show {found['replay_run']} lists it; "
        "a figure's pixels also follow fonts and backend settings)"]


def test_changed_data_differs_and_names_the_fingerprint(recorded, tmp_path):
    write_data(tmp_path, shift=5.0)
    result = xpmagic("replay", "2", "--db", str(recorded), "--json", cwd=tmp_path)
    found = verdicts(result)
    train = found["train"]
    assert train["verdict"] == "differs" and result.returncode == 1
    assert any(d["metric"] == "mean_a" for d in train["differences"])
    assert any("data set 'table' fingerprint changed" in c for c in found["load-data"]["changes"])
    assert any("input 'frame' changed" in c for c in train["changes"])


SAVE = ("%%experiment save\n"
        "import os, pathlib\n"
        "shift = open('data.csv').read().split()[1].split(',')[0]\n"
        "pathlib.Path('model.txt').write_text('weights ' + shift)\n"
        "pathlib.Path('same.txt').write_text('unchanged')\n"
        "os.makedirs('saved', exist_ok=True)\n"
        "pathlib.Path('saved/w.bin').write_text('weights ' + shift)\n"
        "pathlib.Path('roc.svg').write_text('<svg><!-- written at ' + str(os.getpid()) + ' --></svg>')\n"
        "for name in ('model.txt', 'same.txt', 'saved', 'roc.svg'):\n"
        "    xp.artifact(name)\n"
        "xp.artifact('.', name='workdir')\n")  # it holds the database: never put back as it was


def test_a_replay_keeps_the_recorded_artifacts_and_sets_its_own_aside(shell, tmp_path, db_path):
    """Re-running a cell rewrites the files it saves: a replay that differs must not replace the
    original run's model (the evidence it is checked against) with its own."""
    write_data(tmp_path)
    run_ok(shell, SAVE)
    originals = {name: (tmp_path / name).read_bytes() for name in ("model.txt", "same.txt", "saved/w.bin", "roc.svg")}
    write_data(tmp_path, shift=5.0)
    result = xpmagic("replay", "1", "--db", str(db_path), "--json", cwd=tmp_path)
    save = verdicts(result)["save"]
    assert save["verdict"] == "differs" and result.returncode == 1
    changed = {d["artifact"]: d for d in save["differences"] if "artifact" in d}  # `shift` is an output too
    assert set(changed) == {"model.txt", "saved"}  # same.txt reproduced; the svg holds its own time
    assert any("artifact 'roc.svg' has other bytes" in c for c in save["changes"])
    assert "artifact 'workdir' holds the database, which every run changes: not compared" in save["changes"]
    assert rows(db_path, f"SELECT replay_of FROM runs WHERE id = {save['replay_run']}") == [(1,)]
    assert {name: (tmp_path / name).read_bytes() for name in originals} == originals  # nothing of yours replaced
    kept = changed["model.txt"]["replay_file"]
    assert open(kept).read() == "weights 5.0" and os.path.isfile(os.path.join(changed["saved"]["replay_file"], "w.bin"))
    recorded = dict(rows(db_path, f"SELECT name, path FROM artifacts WHERE run_id = {save['replay_run']}"))
    assert recorded["model.txt"] == kept and recorded["same.txt"] == str(tmp_path / "same.txt")
    assert not list(tmp_path.glob(".xpmagic-replay-backup-*"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%load_ext xpmagic"),
                                         nbformat.v4.new_code_cell(SAVE)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(tmp_path / "save.ipynb"))
    write_data(tmp_path, shift=7.0)
    by_notebook = verdicts(xpmagic("replay", "save.ipynb", "--db", str(db_path), "--json", cwd=tmp_path))["save"]
    assert {d["artifact"] for d in by_notebook["differences"] if "artifact" in d} == {"model.txt", "saved"}
    assert {name: (tmp_path / name).read_bytes() for name in originals} == originals


def test_replays_of_one_database_guard_their_artifacts_one_at_a_time(shell, tmp_path, db_path):
    """Two replays at once (two clicks in the sidebar) would each copy aside the other's files and
    put those back: the second waits for the first."""
    import fcntl

    write_data(tmp_path)
    run_ok(shell, SAVE)
    write_data(tmp_path, shift=5.0)
    with open(tmp_path / ".xpmagic-replay.lock", "a+") as held:  # another replay's turn
        fcntl.flock(held, fcntl.LOCK_EX)
        exe = shutil.which("xpmagic", path=os.path.dirname(sys.executable))
        waiting = subprocess.Popen([exe, "replay", "1", "--db", str(db_path), "--json"], cwd=tmp_path,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = waiting.stderr.readline()
        assert line.strip() == "xpmagic: waiting for another replay of this database to finish"
        assert waiting.poll() is None and rows(db_path, "SELECT count(*) FROM runs") == [(1,)]  # not started
    out, _ = waiting.communicate(timeout=300)
    assert json.loads(out)[0]["verdict"] == "differs" and (tmp_path / "model.txt").read_text() == "weights 0.0"


HELD_SAVE = ("%%experiment held-save\n"
             "import pathlib, time\n"
             "pathlib.Path('model.txt').write_text('weights ' + open('data.csv').read().split()[1].split(',')[0])\n"
             "xp.artifact('model.txt')\n"
             "while pathlib.Path('hold').exists():\n"
             "    time.sleep(0.05)\n")


def test_a_replay_killed_midway_has_its_artifacts_put_back_by_the_next(shell, tmp_path, db_path):
    """SIGKILL (or a machine going down) skips the replay's own putting back: the recorded model
    would stay overwritten by the replay's, so the next replay of the database puts it back first."""
    import signal
    import time

    write_data(tmp_path)
    run_ok(shell, HELD_SAVE)
    write_data(tmp_path, shift=5.0)
    (tmp_path / "hold").write_text("")
    exe = shutil.which("xpmagic", path=os.path.dirname(sys.executable))
    killed = subprocess.Popen([exe, "replay", "1", "--db", str(db_path)], cwd=tmp_path, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while (tmp_path / "model.txt").read_text() != "weights 5.0":  # the replay's cell wrote its version
        assert time.monotonic() < deadline and killed.poll() is None
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    (tmp_path / "hold").unlink()  # the orphaned kernel ends its cell (and exits with its parent gone)
    assert list(tmp_path.glob(".xpmagic-replay-backup-*/manifest.json"))

    write_data(tmp_path, shift=7.0)
    result = xpmagic("replay", "1", "--db", str(db_path), "--json", cwd=tmp_path)
    assert verdicts(result)["held-save"]["verdict"] == "differs"
    assert (tmp_path / "model.txt").read_text() == "weights 0.0"  # yours, not either replay's
    assert "an earlier replay stopped midway had changed 1 recorded artifact(s)" in result.stderr
    kept = sorted(p.read_text() for p in tmp_path.glob("xpmagic-replays/*/model.txt"))
    assert kept == ["weights 5.0", "weights 7.0"] and not list(tmp_path.glob(".xpmagic-replay-backup-*"))


def test_a_seeded_run_that_imports_torch_itself_reproduces(tmp_path, monkeypatch):
    """`--seed` seeded only the libraries already imported: a notebook whose experiment cell
    imports torch drew unseeded weights, and its replay (which imports first) never matched."""
    torch = pytest.importorskip("torch")
    from nbclient import NotebookClient

    db = tmp_path / "xp.db"
    monkeypatch.setenv("XPMAGIC_DB", str(db))
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%load_ext xpmagic"),
        nbformat.v4.new_code_cell("%%experiment init --seed 7\nimport torch\nw = torch.randn(3)\n"
                                  "xp.log(w0=float(w[0]))\n")])
    NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    torch.manual_seed(7)
    assert rows(db, "SELECT last FROM metrics WHERE name = 'w0'") == [(pytest.approx(float(torch.randn(3)[0])),)]
    found = verdicts(xpmagic("replay", "1", "--db", str(db), "--json", cwd=tmp_path))
    assert found["init"]["verdict"] == "reproduced", found


def test_values_an_older_xpmagic_fingerprinted_are_not_reported_as_changed(recorded, tmp_path):
    """A new xpmagic may hash some values another way (fingerprint.SCHEME): a replay of a run it
    did not record compares metrics, and says why it compares only those."""
    with sqlite3.connect(recorded) as conn:  # as an older xpmagic recorded them
        conn.execute("UPDATE runs SET fingerprint_scheme = NULL")
        conn.execute("UPDATE run_variables SET fingerprint = 'an-older-digest-' || name")
        conn.execute("UPDATE datasets SET fingerprint = 'an-older-digest'")
    found = verdicts(xpmagic("replay", "train", "--db", str(recorded), "--json", cwd=tmp_path))
    for name in ("load-data", "train"):
        assert found[name]["verdict"] == "reproduced", found
        assert found[name]["changes"] == [
            f"the original's data and values were fingerprinted another way (xpmagic's scheme 1, now {SCHEME}): "
            "only metrics are compared"]
    shown = json.loads(xpmagic("diff", "2", str(found["train"]["replay_run"]), "--db", str(recorded), "--json",
                               cwd=tmp_path).stdout)
    assert {"name": "fingerprint scheme", "a": 1, "b": SCHEME} in shown["other"]
    assert shown["inputs"] == [] and shown["datasets"] == []  # digests made another way: no data change


def test_a_value_the_older_scheme_could_not_hash_is_no_change(recorded, tmp_path):
    """Schemes 3 and 4 only gave digests to values scheme 2 had none for (pandas indexes, polars
    frames, partials, dataclasses): runs of both are still compared, but a value one could not hash is no change."""
    with sqlite3.connect(recorded) as conn:  # as xpmagic's scheme 2 recorded them
        conn.execute("UPDATE runs SET fingerprint_scheme = 2")
        conn.execute("UPDATE run_variables SET fingerprint = NULL WHERE run_id = 2 AND name = 'frame'")
    found = verdicts(xpmagic("replay", "train", "--db", str(recorded), "--json", cwd=tmp_path))
    assert found["train"]["verdict"] == "reproduced" and found["train"]["changes"] == [], found
    shown = json.loads(xpmagic("diff", "2", str(found["train"]["replay_run"]), "--db", str(recorded), "--json",
                               cwd=tmp_path).stdout)
    assert {"name": "fingerprint scheme", "a": 2, "b": SCHEME} in shown["other"] and shown["inputs"] == []
    write_data(tmp_path, shift=5.0)  # digests both schemes made are still compared
    found = verdicts(xpmagic("replay", "train", "--db", str(recorded), "--json", cwd=tmp_path))
    assert any("data set 'table' fingerprint changed" in c for c in found["load-data"]["changes"]), found


def test_a_large_value_the_older_scheme_sampled_otherwise_is_no_change(shell, tmp_path, db_path):
    """Scheme 6 samples large values in runs of consecutive values (eight times less memory read
    than every k-th value): their digests differ from scheme 5's, which is no change of the data,
    while every value both hash whole is still compared."""
    run_ok(shell, "%%experiment scores\nimport numpy as np\nbig = np.arange(3_000_000.0)\nsmall = np.arange(10.0)\n"
                  "total = float(big.sum() + small.sum())\nxp.log(total=total)\n")
    with sqlite3.connect(db_path) as conn:  # as scheme 5 recorded them
        conn.execute("UPDATE runs SET fingerprint_scheme = 5")
        conn.execute("UPDATE run_variables SET fingerprint = 'scheme-5-sample' WHERE name = 'big'")
    found = verdicts(xpmagic("replay", "1", "--db", str(db_path), "--json", cwd=tmp_path))
    assert found["scores"]["verdict"] == "reproduced" and found["scores"]["changes"] == [], found
    with sqlite3.connect(db_path) as conn:  # a value both hash whole still counts
        conn.execute("UPDATE run_variables SET fingerprint = 'another-value' WHERE run_id = 1 AND name = 'small'")
    found = verdicts(xpmagic("replay", "1", "--db", str(db_path), "--json", cwd=tmp_path))
    assert [d["output"] for d in found["scores"]["differences"]] == ["small"], found


def test_an_xgboost_model_the_older_scheme_hashed_without_its_booster_is_no_change(shell, tmp_path, db_path):
    """Scheme 7 hashes an XGBoost or LightGBM model with its booster (before, by its parameters
    only): a replay of a run recorded by scheme 6 must not call that digest a change, while a model
    hashed alike by both still counts."""
    pytest.importorskip("xgboost")
    run_ok(shell, "%%experiment boost\nimport numpy as np, xgboost as xgb\nfrom sklearn.linear_model import Ridge\n"
                  "X = np.arange(40.0).reshape(20, 2)\ny = np.arange(20) % 2\n"
                  "model = xgb.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(X, y)\n"
                  "ridge = Ridge().fit(X, y)\nxp.log(score=float(model.score(X, y)))\n")
    with sqlite3.connect(db_path) as conn:  # as scheme 6 recorded them
        conn.execute("UPDATE runs SET fingerprint_scheme = 6")
        conn.execute("UPDATE run_variables SET fingerprint = 'params-only', summary = replace(summary, "
                     "',\"booster\":true', '') WHERE name = 'model'")
    found = verdicts(xpmagic("replay", "1", "--db", str(db_path), "--json", cwd=tmp_path))
    assert found["boost"]["verdict"] == "reproduced" and found["boost"]["changes"] == [], found
    with sqlite3.connect(db_path) as conn:  # a model both hash alike still counts
        conn.execute("UPDATE run_variables SET fingerprint = 'another-fit' WHERE run_id = 1 AND name = 'ridge'")
    found = verdicts(xpmagic("replay", "1", "--db", str(db_path), "--json", cwd=tmp_path))
    assert [d["output"] for d in found["boost"]["differences"]] == ["ridge"], found


HELPERS = ("SCALE = 2.0\n\n"
           "def scaled(X):\n    return X * SCALE\n\n"
           "@lru_cache\ndef make(C):\n    return LR(C=C)\n\n"
           "class Wrapper:\n    def __init__(self, C):\n        self.model = make(C)\n"
           "    def fit(self, X, y):\n        self.model.fit(scaled(X), y)\n        return self\n")


def test_a_run_whose_imports_helpers_and_generator_came_from_plain_cells_reproduces(shell, tmp_path, db_path):
    """Most notebooks import and define helpers in plain cells at the top: a run records the
    code that binds what it read, and the rebuilt notebook runs it first. A seeded generator is
    the same value in the replay (its repr has a memory address in it)."""
    run_ok(shell, "import numpy as np\nfrom functools import lru_cache\n"
                  "from sklearn.linear_model import LogisticRegression as LR\n")
    run_ok(shell, HELPERS)
    run_ok(shell, "%%experiment data\nrng = np.random.default_rng(1)\n"
                  "X = rng.normal(size=(80, 3))\ny = (X[:, 0] > 0).astype(int)\n")
    run_ok(shell, "%%experiment fit\nw = Wrapper(xp.param('C', 1.0)).fit(X, y)\n"
                  "xp.log(accuracy=w.model.score(scaled(X), y), draw=float(rng.random()))\n")

    def shown(run):
        return json.loads(xpmagic("show", run, "--db", str(db_path), "--json", cwd=tmp_path).stdout)

    assert shown("1")["imports"] == ["import numpy as np"]
    fit = shown("2")
    assert fit["imports"] == ["from functools import lru_cache",
                              "from sklearn.linear_model import LogisticRegression as LR"]
    assert [d["name"] for d in fit["definitions"]] == ["make", "SCALE", "scaled", "Wrapper"]  # what each uses first
    assert fit["definitions"][0]["source"] == "@lru_cache\ndef make(C):\n    return LR(C=C)\n"
    result = xpmagic("replay", "fit", "--db", str(db_path), "--json", cwd=tmp_path)
    found = verdicts(result)
    assert found["fit"]["verdict"] == "reproduced", found
    assert found["data"]["verdict"] == "reproduced", found
    assert result.returncode == 0


def test_settings_made_in_plain_cells_are_rebuilt_by_the_replay(shell, tmp_path, db_path):
    """`cv = StratifiedKFold(...)`, a dataclass of the notebook's, an argparse namespace: made in
    a setup cell, read by the run. The replay had no such cell and failed on the name; the run now
    records a line that makes each again, and the verdict checks it made the same value."""
    run_ok(shell, "import argparse, dataclasses\nfrom sklearn.model_selection import StratifiedKFold\n"
                  "@dataclasses.dataclass\nclass Config:\n    C: float = 1.0\n    sizes: tuple = (5, 3)\n"
                  "cfg = Config(C=0.5)\ncv = StratifiedKFold(3, shuffle=True, random_state=0)\n"
                  "args = argparse.Namespace(max_iter=200, solver='lbfgs')\n")
    run_ok(shell, "%%experiment fit --seed 0\nfrom sklearn.datasets import load_iris\n"
                  "from sklearn.linear_model import LogisticRegression\n"
                  "from sklearn.model_selection import cross_val_score\nX, y = load_iris(return_X_y=True)\n"
                  "model = LogisticRegression(C=cfg.C, max_iter=args.max_iter, solver=args.solver)\n"
                  "xp.log(accuracy=cross_val_score(model, X, y, cv=cv).mean())\n")
    recorded = {d["name"]: d["source"] for d in json.loads(
        xpmagic("show", "1", "--db", str(db_path), "--json", cwd=tmp_path).stdout)["definitions"]}
    assert recorded["cv"] == "cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)"
    assert recorded["cfg"] == "cfg = Config(C=0.5, sizes=(5, 3))" and "class Config:" in recorded["Config"]
    found = verdicts(xpmagic("replay", "fit", "--db", str(db_path), "--json", cwd=tmp_path))
    assert found["fit"]["verdict"] == "reproduced", found


def test_unseeded_randomness_is_flagged(shell, tmp_path, db_path):
    run_ok(shell, "%%experiment noisy\nimport random\nxp.log(score=random.random())\n")
    found = verdicts(xpmagic("replay", "noisy", "--db", str(db_path), "--json", cwd=tmp_path))
    assert found["noisy"]["verdict"] == "differs"
    # Which packages each session happened to import (pytest here, ipykernel there) is not a change.
    assert len(found["noisy"]["changes"]) == 1 and "set no seed" in found["noisy"]["changes"][0]


def test_a_redacted_secret_parameter_comes_from_the_environment_in_the_replay(shell, tmp_path, db_path,
                                                                            monkeypatch):
    monkeypatch.setenv("XP_SERVICE_TOKEN", "tok-0123456789abcdef")
    run_ok(shell, "%%experiment keyed --seed 0\nimport os\n"
                  "key = xp.param('api_key', os.environ.get('XP_SERVICE_TOKEN', 'unset'))\nxp.log(n=len(key))\n")
    found = verdicts(xpmagic("replay", "keyed", "--db", str(db_path), "--json", cwd=tmp_path))
    assert found["keyed"]["verdict"] == "reproduced", found["keyed"]


def test_an_input_from_an_unrecorded_cell_is_named_with_the_way_out(shell, tmp_path, db_path):
    run_ok(shell, "base = [21]\n")  # data (a literal constant would be recorded with the run)
    run_ok(shell, "%%experiment doubled\nxp.log(v=base[0] * 2)\n")
    found = verdicts(xpmagic("replay", "doubled", "--db", str(db_path), "--json", cwd=tmp_path))
    assert found["doubled"]["verdict"] == "failed" and found["doubled"]["error"]["type"] == "NameError"
    assert any(c.startswith("input 'base' was not defined in the replay") and "without %%experiment" in c
               for c in found["doubled"]["changes"]), found["doubled"]["changes"]


def test_a_value_read_under_another_name_than_its_run_wrote_it_is_rebuilt(recorded, shell, tmp_path, db_path):
    """Lineage matches by fingerprint: a plain cell loading the same file as `frame2` reads what
    run 1 wrote as `frame`. The replay binds the name the run read, and replaying again replays
    the recorded run, not the first replay."""
    run_ok(shell, "frame2 = pd.read_csv('data.csv')\n")
    run_ok(shell, "%%experiment rows\nxp.log(n=len(frame2))\n")
    for _ in range(2):
        found = verdicts(xpmagic("replay", "rows", "--db", str(db_path), "--json", cwd=tmp_path))
        assert found["rows"]["verdict"] == "reproduced", found
        assert found["rows"]["run"] == 3 and found["load-data"]["run"] == 1


def test_a_run_that_failed_and_fails_again_the_same_way_is_reproduced(shell, tmp_path, db_path):
    """What the run recorded was its failure (a tutorial's cell showing an error on purpose):
    failing the same way reproduces it; failing otherwise does not."""
    shell.run_cell("%%experiment broken\n1 / 0\n")
    found = verdicts(xpmagic("replay", "broken", "--db", str(db_path), "--json", cwd=tmp_path))
    assert found["broken"]["verdict"] == "reproduced"
    assert found["broken"]["changes"] == ["it failed as the original run did (ZeroDivisionError: division by zero)"]
    shell.run_cell("%%experiment broken\n{}['missing']\n")
    with sqlite3.connect(db_path) as conn:  # as if it had failed otherwise when it was recorded
        conn.execute("UPDATE runs SET error_message = 'another message' WHERE id = 3")
    found = verdicts(xpmagic("replay", "3", "--db", str(db_path), "--json", cwd=tmp_path))
    assert found["broken"]["verdict"] == "failed"
    assert found["broken"]["changes"][0] == "the original run failed too, with KeyError: another message"


def test_a_local_module_edited_since_the_run_is_named_as_the_cause(shell, tmp_path, db_path):
    helper = tmp_path / "xp_replay_helper.py"
    helper.write_text("def scale(x):\n    return x * 2\n")
    try:
        run_ok(shell, f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport xp_replay_helper\n")
        run_ok(shell, "%%experiment scaled --seed 0\nxp.log(v=xp_replay_helper.scale(21))\n")
    finally:
        sys.modules.pop("xp_replay_helper", None)
        shell.run_cell(f"sys.path.remove({str(tmp_path)!r})")
    helper.write_text("def scale(x):\n    return x * 3\n")
    found = verdicts(xpmagic("replay", "scaled", "--db", str(db_path), "--json", cwd=tmp_path))
    assert found["scaled"]["verdict"] == "differs"
    assert found["scaled"]["changes"] == [
        f"local module xp_replay_helper (xp_replay_helper.py) changed since the original "
        f"(xpmagic diff 1 {found['scaled']['replay_run']} shows how)"]


def test_a_cell_that_now_fails_reports_its_index_and_error(recorded, tmp_path):
    (tmp_path / "data.csv").unlink()
    result = xpmagic("replay", "train", "--db", str(recorded), "--json", cwd=tmp_path)
    found = verdicts(result)
    error = found["load-data"]["error"]
    assert found["load-data"]["verdict"] == "failed" and error["type"] == "FileNotFoundError"
    assert error["cell"] == 3  # markdown, %load_ext, next_run, then the load-data cell
    assert "data set 'table' was not recorded in the replay" in " ".join(found["load-data"]["changes"])
    assert found["train"]["verdict"] == "failed" and result.returncode == 1


def test_text_output_shows_progress_and_a_summary(recorded, tmp_path):
    result = xpmagic("replay", "train", "--db", str(recorded), cwd=tmp_path)
    assert "REPRODUCED" in result.stdout and "2/2 reproduced" in result.stdout
    assert "replay" in result.stderr and "cell" in result.stderr  # the progress bar


def test_replaying_a_notebook_compares_with_the_latest_recordings(shell, tmp_path, db_path):
    write_data(tmp_path)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext xpmagic"), nbformat.v4.new_code_cell(LOAD),
                nbformat.v4.new_code_cell(TRAIN)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "analysis.ipynb"
    nbformat.write(nb, str(path))
    first = xpmagic("replay", str(path), "--db", str(db_path), "--json", cwd=tmp_path)
    assert {v["verdict"] for v in verdicts(first).values()} == {"recorded"}  # nothing to compare yet
    assert first.returncode == 1
    second = verdicts(xpmagic("replay", str(path), "--db", str(db_path), "--json", cwd=tmp_path))
    assert second["train"]["verdict"] == "reproduced" and second["train"]["run"] == 2
    xpmagic("replay", "2", "--db", str(db_path), cwd=tmp_path)  # a replay of the run: a check, not a recording
    third = verdicts(xpmagic("replay", str(path), "--db", str(db_path), "--json", cwd=tmp_path))
    assert third["train"]["run"] == 2  # still compared with what you recorded, not with a replay of it


def test_each_cell_of_a_notebook_is_compared_with_its_own_recording(tmp_path, db_path):
    """A notebook runs one experiment from several cells (a baseline, then variations): each is
    compared with the latest recording of its own cell, not with whichever cell ran last."""
    cells = ["%%experiment tune\nxp.log(score=1.0)\n", "%%experiment tune\nxp.log(score=2.0)\n",
             "%%experiment tune\nxp.log(score=1.0)\n"]  # the first cell again, later in the notebook
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext xpmagic")] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "variations.ipynb"
    nbformat.write(nb, str(path))

    def replayed() -> list[tuple[int, str, str]]:
        result = xpmagic("replay", str(path), "--db", str(db_path), "--json", cwd=tmp_path)
        return [(v["run"], v["verdict"], " ".join(v["changes"])) for v in json.loads(result.stdout)]

    assert [verdict for _, verdict, _ in replayed()] == ["recorded"] * 3  # runs 1, 2 and 3
    assert [(run, verdict) for run, verdict, _ in replayed()] == [(1, "reproduced"), (2, "reproduced"),
                                                                 (3, "reproduced")]
    nb.cells[2].source = "%%experiment tune\nxp.log(score=3.0)\n"  # the variation, edited
    nbformat.write(nb, str(path))
    (first, _, _), (second, verdict, changes), (third, _, _) = replayed()
    assert (first, second, third) == (1, 2, 3) and verdict == "differs" and "code changed" in changes


def test_a_notebooks_optimizations_are_compared_trial_by_trial(tmp_path, db_path):
    objective = ("C = xp.param('C', 1.0, low=0.01, high=100.0, log=True)\n"
                 "xp.log(score=-abs(math.log10(C) - 0.5))\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext xpmagic\nimport math"),
                # Neither study is waited for: the replay lets them finish before the kernel stops.
                nbformat.v4.new_code_cell(f"%%experiment seeded --optimize score --trials 6 --seed 3\n{objective}"),
                nbformat.v4.new_code_cell(f"%%experiment unseeded --optimize score --trials 6\n{objective}")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "search.ipynb"
    nbformat.write(nb, str(path))
    first = verdicts(xpmagic("replay", str(path), "--db", str(db_path), "--json", cwd=tmp_path))
    assert {v["verdict"] for v in first.values()} == {"recorded"}
    second = xpmagic("replay", str(path), "--db", str(db_path), "--json", cwd=tmp_path)
    again = verdicts(second)
    assert again["seeded (study seeded-2)"]["verdict"] == "reproduced"
    unseeded = again["unseeded (study unseeded-2)"]
    assert unseeded["verdict"] == "differs" and second.returncode == 1
    assert any(d["metric"].startswith("trial ") for d in unseeded["differences"])
    assert any("set no seed" in change for change in unseeded["changes"])
    with sqlite3.connect(db_path) as conn:  # every study ran all its trials, and each links to its original
        assert conn.execute("SELECT count(*) FROM runs WHERE trial_state = 'complete'").fetchone() == (24,)
        assert conn.execute("SELECT count(*) FROM runs WHERE study_id IS NOT NULL AND replay_of IS NOT NULL"
                            ).fetchone() == (12,)
    third = verdicts(xpmagic("replay", str(path), "--db", str(db_path), "--json", cwd=tmp_path))
    # compared with the studies first recorded, not with the replay's: the same original best trial
    assert third["seeded (study seeded-3)"]["run"] == again["seeded (study seeded-2)"]["run"]


def test_two_optimizations_of_one_experiment_are_each_compared_with_their_own(tmp_path, db_path):
    """A notebook searching one experiment twice (a wide space, then a narrow one): each replayed
    study is compared with the study its own cell made, not both with whichever ran last."""
    objective = "C = xp.param('C', 1.0, low={low}, high={high}, log=True)\nxp.log(score=-abs(math.log10(C) - 0.5))\n"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext xpmagic\nimport math")] + [
        nbformat.v4.new_code_cell("%%experiment tune --optimize score --trials 3 --seed 3 --no-recommend\n"
                                  + objective.format(low=low, high=high))
        for low, high in ((0.01, 100.0), (1.0, 10.0))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "twice.ipynb"
    nbformat.write(nb, str(path))
    xpmagic("replay", str(path), "--db", str(db_path), "--json", cwd=tmp_path)  # records studies tune-1, tune-2
    found = json.loads(xpmagic("replay", str(path), "--db", str(db_path), "--json", cwd=tmp_path).stdout)
    assert [v["verdict"] for v in found] == ["reproduced", "reproduced"], found


def test_a_studys_replay_compares_the_files_its_trials_saved(tmp_path, db_path):
    """A trial that saves its model: a replayed study whose scores match but whose models do not
    (other training data) differs, trial by trial, and the trials' original files stay yours."""
    objective = ("C = xp.param('C', 1.0, low=0.01, high=100.0, log=True)\n"
                 "name = f'model-{C:.4f}.txt'\n"
                 "pathlib.Path(name).write_text('weights ' + open('shift.txt').read())\n"
                 "xp.artifact(name)\n"
                 "xp.log(score=-abs(math.log10(C) - 0.5))\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext xpmagic\nimport math, pathlib"),
                nbformat.v4.new_code_cell(f"%%experiment saving --optimize score --trials 4 --seed 3\n{objective}")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(tmp_path / "search.ipynb"))
    (tmp_path / "shift.txt").write_text("0")
    xpmagic("replay", "search.ipynb", "--db", str(db_path), "--json", cwd=tmp_path)
    originals = {p.name: p.read_text() for p in tmp_path.glob("model-*.txt")}
    assert len(originals) == 4 and set(originals.values()) == {"weights 0"}
    again = verdicts(xpmagic("replay", "search.ipynb", "--db", str(db_path), "--json", cwd=tmp_path))
    assert again["saving (study saving-2)"]["verdict"] == "reproduced", again
    (tmp_path / "shift.txt").write_text("1")
    changed = verdicts(xpmagic("replay", "search.ipynb", "--db", str(db_path), "--json", cwd=tmp_path))
    study = changed["saving (study saving-3)"]
    assert study["verdict"] == "differs"
    trials = sorted(d["artifact"].split()[1] for d in study["differences"])  # "trial N model-....txt"
    assert trials == ["0", "1", "2", "3"], study
    assert all(open(d["replay_file"]).read() == "weights 1" for d in study["differences"])
    assert {p.name: p.read_text() for p in tmp_path.glob("model-*.txt")} == originals


def test_a_notebook_without_experiment_cells_is_refused_before_it_runs(recorded, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("open('ran.txt', 'w').write('side effect')")]
    nbformat.write(nb, tmp_path / "plain.ipynb")
    result = xpmagic("replay", str(tmp_path / "plain.ipynb"), "--db", str(recorded), cwd=tmp_path)
    assert result.returncode == 2 and "has no %%experiment cells" in result.stderr
    assert not (tmp_path / "ran.txt").exists()


def test_exported_notebook_runs_under_nbclient_and_papermill(recorded, tmp_path):
    out = tmp_path / "train.ipynb"
    assert xpmagic("export-notebook", "2", "--db", str(recorded), "-o", str(out), cwd=tmp_path).returncode == 0
    nb = nbformat.read(str(out), as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    from nbclient import NotebookClient

    env_db = os.environ.get("XPMAGIC_DB")
    os.environ["XPMAGIC_DB"] = str(recorded)
    try:
        NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
        import papermill

        papermill.execute_notebook(str(out), str(tmp_path / "pm.ipynb"), parameters={"C": 0.5},
                                   cwd=str(tmp_path), kernel_name="python3", progress_bar=False)
    finally:
        if env_db is None:
            os.environ.pop("XPMAGIC_DB", None)
        else:
            os.environ["XPMAGIC_DB"] = env_db
    with sqlite3.connect(recorded) as conn:
        values = conn.execute("SELECT p.value FROM params p JOIN runs r ON r.id = p.run_id"
                              " WHERE p.name = 'C' ORDER BY r.id").fetchall()
    assert [json.loads(v[0]) for v in values] == [1.0, 1.0, 0.5]


def test_a_database_from_someone_else_needs_trust(recorded, tmp_path):
    with sqlite3.connect(recorded) as conn:
        conn.execute("UPDATE db_info SET value = 'mallory' WHERE key = 'created_by'")
    refused = xpmagic("replay", "train", "--db", str(recorded), cwd=tmp_path)
    assert refused.returncode == 2 and "created by mallory" in refused.stderr and "--trust" in refused.stderr
    trusted = xpmagic("replay", "train", "--db", str(recorded), "--trust", cwd=tmp_path)
    assert trusted.returncode == 0, trusted.stderr


def test_replay_from_the_notebook_magic(shell, tmp_path, db_path):
    write_data(tmp_path)
    run_ok(shell, LOAD)
    run_ok(shell, TRAIN)
    report = shell.run_line_magic("xp", "replay train")
    assert report.ok and "reproduced" in report._repr_html_()


@pytest.mark.parametrize("command", [["replay", "2"], ["export-notebook", "2", "-o", "run.ipynb"]])
def test_without_the_notebook_extra_replay_names_it_in_one_line(recorded, tmp_path, command):
    """A plain `pip install xpmagic` records runs, but has no nbformat or nbclient."""
    script = ("import sys\nsys.modules['nbformat'] = sys.modules['nbclient'] = None  # as if not installed\n"
              "from xpmagic.cli import main\nsys.exit(main())")
    result = subprocess.run([sys.executable, "-c", script, *command, "--db", str(recorded)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"xpmagic: {command[0]} needs the package 'nbformat': pip install 'xpmagic[notebook]'")


def test_the_best_trial_reruns_as_a_single_recorded_run(shell, tmp_path, db_path):
    write_data(tmp_path)
    run_ok(shell, LOAD)
    run_ok(shell, TRAIN.replace("--seed 0", "--optimize accuracy --trials 4 --sampler random --seed 1"))
    study = shell.user_ns["xp"].study("train")
    assert study.wait(60) and study.state == "finished"
    best = shell.user_ns["xp"].get(study.best_run)
    assert best.trial_number is not None and best.params == study.best_params
    result = xpmagic("replay", "train", "--best", "--db", str(db_path), "--json", cwd=tmp_path)
    found = verdicts(result)
    assert found["train"]["verdict"] == "reproduced" and result.returncode == 0, json.dumps(found, indent=1)
    rerun = shell.user_ns["xp"].get(found["train"]["replay_run"])
    assert rerun.trial_number is None and rerun.replay_of == best.id  # one plain run, not a trial
    assert rerun.params == best.params and rerun.metrics["accuracy"] == best.metrics["accuracy"]


def test_a_trial_records_no_seed_since_its_code_ran_unseeded(shell, tmp_path, db_path):
    """A study's --seed seeds its sampler, not the trials' code: trial runs said "seed 1", so the
    rerun of the best one seeded numpy (other numbers than the trial drew) and never named the
    missing seed as the cause."""
    run_ok(shell, "%%experiment noisy --optimize score --trials 3 --sampler random --seed 1\n"
                  "import numpy as np\nx = xp.param('x', 0.5, low=0.0, high=1.0)\nxp.log(score=x + np.random.rand())\n")
    study = shell.user_ns["xp"].study("noisy")
    assert study.wait(60) and study.state == "finished"
    assert rows(db_path, "SELECT DISTINCT seed FROM runs WHERE study_id IS NOT NULL") == [(None,)]
    assert rows(db_path, "SELECT seed FROM studies") == [(1,)]
    found = verdicts(xpmagic("replay", "noisy", "--best", "--db", str(db_path), "--json", cwd=tmp_path))
    assert found["noisy"]["verdict"] == "differs"
    assert any("set no seed" in change for change in found["noisy"]["changes"]), found


def test_the_best_trial_of_an_objective_calling_a_notebook_helper_reruns(shell, tmp_path, db_path):
    """The objective calls a helper from a plain cell, and the helper reads the data a recorded
    run made: the data is an input of every trial, so the rerun rebuilds that run first."""
    write_data(tmp_path)
    run_ok(shell, LOAD)
    run_ok(shell, "from sklearn.linear_model import LogisticRegression\n\n"
                  "class Base:\n    pass\n\n"
                  "class Fitter(Base):\n    def score(self, C):\n"
                  "        X, y = frame[['a', 'b']].to_numpy(), frame['label'].to_numpy()\n"
                  "        return LogisticRegression(C=C).fit(X, y).score(X, y)\n")
    run_ok(shell, "%%experiment tune --optimize accuracy --trials 3 --sampler random --seed 1\n"
                  "xp.log(accuracy=Fitter().score(xp.param('C', 1.0, low=0.01, high=100.0, log=True)))\n")
    study = shell.user_ns["xp"].study("tune")
    assert study.wait(60) and study.state == "finished"
    best = shell.user_ns["xp"].get(study.best_run)
    assert best.lineage == [1] and [d["name"] for d in best.definitions] == ["Base", "Fitter"]
    found = verdicts(xpmagic("replay", "tune", "--best", "--db", str(db_path), "--json", cwd=tmp_path))
    assert found["tune"]["verdict"] == "reproduced", json.dumps(found, indent=1)


def test_best_of_a_study_without_complete_trials_is_one_line(recorded, tmp_path):
    result = xpmagic("replay", "no-such-study", "--best", "--db", str(recorded), cwd=tmp_path)
    assert result.returncode != 0 and "no study named 'no-such-study'" in result.stderr
    assert "Traceback" not in result.stderr

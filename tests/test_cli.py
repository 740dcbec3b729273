"""The `xpmagic` command, run as a real process on a database made by the magic."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import run_ok
from xpmagic.fingerprint import SCHEME


def xpmagic(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    exe = shutil.which("xpmagic", path=os.path.dirname(sys.executable))
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


@pytest.fixture
def recorded(shell, db_path):
    run_ok(shell, "%%experiment prep --seed 1\nimport numpy as np\nX = np.arange(30.0).reshape(10, 3)\n")
    run_ok(shell, "%%experiment fit --tag t1\nC = xp.param('C', 1.0, low=0.1, high=10.0)\n"
                  "xp.dataset(X)\nfor i in range(3):\n    xp.log('loss', 1.0 / (i + 1))\n"
                  "xp.log(acc=0.8)\nprint('done')\n")
    run_ok(shell, "%%experiment fit --tag t1\nC = xp.param('C', 2.0, low=0.1, high=10.0)\n"
                  "xp.dataset(X)\nxp.log(acc=0.9)\n")
    shell.run_cell("%%experiment fit\nraise RuntimeError('diverged')\n")
    return db_path


def test_runs_json_lists_every_run_with_params_and_metrics(recorded):
    result = xpmagic("runs", "--db", str(recorded), "--json")
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)
    assert [r["id"] for r in runs] == [4, 3, 2, 1]
    fit = runs[2]
    assert fit["experiment"] == "fit" and fit["status"] == "ok"
    assert fit["params"] == {"C": 1.0} and fit["metrics"] == {"loss": pytest.approx(1 / 3), "acc": 0.8}
    assert {"started_at", "duration_s"} <= fit.keys()
    assert runs[0]["status"] == "failed"


def test_reading_commands_start_without_importing_pandas(recorded):
    """A terminal command that reads a current database answers in about 0.2 s; importing pandas
    (sqlite-utils imports it) would add 0.3 s to each."""
    reads = [["runs", "--json"], ["show", "2"], ["show", "2", "--json"], ["diff", "2", "3"], ["lineage", "2"]]
    script = ("import sys\nfrom xpmagic.cli import main\n"
              f"for args in {reads!r}:\n"
              f"    assert main(args + ['--db', {str(recorded)!r}]) == 0\n"
              "print(sorted(m for m in ('pandas', 'sqlite_utils') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_runs_filters_by_experiment_and_prints_a_table(recorded):
    result = xpmagic("runs", "--db", str(recorded), "--experiment", "prep", "--json")
    assert [r["experiment"] for r in json.loads(result.stdout)] == ["prep"]
    table = xpmagic("runs", "--db", str(recorded))
    assert "params.C" in table.stdout and "metrics.acc" in table.stdout


def test_the_runs_table_leaves_what_a_run_did_not_record_blank_and_wraps_to_the_terminal(recorded):
    """It printed NaN for every metric a run did not log, and durations as 0.000538."""
    from xpmagic.runstable import runs_table
    from xpmagic.store import Store

    header, rule, *lines = xpmagic("runs", "--db", str(recorded)).stdout.splitlines()
    assert "nan" not in "\n".join(lines).lower() and set(rule) == {"-", " "}
    by_id = {line.split()[0]: line for line in lines}
    assert by_id["4"].split()[:3] == ["4", "fit", "failed"] and by_id["4"].rstrip().endswith("ms")  # no C, no acc
    assert by_id["2"].split()[-4:] == ["ms", "1", "0.8", "0.333333"]  # duration, C, acc, loss
    runs = Store(recorded, create=False).list_runs(None, None)
    blocks = runs_table(runs, width=60).split("\n\n")
    assert len(blocks) == 2 and all(block.startswith("id ") for block in blocks)
    assert all(len(line) <= 60 for line in "\n".join(blocks).splitlines())
    assert "metrics.loss" in blocks[1] and "metrics.loss" not in blocks[0]


def test_the_runs_table_orders_numbered_names_naturally_and_shows_whole_seconds(shell, db_path):
    import re

    run_ok(shell, "%%experiment layers\n" + "".join(f"xp.param('layer_{i}', {i})\n" for i in (10, 2, 1)))
    header, _, row = xpmagic("runs", "--db", str(db_path)).stdout.splitlines()  # piped: one line per run
    assert header.index("params.layer_1 ") < header.index("params.layer_2") < header.index("params.layer_10")
    assert re.search(r" \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", row) and "+00:00" not in row


def test_show_json_has_the_whole_record(recorded):
    run = json.loads(xpmagic("show", "2", "--db", str(recorded), "--json").stdout)
    for key in ("code", "code_hash", "error", "stdout", "seed", "env", "git", "notebook",
                "cell_id", "inputs", "outputs", "lineage", "datasets", "artifacts"):
        assert key in run
    assert run["stdout"] == "done\n" and run["error"] is None and run["seed"] is None
    assert run["fingerprint_scheme"] == SCHEME
    assert run["lineage"] == [1] and "X" in run["inputs"]
    assert run["datasets"][0]["shape"] == [10, 3]
    assert run["env"]["python"] == sys.version.split()[0]
    failed = json.loads(xpmagic("show", "4", "--db", str(recorded), "--json").stdout)
    assert failed["error"]["type"] == "RuntimeError" and "diverged" in failed["error"]["traceback"]


def test_diff_json_names_what_changed(recorded):
    diff = json.loads(xpmagic("diff", "2", "3", "--db", str(recorded), "--json").stdout)
    assert {"name": "C", "a": 1.0, "b": 2.0} in diff["params"]
    assert {"name": "acc", "a": 0.8, "b": 0.9} in diff["metrics"]
    assert "-C = xp.param('C', 1.0" in diff["code_diff"]
    text = xpmagic("diff", "2", "3", "--db", str(recorded)).stdout
    assert "C: 1 -> 2" in text


def test_show_json_names_the_study_of_a_trial(shell, db_path):
    run_ok(shell, "%%experiment tuned --optimize score --trials 2 --seed 0\nx = xp.param('x', 0.5, low=0.0, high=1.0)\n"
                  "xp.log(score=x)\n")
    assert shell.user_ns["xp"].study("tuned").wait(60)
    trial = json.loads(xpmagic("show", "2", "--db", str(db_path), "--json").stdout)
    assert (trial["study"], trial["trial_number"], trial["replay_of"]) == ("tuned", 1, None)


def test_every_command_has_help():
    for command in ("runs", "show", "diff", "lineage", "export", "db"):
        result = xpmagic(command, "--help")
        assert result.returncode == 0 and "usage: xpmagic" in result.stdout
    assert xpmagic("help", "show").stdout.startswith("usage: xpmagic show")  # `help COMMAND` as `COMMAND --help`
    bare = xpmagic()  # no command: what the commands are, not an error
    assert bare.returncode == 0 and "usage: xpmagic" in bare.stdout and "replay" in bare.stdout
    from xpmagic import __version__

    assert xpmagic("--version").stdout == f"xpmagic {__version__}\n"
    wrong = xpmagic("frobnicate")
    assert wrong.stderr.startswith("xpmagic: argument COMMAND: invalid choice")  # said once, not "xpmagic: xpmagic:"


@pytest.mark.parametrize("args, code, expected", [
    (("show", "99"), 1, "no run 99"),
    (("show", "abc"), 2, "not a run id"),
    (("show", "99999999999999999999999"), 2, "run ids are positive numbers up to"),  # past SQLite's integers
    (("pause", "x" * 500), 2, "no study named 'xxxxxxxxxx"),
    (("frobnicate",), 2, "invalid choice"),
    (("runs", "--experiment", "nosuch"), 2, "no experiment 'nosuch'"),
    (("runs", "--experiment", "fti"), 2, "no experiment 'fti' in"),  # a typo: the near names
    (("runs", "--experiment", "fti"), 2, "; did you mean 'fit'?"),
    (("runs", "--limit", "0"), 2, "--limit: must be at least 1"),
    (("export", "--to", "prov", "--experiment", "nosuch"), 2, "no experiment 'nosuch'"),
    (("replay", "1", "--tolerance", "-1"), 2, "--tolerance: must be 0 or more"),
    (("export", "--to", "json", "--out", "/nonexistent-folder/runs.json"), 2, "cannot use the file /nonexistent"),
    (("knowledge", "export", "/nonexistent-folder/k.json"), 2, "check the path and that its folder exists"),
])
def test_bad_input_is_one_line(recorded, args, code, expected):
    result = xpmagic(*args, "--db", str(recorded)) if args[0] != "frobnicate" else xpmagic(*args)
    assert result.returncode == code
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_missing_and_corrupt_databases_are_one_line_and_untouched(tmp_path):
    missing = tmp_path / "nope.db"
    result = xpmagic("runs", "--db", str(missing))
    assert result.returncode == 1 and "no xpmagic database" in result.stderr
    assert not missing.exists()
    corrupt = tmp_path / "bad.db"
    corrupt.write_text("garbage " * 100)
    result = xpmagic("runs", "--db", str(corrupt))
    assert result.returncode == 1 and "not a SQLite database" in result.stderr
    assert corrupt.read_text() == "garbage " * 100
    assert "Traceback" not in result.stderr
    result = xpmagic("runs", "--db", str(tmp_path))
    assert result.returncode == 1 and "is a folder, not a database file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_db_env_variable_is_the_default(recorded, tmp_path):
    env = {**os.environ, "XPMAGIC_DB": str(recorded)}
    result = xpmagic("runs", "--json", env=env, cwd=tmp_path)
    assert len(json.loads(result.stdout)) == 4


def test_export_csv_and_json(recorded, tmp_path):
    rows = list(csv.DictReader(io.StringIO(xpmagic("export", "--to", "csv", "--db", str(recorded)).stdout)))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4"] and rows[1]["params.C"] == "1.0"
    out = tmp_path / "runs.json"
    assert xpmagic("export", "--to", "json", "--db", str(recorded), "-o", str(out)).returncode == 0
    assert [r["id"] for r in json.loads(out.read_text())] == [1, 2, 3, 4]


def test_export_prov_is_valid_prov_json(recorded):
    from prov.model import ProvDocument

    text = xpmagic("export", "--to", "prov", "--db", str(recorded)).stdout
    doc = ProvDocument.deserialize(content=text, format="json")
    activities = [r for r in doc.get_records() if r.get_type().localpart == "Activity"]
    assert len(activities) == 4
    assert '"wasInformedBy"' in text and '"used"' in text


def test_json_outputs_are_strict_and_keep_a_diverged_metric(shell, db_path, tmp_path):
    """A loss that diverged is inf: a result, recorded as such (it was stored as null, like NaN),
    and written as 1e999, which strict JSON readers take (Python's own `Infinity` is not JSON)."""
    run_ok(shell, "%%experiment diverged\nxp.log(loss=float('inf'), acc=float('nan'))\n"
                  "for step in range(3):\n    xp.log('curve', float('-inf'), step=step)\n")

    def refuse(word):
        raise ValueError(f"{word} is not JSON")

    for command in (["runs", "--json"], ["show", "1", "--json"], ["export", "--to", "json"]):
        result = xpmagic(*command, "--db", str(db_path), cwd=tmp_path)
        loaded = json.loads(result.stdout, parse_constant=refuse)
        run = loaded[0] if isinstance(loaded, list) else loaded
        assert run["metrics"] == {"loss": float("inf"), "acc": None, "curve": float("-inf")}, command


def test_export_to_mlflow_renames_what_it_refuses_and_splits_long_series(shell, db_path, tmp_path):
    run_ok(shell, "%%experiment 'top-k'\nxp.param('C', 1.0)\nfor step in range(2500):\n"
                  "    xp.log('acc@5', step / 2500, step=step)\nxp.log(acc_5=1.0)\n"
                  "xp.log(**{'/loss': 0.1, 'genauigkeit_ä': 0.5, 'x' * 300: 0.2})\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_ARTIFACT_ROOT": str(tmp_path / "mlruns")}
    result = xpmagic("export", "--to", "mlflow", "--tracking-uri", uri, "--db", str(db_path), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "exported 1 runs" in result.stderr and "'acc@5' -> 'acc_5_2'" in result.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("top-k").experiment_id])
    assert run.data.metrics == {"acc_5": 1.0, "acc_5_2": pytest.approx(2499 / 2500), "__loss": 0.1,
                                "genauigkeit_ä": 0.5, "x" * 242: 0.2}  # too long, or a path MLflow refuses
    assert len(client.get_metric_history(run.info.run_id, "acc_5_2")) == 2500
    assert json.loads(run.data.tags["xpmagic.renamed"]) == {"acc@5": "acc_5_2", "/loss": "__loss", "x" * 300: "x" * 242}


def test_export_to_mlflow_carries_the_files_still_as_the_run_left_them(shell, db_path, tmp_path, monkeypatch):
    monkeypatch.setattr(shell.display_formatter, "active_types", ["text/plain", "image/png"])  # as a kernel
    run_ok(shell, "%%experiment files\nimport os\nos.makedirs('model', exist_ok=True)\n"
                  "from IPython.display import Image\ndisplay(Image(data=b'\\x89PNG-figure'))\n"
                  "open('model/w.bin', 'wb').write(b'w')\nopen('report.txt', 'w').write('ok')\n"
                  "open('scratch.txt', 'w').write('tmp')\n"
                  "xp.artifact('model')\nxp.artifact('report.txt')\nxp.artifact('scratch.txt')\n")
    (tmp_path / "scratch.txt").unlink()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = xpmagic("export", "--to", "mlflow", "--tracking-uri", uri, "--db", str(db_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("files").experiment_id])
    listed = sorted(a.path for a in client.list_artifacts(run.info.run_id, "artifacts"))
    assert listed == ["artifacts/model", "artifacts/report.txt"]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "artifacts/model")] == ["artifacts/model/w.bin"]
    assert run.data.tags["xpmagic.artifacts_not_exported"].startswith("scratch.txt")
    figures = client.list_artifacts(run.info.run_id, "displays")  # what the cell displayed
    assert [a.path for a in figures] == ["displays/display-1.png"]
    with open(client.download_artifacts(run.info.run_id, "displays/display-1.png", str(tmp_path)), "rb") as handle:
        assert handle.read() == b"\x89PNG-figure"


def test_export_to_a_real_mlflow_store_is_idempotent(recorded, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_ARTIFACT_ROOT": str(tmp_path / "mlruns")}
    first = xpmagic("export", "--to", "mlflow", "--tracking-uri", uri, "--db", str(recorded),
                    cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    again = xpmagic("export", "--to", "mlflow", "--tracking-uri", uri, "--db", str(recorded),
                    cwd=tmp_path, env=env)
    assert "exported 4 runs" in first.stderr
    assert "exported 0 runs" in again.stderr and "(4 already there)" in again.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    fit = client.get_experiment_by_name("fit")
    # by xpmagic's run id: the three runs can start within one millisecond, so start_time may tie
    runs = sorted(client.search_runs([fit.experiment_id]), key=lambda r: int(r.data.tags["xpmagic.run_id"]))
    assert len(runs) == 3
    assert runs[0].data.params == {"C": "1.0"} and runs[0].data.metrics["acc"] == 0.8
    assert [m.value for m in client.get_metric_history(runs[0].info.run_id, "loss")] == \
        pytest.approx([1.0, 0.5, 1 / 3])
    assert runs[2].info.status == "FAILED"

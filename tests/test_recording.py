"""%%experiment through a real IPython shell, checked in the real SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import rows, run_ok
from xpmagic.store import Store


def test_cell_becomes_a_recorded_run_with_code_params_and_metrics(shell, db_path):
    run_ok(shell, '%%experiment fit --tag baseline --note "first try"\n'
                  'C = xp.param("C", 1.0, low=0.01, high=100.0, log=True)\n'
                  'xp.log(accuracy=0.93, loss=0.2)\n')
    store = Store(db_path, create=False)
    (run,) = store.list_runs()
    full = store.get_run(run.id)
    assert full.experiment == "fit" and full.status == "ok"
    assert full.params == {"C": 1.0}
    assert full.metrics == {"accuracy": 0.93, "loss": 0.2}
    assert full.code.startswith("%%experiment fit") and "xp.param" in full.code
    assert full.tags == ["baseline"] and full.note == "first try"
    assert full.duration_s is not None and full.duration_s >= 0
    spec = full.param_specs[0]
    assert (spec.low, spec.high, spec.log) == (0.01, 100.0, True)


def test_series_keep_every_step(shell, db_path):
    run_ok(shell, "%%experiment curve\nfor i in range(25_000):\n    xp.log('loss', 1 / (i + 1), step=i * 2)\n")
    store = Store(db_path, create=False)
    run_id = store.run_ids()[0]
    steps, values = store.metric_series(run_id, "loss")
    assert len(values) == 25_000 and steps[-1] == 49_998
    assert values[0] == 1.0 and values[-1] == pytest.approx(1 / 25_000)
    assert rows(db_path, "SELECT count, min, max, last_step FROM metrics") == [
        (25_000, pytest.approx(1 / 25_000), 1.0, 49_998)]


def test_a_finished_run_leaves_nothing_for_the_garbage_collector(shell, db_path):
    """A run's objects are freed when it ends, not at the next collection (no reference cycles)."""
    import gc

    from xpmagic.run import ActiveRun, MetricSeries

    cell = ("%%experiment tidy\nC = xp.param('C', 1)\nxp.log(acc=0.5)\n"
            "for s in range(3):\n    xp.log('loss', 1.0, step=s)\n")
    run_ok(shell, cell)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(3):
            run_ok(shell, cell)
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, (ActiveRun, MetricSeries))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == [] and len(rows(db_path, "SELECT id FROM runs")) == 4


def test_failing_cell_is_recorded_and_its_exception_reaches_the_user(shell, db_path, capsys):
    result = shell.run_cell("%%experiment boom\nx = 1\nraise ValueError('bad data')\n")
    assert isinstance(result.error_in_exec, ValueError)
    out = capsys.readouterr().out
    assert "ValueError: bad data" in out and "----> 3 raise ValueError" in out
    assert "%%experiment boom" in out  # the traceback quotes the user's cell, not our rewrite
    ((status, etype, message, tb),) = rows(
        db_path, "SELECT status, error_type, error_message, error_traceback FROM runs")
    assert (status, etype, message) == ("failed", "ValueError", "bad data")
    assert "raise ValueError" in tb


def test_syntax_error_in_an_experiment_cell_is_recorded_as_failed(shell, db_path):
    result = shell.run_cell("%%experiment typo\nx = (1,\n")
    assert result.error_before_exec is not None
    assert rows(db_path, "SELECT status, error_type FROM runs") == [("failed", "SyntaxError")]


def test_keyboard_interrupt_marks_the_run_interrupted(shell, db_path):
    shell.run_cell("%%experiment stopme\nraise KeyboardInterrupt\n")
    assert rows(db_path, "SELECT status FROM runs") == [("interrupted",)]


def test_stdout_is_captured_and_still_printed(shell, db_path, capsys):
    run_ok(shell, "%%experiment talk\nprint('hello from the cell')\n")
    assert "hello from the cell" in capsys.readouterr().out
    assert rows(db_path, "SELECT stdout FROM runs") == [("hello from the cell\n",)]


def test_output_cap_is_configurable(shell, db_path):
    run_ok(shell, "%config XPMagics.max_output_chars = 10")
    run_ok(shell, "%%experiment talk\nprint('x' * 100)\n")
    (stdout,) = rows(db_path, "SELECT stdout FROM runs")[0]
    assert stdout.startswith("x" * 10) and "truncated" in stdout


@pytest.mark.parametrize(("setting", "said"), [
    ("max_output_chars = -5", "max_output_chars must be 0 or more, got -5"),
    ("idle_cutoff_minutes = -1", "idle_cutoff_minutes must be 0 or more"),
    ("fingerprint_sample_bytes = 0", "fingerprint_sample_bytes must be at least 4,096, got 0"),
])
def test_a_setting_that_makes_no_sense_is_refused_and_the_old_one_kept(shell, db_path, caplog, setting, said):
    name = setting.split()[0]
    magics = shell.magics_manager.registry["XPMagics"]
    before = getattr(magics, name)
    shell.run_cell(f"%config XPMagics.{setting}")
    assert said in caplog.text
    assert getattr(magics, name) == before
    run_ok(shell, "%%experiment talk\nprint('still recorded')\n")
    assert rows(db_path, "SELECT stdout FROM runs") == [("still recorded\n",)]


def test_a_notebooks_own_xp_is_named_when_replaced_and_when_it_shadows_the_handle(shell, db_path, capsys):
    """Array code often calls numpy `xp`: loading replaces it, rebinding hides the handle; both say so.
    %reset takes the handle away: an experiment cell calling it gets it back."""
    shell.run_line_magic("unload_ext", "xpmagic")
    run_ok(shell, "import numpy as xp")
    shell.run_line_magic("load_ext", "xpmagic")
    assert "`xp` was numpy (a module); it is now xpmagic's handle" in capsys.readouterr().err
    run_ok(shell, "%%experiment fine\nxp.log(a=1)\n")
    run_ok(shell, "import numpy as xp")
    shell.run_cell("%%experiment hidden\nxp.log(a=1)\n")
    said = capsys.readouterr().err
    assert "`xp` is numpy (a module) in this notebook, not xpmagic's handle" in said
    shell.run_line_magic("reset", "-f")  # clears `xp`: the next experiment cell that calls it gets it back
    run_ok(shell, "%%experiment back\nxp.log(a=1)\n")
    assert rows(db_path, "SELECT e.name, r.status FROM runs r JOIN experiments e ON e.id = r.experiment_id"
                         " ORDER BY r.id") == [
        ("fine", "ok"), ("hidden", "failed"), ("back", "ok")]


def test_the_persons_own_modules_are_recorded_as_loaded_and_an_edit_shows_in_diff(shell, db_path, tmp_path):
    """helpers.py in the working folder is the person's code: each run records the version
    that ran (an edit without a reload is not yet running), and diff shows the edit."""
    module = tmp_path / "xp_own_helpers.py"
    module.write_text("def f(x):\n    return x * 2\n")
    try:
        run_ok(shell, f"import sys, importlib\nsys.path.insert(0, {str(tmp_path)!r})\nimport xp_own_helpers\n")
        cell = "%%experiment own\nxp.log(v=xp_own_helpers.f(2))\n"
        run_ok(shell, cell)
        module.write_text("def f(x):\n    return x * 3\n")
        run_ok(shell, cell)  # edited, not reloaded: still the old code
        run_ok(shell, "importlib.reload(xp_own_helpers)")
        run_ok(shell, cell)
    finally:
        sys.modules.pop("xp_own_helpers", None)
        shell.run_cell(f"sys.path.remove({str(tmp_path)!r})")
    store = Store(db_path, create=False)
    first, unreloaded, reloaded = (store.get_run(i) for i in (1, 2, 3))
    assert [m["module"] for m in first.local_code] == ["xp_own_helpers"]  # not xpmagic, numpy, pytest...
    assert first.local_code[0]["path"] == "xp_own_helpers.py"
    assert unreloaded.local_code == first.local_code and reloaded.local_code != first.local_code
    assert (first.metrics, reloaded.metrics) == ({"v": 4}, {"v": 6})
    diff = shell.run_line_magic("xp", "diff 1 3").diff
    assert [c.name for c in diff.local_code] == ["xp_own_helpers"]
    assert "-    return x * 2\n+    return x * 3" in diff.code_diff
    assert "local code: xp_own_helpers (xp_own_helpers.py" in shell.run_line_magic("xp", "show 3").__repr__()
    with sqlite3.connect(db_path) as conn:  # each version stored once, not per run
        assert conn.execute("SELECT count(*) FROM code_sources").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM local_code").fetchone() == (2,)


def test_a_module_in_another_encoding_is_kept_as_python_reads_it(tmp_path):
    from xpmagic.localcode import LocalCodeTracker

    (tmp_path / "xp_latin.py").write_bytes('# -*- coding: latin-1 -*-\nNAME = "café"\n'.encode("latin-1"))
    sys.path.insert(0, str(tmp_path))
    try:
        import xp_latin  # noqa: F401

        (module,) = LocalCodeTracker().loaded(str(tmp_path))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("xp_latin", None)
    assert 'NAME = "café"' in module.source


def test_a_module_autoreload_patched_in_place_is_recorded_in_its_new_version(shell, db_path, tmp_path):
    """IPython 9's autoreload may patch a module without importlib.reload (no new __spec__)."""
    module = tmp_path / "xp_autoreloaded.py"
    module.write_text("def f():\n    return 1\n")
    run_ok(shell, "%load_ext autoreload")
    run_ok(shell, "%autoreload 2")
    try:
        run_ok(shell, f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport xp_autoreloaded\n")
        run_ok(shell, "%%experiment auto\nxp.log(v=xp_autoreloaded.f())\n")
        module.write_text("def f():\n    return 2\n")
        later = module.stat().st_mtime + 10  # autoreload compares modification times
        os.utime(module, (later, later))
        run_ok(shell, "%%experiment auto\nxp.log(v=xp_autoreloaded.f())\n")
    finally:
        shell.run_line_magic("autoreload", "0")
        sys.modules.pop("xp_autoreloaded", None)
        shell.run_cell(f"sys.path.remove({str(tmp_path)!r})")
    store = Store(db_path, create=False)
    first, second = store.get_run(1), store.get_run(2)
    assert (first.metrics, second.metrics) == ({"v": 1}, {"v": 2})
    assert first.local_code[0]["sha256"] != second.local_code[0]["sha256"]


def test_a_failure_of_ours_while_ending_a_run_keeps_the_run_and_says_so(shell, db_path, monkeypatch, capsys):
    from xpmagic.recorder import Recorder

    def broken(*args, **kwargs):
        raise RuntimeError("dictionary changed size during iteration")

    monkeypatch.setattr(Recorder, "_outcome", broken)
    run_ok(shell, "%%experiment fragile\nprint('hello')\n")
    assert "run 1 is recorded without its details (RuntimeError: dictionary changed size" in capsys.readouterr().err
    assert rows(db_path, "SELECT status, stdout FROM runs") == [("ok", "hello\n")]  # not left 'running'
    monkeypatch.undo()
    run_ok(shell, "%%experiment fragile\nxp.log(a=1)\n")  # and the session records on
    assert rows(db_path, "SELECT status FROM runs ORDER BY id") == [("ok",), ("ok",)]


def test_python_installed_packages_and_xpmagic_are_never_the_persons_own_code(tmp_path):
    """A working folder holding Python itself (pyenv or conda under the home folder), a
    project's .venv, or xpmagic installed editable: none of that is the person's code."""
    import json as stdlib_module  # noqa: F401 (loaded: a module under the Python folder)

    import xpmagic
    from xpmagic.localcode import LocalCodeTracker

    tracker = LocalCodeTracker()
    assert tracker.loaded(sys.base_prefix) == [] and tracker.loaded(sys.prefix) == []
    repository = os.path.dirname(os.path.dirname(xpmagic.__file__))
    assert not any(m.module.startswith("xpmagic") for m in tracker.loaded(repository))
    installed = tmp_path / ".venv" / "lib" / "site-packages"
    installed.mkdir(parents=True)
    (installed / "xp_installed_elsewhere.py").write_text("VALUE = 1\n")
    (tmp_path / "xp_really_mine.py").write_text("VALUE = 2\n")
    sys.path[:0] = [str(installed), str(tmp_path)]
    try:
        import xp_installed_elsewhere  # noqa: F401
        import xp_really_mine  # noqa: F401

        assert [m.module for m in tracker.loaded(str(tmp_path))] == ["xp_really_mine"]
    finally:
        del sys.path[:2]
        sys.modules.pop("xp_installed_elsewhere", None)
        sys.modules.pop("xp_really_mine", None)


def test_a_script_run_with_percent_run_is_part_of_the_runs_code(shell, db_path, tmp_path):
    """%run train.py: the script gets the handle with `from xpmagic import xp` (it does not see
    the notebook's namespace), and its source is recorded like the person's own modules."""
    script = tmp_path / "train.py"
    script.write_text("from xpmagic import xp\nrate = xp.param('rate', 0.1)\nxp.log(loss=rate * 2)\n")
    run_ok(shell, "%%experiment script\n%run train.py\n")
    script.write_text("from xpmagic import xp\nrate = xp.param('rate', 0.1)\nxp.log(loss=rate * 3)\n")
    run_ok(shell, "%%experiment script\n%run -i train\n")  # IPython finds train.py too
    store = Store(db_path, create=False)
    first, second = store.get_run(1), store.get_run(2)
    assert (first.params, first.metrics) == ({"rate": 0.1}, {"loss": 0.2})
    assert [m["module"] for m in first.local_code] == [m["module"] for m in second.local_code] == ["%run train.py"]
    diff = shell.run_line_magic("xp", "diff 1 2").diff
    assert [c.name for c in diff.local_code] == ["%run train.py"]
    assert "-xp.log(loss=rate * 2)\n+xp.log(loss=rate * 3)" in diff.code_diff
    exe = os.path.join(os.path.dirname(sys.executable), "xpmagic")
    prov = json.loads(subprocess.run([exe, "export", "--to", "prov", "--db", str(db_path)],
                                     capture_output=True, text=True).stdout)
    used = {u["prov:entity"] for u in prov["used"].values()}
    assert {f"xp:code/{m['sha256']}" for m in (*first.local_code, *second.local_code)} <= used


def test_the_handle_cannot_be_imported_outside_a_session_that_loaded_xpmagic():
    result = subprocess.run([sys.executable, "-c", "from xpmagic import xp"], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "ImportError: xpmagic's xp handle exists in an IPython session that ran %load_ext xpmagic; "
        "a worker process (joblib, multiprocessing) has none: return its values to the cell and record them there")


def test_seed_is_applied_and_recorded_and_absence_is_recorded(shell, db_path):
    run_ok(shell, "%%experiment s --seed 42\nimport numpy as np\na = np.random.rand()\n")
    first = shell.user_ns["a"]
    run_ok(shell, "%%experiment s --seed 42\nb = np.random.rand()\n")
    assert shell.user_ns["b"] == first
    run_ok(shell, "%%experiment s\nc = 1\n")
    assert rows(db_path, "SELECT seed FROM runs ORDER BY id") == [(42,), (42,), (None,)]


def test_output_option_stores_the_run_record(shell):
    run_ok(shell, "%%experiment o -o result\nxp.log(score=3)\n")
    record = shell.user_ns["result"]
    assert record.status == "ok" and record.metrics == {"score": 3.0}


def test_variables_read_and_written_are_fingerprinted(shell, db_path):
    run_ok(shell, "import numpy as np\nX = np.ones((20, 3))\n")
    run_ok(shell, "%%experiment v\nmeans = X.mean(axis=0)\nrows_ = len(X)\n")
    variables = rows(db_path, "SELECT direction, name, kind FROM run_variables ORDER BY direction, name")
    assert ("in", "X", "ndarray") in variables
    assert ("out", "means", "ndarray") in variables
    assert ("out", "rows_", "scalar") in variables


def test_in_place_mutation_counts_as_a_write(shell, db_path):
    run_ok(shell, "items = [1, 2]\n")
    run_ok(shell, "%%experiment mutate\nitems.append(3)\n")
    assert ("out", "items") in rows(db_path, "SELECT direction, name FROM run_variables")


def test_unhashable_and_odd_values_never_crash(shell, db_path):
    run_ok(shell, "class Weird:\n    def __reduce__(self):\n        raise RuntimeError('no')\n"
                  "w = Weird()\nbig = list(range(50_000))\n")
    run_ok(shell, "%%experiment odd\nz = (w, len(big))\n")
    assert rows(db_path, "SELECT status FROM runs") == [("ok",)]


def test_large_text_and_object_arrays_are_fingerprinted_from_a_sample(shell, db_path):
    run_ok(shell, "%config XPMagics.fingerprint_sample_bytes = 1000000\n")
    run_ok(shell, "%%experiment read\nimport numpy as np\ntext = 'ab' * 2_000_000\n"
                  "words = np.array(text[:400_000].split('b'), dtype=object)\n")
    run_ok(shell, "%%experiment count\nn = len(text) + len(words)\n")
    run_ok(shell, "text = 'ba' * 2_000_000\n")  # the same length, other content
    run_ok(shell, "%%experiment count\nn = len(text)\n")
    store = Store(db_path, create=False)
    read, first, second = store.get_run(1), store.get_run(2), store.get_run(3)
    summaries = dict(rows(db_path, "SELECT name, summary FROM run_variables WHERE run_id = 1"))
    assert json.loads(summaries["text"]) == {"type": "str", "len": 4_000_000, "sampled": True}
    assert json.loads(summaries["words"])["sampled"] is True
    assert first.inputs["text"] == read.outputs["text"] != second.inputs["text"]
    assert store.lineage_sources(2) == [1]


def test_lineage_links_a_run_to_the_run_that_produced_its_input(shell, db_path):
    run_ok(shell, "%%experiment prep\nimport numpy as np\nclean = np.arange(100.0)\n")
    run_ok(shell, "%%experiment train\nscore = float(clean.mean())\nxp.log(score=score)\n")
    store = Store(db_path, create=False)
    prep_id, train_id = sorted(store.run_ids())
    assert store.lineage_sources(train_id) == [prep_id]
    assert "clean" in repr(shell.run_line_magic("xp", f"lineage {train_id}"))


def test_a_run_that_copies_what_it_read_is_not_its_producer(shell, db_path):
    """`out = df.copy()` writes a value equal to one the run read: the run that made `df` is the
    source of a later run reading either, not the run that copied it (in this session or the next)."""
    run_ok(shell, "import numpy as np\nraw = np.arange(50.0)\n")
    run_ok(shell, "%%experiment prep\nclean = raw * 2\n")
    run_ok(shell, "%%experiment copy\nbackup = clean.copy()\nalias = raw\nclean = clean\n")
    run_ok(shell, "%%experiment train\nm = backup.max() + clean.min()\n")
    run_ok(shell, "%%experiment plot\nn = alias.sum()\n")
    store = Store(db_path, create=False)
    assert store.lineage_sources(3) == [1]  # the copy run (2) made neither `backup` nor `clean`
    assert store.lineage_sources(4) == []  # `raw` came from a plain cell, not from run 2
    shell.run_line_magic("unload_ext", "xpmagic")
    shell.reset(new_session=True)
    shell.run_line_magic("load_ext", "xpmagic")
    run_ok(shell, "import numpy as np\nloaded = np.arange(50.0) * 2\n")
    run_ok(shell, "%%experiment again\nm = loaded.max()\n")
    assert store.lineage_sources(5) == [1]


def read_before_and_after(shell, db_path, reading, change):
    """The runs of an experiment cell before and after a plain cell changes what it reads."""
    run_ok(shell, reading)
    run_ok(shell, change)
    run_ok(shell, reading)
    store = Store(db_path, create=False)
    last = store.max_run_id()
    return store.get_run(last - 1), store.get_run(last)


def test_configuration_objects_and_large_containers_are_fingerprinted(shell, db_path):
    """Settings kept in a dataclass, an argparse namespace or a cross-validation splitter, a
    vocabulary of 50,000 words: a run
    that read other ones must record a change (they had no fingerprint), and `show` their values."""
    run_ok(shell, "import dataclasses, argparse, collections\n"
                  "@dataclasses.dataclass\nclass Config:\n    lr: float = 0.1\n    layers: tuple = (64, 32)\n"
                  "cfg = Config()\nargs = argparse.Namespace(epochs=3, data='train.csv')\n"
                  "vocab = {f'word{i}': i for i in range(50_000)}\n"
                  "Pair = collections.namedtuple('Point', 'x y')\npair = Pair(1, 2)\n"
                  "buffer = bytearray(b'weights')\n"
                  "from sklearn.model_selection import KFold\ncv = KFold(5, shuffle=True, random_state=0)\n")
    first, second = read_before_and_after(
        shell, db_path,
        "%%experiment fit\nscore = cfg.lr * args.epochs + len(vocab) + pair.x + len(buffer) + cv.n_splits\n",
        "cfg.lr = 0.2\nargs.epochs = 4\nvocab['new'] = -1\npair = Pair(3, 2)\nbuffer[0] = 0\n"
        "cv = KFold(10, shuffle=True, random_state=0)\n")
    store = Store(db_path, create=False)
    for name in ("cfg", "args", "vocab", "pair", "buffer", "cv"):
        assert first.inputs[name] is not None and first.inputs[name] != second.inputs[name], name
    summaries = dict(rows(db_path, "SELECT name, summary FROM run_variables WHERE run_id = 2"))
    assert json.loads(summaries["cfg"])["fields"] == {"lr": "0.2", "layers": "(64, 32)"}
    assert json.loads(summaries["vocab"])["sampled"] is True
    assert "KFold(n_splits=10, shuffle=True, random_state=0)" in repr(shell.run_line_magic("xp", "show 2"))
    changed = {c["name"]: (c["a"], c["b"]) for c in shell.run_line_magic("xp", "diff 1 2").diff.to_dict()["settings"]}
    assert changed == {"cfg.lr": ("0.1", "0.2"), "args.epochs": ("3", "4"), "cv.n_splits": ("5", "10")}
    run_ok(shell, "%%experiment tune\ncfg.lr = 0.3\n")  # changed in place: an output of the run
    assert store.get_run(3).outputs["cfg"] not in (None, second.inputs["cfg"])


TORCH_FIT = ("%%experiment net --seed 0\n"
             "lr = xp.param('lr', 0.01, low=1e-4, high=1.0, log=True)\n"
             "model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))\n"
             "opt = torch.optim.Adam(model.parameters(), lr=lr)\n"
             "for step in range(5):\n"
             "    loss = nn.functional.cross_entropy(model(X), y)\n"
             "    opt.zero_grad(); loss.backward(); opt.step()\n"
             "xp.dataset(X, y, name='toy')\n"
             "xp.log(loss=loss)\n")  # a tensor that requires grad


def test_pytorch_data_networks_and_optimizers_are_fingerprinted(shell, db_path):
    """Tensors, networks and optimizers had no fingerprint: a run reading other data recorded no
    change, and `xp.dataset(X_tensor)` failed the cell."""
    pytest.importorskip("torch")
    run_ok(shell, "import torch, torch.nn as nn\ntorch.manual_seed(0)\n"
                  "X = torch.randn(200, 8)\ny = (X[:, 0] > 0).long()\n")
    run_ok(shell, TORCH_FIT)
    run_ok(shell, "X[0, 0] += 1.0")  # in place, in a plain cell
    run_ok(shell, TORCH_FIT.replace("0.01", "0.1"))
    store = Store(db_path, create=False)
    first, second = store.get_run(1), store.get_run(2)
    assert first.status == second.status == "ok"
    assert first.inputs["X"] is not None and first.inputs["X"] != second.inputs["X"]
    assert first.inputs["y"] == second.inputs["y"]
    assert first.outputs["model"] != second.outputs["model"]  # other weights
    summaries = {name: json.loads(summary) for name, summary in
                 rows(db_path, "SELECT name, summary FROM run_variables WHERE run_id = 1 AND direction = 'out'")}
    assert summaries["model"]["fields"]["parameters"] == "178" and summaries["model"]["fields"]["mode"] == "train"
    assert summaries["loss"]["value"] == pytest.approx(first.metrics["loss"])  # a 0-d tensor shows its value
    shown = repr(shell.run_line_magic("xp", "show 2"))
    assert "Sequential(parameters=178" in shown and "Adam(lr=0.1" in shown
    changed = {c["name"]: (c["a"], c["b"]) for c in shell.run_line_magic("xp", "diff 1 2").diff.to_dict()["settings"]}
    assert changed == {"opt.lr": ("0.01", "0.1")}
    (dataset,) = first.datasets
    assert dataset["shape"] == [200, 8] and dataset["kind"] == "tensor"
    row = store.knowledge_rows(experiment="net")[0]
    assert row["model_family"] == "Sequential" and row["meta"]["features"] == 8 and row["meta"]["classes"] == 2
    run_ok(shell, "%%experiment finetune\nmodel.eval()\nwith torch.no_grad():\n    model[0].weight.mul_(0.5)\n")
    assert store.get_run(3).outputs["model"] not in (None, second.outputs["model"])  # changed in place


def test_pytorch_data_loaders_are_fingerprinted_by_their_data_and_batching(shell, db_path, tmp_path):
    """`for xb, yb in loader` is how a network reads its data: a loader over other data, or
    batching otherwise, is a change the run must record."""
    pytest.importorskip("torch")
    (tmp_path / "notes.txt").write_text("x")
    run_ok(shell, "import torch, numpy as np\n"
                  "from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset\n"
                  "X = torch.randn(100, 4)\ny = (X[:, 0] > 0).long()\n"
                  "class Arrays(Dataset):\n"
                  "    def __init__(self, X, y): self.X, self.y = X, y\n"
                  "    def __len__(self): return len(self.X)\n"
                  "    def __getitem__(self, i): return self.X[i], self.y[i]\n"
                  "class Lines(Dataset):\n"
                  "    def __init__(self): self.handle = open('notes.txt')\n"
                  "    def __len__(self): return 1\n"
                  "    def __getitem__(self, i): return self.handle.readline()\n"
                  "loader = DataLoader(TensorDataset(X, y), batch_size=10, shuffle=True)\n"
                  "custom = DataLoader(Arrays(np.ones((10, 2)), np.zeros(10)), batch_size=5)\n"
                  "part = Subset(TensorDataset(X, y), list(range(50)))\nlines = DataLoader(Lines())\n")
    reading = "%%experiment epoch\nn = sum(len(xb) for xb, _ in loader) + len(custom) + len(part) + len(lines)\n"
    first, second = read_before_and_after(
        shell, db_path, reading, "loader = DataLoader(TensorDataset(X, y), batch_size=20, shuffle=True)\n"
                                 "custom.dataset.X[0, 0] = 5.0\npart = Subset(part.dataset, list(range(60)))\n")
    for name in ("loader", "custom", "part"):
        assert first.inputs[name] is not None and first.inputs[name] != second.inputs[name], name
    assert first.inputs["lines"] is None  # an open file: what it reads can change unseen
    changed = {c["name"]: (c["a"], c["b"]) for c in shell.run_line_magic("xp", "diff 1 2").diff.to_dict()["settings"]}
    assert changed == {"loader.batch_size": ("10", "20")}
    assert "sampler=RandomSampler" in repr(shell.run_line_magic("xp", "show 2"))


def test_xarray_data_is_fingerprinted_without_reading_a_file_it_has_not_loaded(shell, db_path, tmp_path):
    """Labelled arrays (climate grids, sensor series) had no fingerprint. Values, coordinates and
    attributes count; a data set still on disk is not read to be hashed (that could be gigabytes)."""
    pytest.importorskip("xarray")
    run_ok(shell, "import numpy as np, xarray as xr\n"
                  "grid = xr.DataArray(np.arange(12.0).reshape(3, 4), dims=('lat', 'lon'),\n"
                  "                    coords={'lat': [10, 20, 30]}, attrs={'units': 'K'})\n"
                  "xr.Dataset({'t': grid}).to_netcdf('grid.nc', engine='scipy')\n"
                  "lazy = xr.open_dataset('grid.nc', engine='scipy')\n")
    reading = "%%experiment mean\nm = float(grid.mean()) + lazy.sizes['lat']\n"
    first, second = read_before_and_after(shell, db_path, reading, "grid = grid.assign_attrs(units='C')\n")
    assert first.inputs["grid"] is not None and first.inputs["grid"] != second.inputs["grid"]
    assert first.inputs["lazy"] is None and shell.user_ns["lazy"].variables["t"]._in_memory is False
    summary = json.loads(rows(db_path, "SELECT summary FROM run_variables WHERE run_id = 1 AND name = 'lazy'")[0][0])
    assert summary["unhashed"].startswith("t: not loaded yet")
    assert "lazy = (no fingerprint: t: not loaded yet" in repr(shell.run_line_magic("xp", "show 1"))  # says why
    run_ok(shell, "%%experiment shift\ngrid[0, 0] = -1.0\n")  # in place: an output of the run
    assert Store(db_path, create=False).get_run(3).outputs["grid"] not in (None, second.inputs["grid"])


BOOSTERS = ("%%experiment boost\n"
            "sk = xgb.XGBClassifier(n_estimators=20, max_depth=3).fit(X, y)\n"
            "lg = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, y)\n"
            "bst = xgb.train({'max_depth': 3}, dtrain, 20)\n"
            "lbst = lgb.train({'verbose': -1}, ltrain, 20)\n"
            "xp.dataset(dtrain, name='dm')\nxp.log(acc=sk.score(X, y))\n")


def test_xgboost_and_lightgbm_models_and_their_data_are_fingerprinted(shell, db_path):
    """Their trees live in C++: an XGBClassifier fitted on other data kept its fingerprint (a replay
    or a diff saw no change; lineage could name the wrong run), and a booster from xgb.train,
    a DMatrix or a LightGBM Dataset had none."""
    pytest.importorskip("xgboost")
    pytest.importorskip("lightgbm")
    setup = ("import numpy as np, xgboost as xgb, lightgbm as lgb\n"
             "X = np.random.default_rng({seed}).normal(size=(300, 6))\ny = (X[:, 0] > 0).astype(int)\n"
             "dtrain = xgb.DMatrix(X, y)\nltrain = lgb.Dataset(X, y)\n")
    run_ok(shell, setup.format(seed=0))
    run_ok(shell, BOOSTERS)
    run_ok(shell, setup.format(seed=1))
    run_ok(shell, BOOSTERS)
    store = Store(db_path, create=False)
    first, second = store.get_run(1), store.get_run(2)
    for name in ("sk", "lg", "bst", "lbst"):
        assert first.outputs[name] is not None and first.outputs[name] != second.outputs[name], name
    for name in ("dtrain", "ltrain"):
        assert first.inputs[name] is not None and first.inputs[name] != second.inputs[name], name
    assert "ltrain" not in first.outputs  # lgb.train freed its raw data: that is not a change
    assert first.datasets[0]["shape"] == [300, 6] and first.datasets[0]["target"] is not None
    row = store.knowledge_rows(experiment="boost")[0]
    assert row["meta"]["features"] == 6 and row["meta"]["classes"] == 2
    run_ok(shell, BOOSTERS.replace("%%experiment boost", "%%experiment again"))  # the same data again
    assert store.get_run(3).outputs["bst"] == second.outputs["bst"]
    assert "Booster(rounds=20, features=6)" in repr(shell.run_line_magic("xp", "show 3"))
    run_ok(shell, "ltrain = lgb.Dataset(X, y)\nlgb.train({'verbose': -1}, ltrain, 2)\n")
    shell.run_cell("%%experiment late\nxp.dataset(ltrain)\n")
    assert store.get_run(4).status == "failed" and "free_raw_data=False" in store.get_run(4).error.message


def test_a_catboost_model_fitted_on_other_data_is_another_output(shell, db_path):
    """CatBoost keeps its trees in C++ as XGBoost does, and its own serialization differs between
    two fits of the same model: its leaf values and splits are hashed."""
    pytest.importorskip("catboost")
    setup = ("import numpy as np, catboost\nX = np.random.default_rng({seed}).normal(size=(200, 4))\n"
             "y = (X[:, 0] > 0).astype(int)\n")
    fitting = ("%%experiment cat\nmodel = catboost.CatBoostClassifier(iterations=10, verbose=0, random_seed=0,\n"
               "                                   thread_count=1).fit(X, y)\n")
    run_ok(shell, setup.format(seed=0))
    run_ok(shell, fitting)
    run_ok(shell, fitting)  # the same fit again
    run_ok(shell, setup.format(seed=1))
    run_ok(shell, fitting)
    store = Store(db_path, create=False)
    first, again, other = (store.get_run(i).outputs["model"] for i in (1, 2, 3))
    assert first is not None and first == again and first != other
    assert store.get_run(1).boosted == ["model"]


def test_arrow_tables_and_hugging_face_datasets_are_fingerprinted_as_their_rows_are_seen(shell, db_path):
    """A pyarrow Table or a Hugging Face Dataset had no fingerprint: a run reading other data
    recorded no change. A shuffled or filtered Dataset is other rows (an indices mapping over the
    same table)."""
    pytest.importorskip("datasets")
    run_ok(shell, "import numpy as np, pyarrow as pa, datasets\n"
                  "table = pa.table({'x': np.arange(3_000_000.0), 'tag': pa.array(['a', 'b', 'c'] * 1_000_000)})\n"
                  "ds = datasets.Dataset.from_dict({'text': ['good', 'bad', 'fine'] * 100, 'label': [1, 0, 1] * 100})\n"
                  "splits = datasets.DatasetDict(train=ds, test=ds.select(range(30)))\n")
    reading = ("%%experiment read\nn = table.num_rows + len(ds) + len(splits['test'])\n"
               "xp.dataset(ds, ds['label'], name='reviews')\n")  # a Column, which datasets reads lazily
    first, second = read_before_and_after(shell, db_path, reading, "ds = ds.shuffle(seed=0)\n"
                                          "table = table.set_column(0, 'x', pa.array(np.arange(3_000_000.0) + 1))\n")
    for name in ("table", "ds", "splits"):
        assert first.inputs[name] is not None, name
    assert first.inputs["table"] != second.inputs["table"] and first.inputs["ds"] != second.inputs["ds"]
    assert first.inputs["splits"] == second.inputs["splits"]
    assert first.datasets[0]["shape"] == [300, 2]
    assert first.datasets[0]["fingerprint"] != second.datasets[0]["fingerprint"]  # shuffled: other rows
    summary = json.loads(rows(db_path, "SELECT summary FROM run_variables WHERE run_id = 1 AND name = 'table'")[0][0])
    assert summary["shape"] == [3_000_000, 2] and summary["sampled"] is True  # 40 MB: runs of rows
    from xpmagic.fingerprint import fingerprint

    table = shell.user_ns["table"]
    (batch,) = table.combine_chunks().to_batches()  # a large record batch, sampled as its table is
    assert fingerprint(batch).digest == fingerprint(table).digest is not None
    run_ok(shell, "%%experiment read\nn = table.num_rows + len(ds) + len(splits['test'])\n")
    assert Store(db_path, create=False).get_run(3).inputs["ds"] == second.inputs["ds"]  # the same shuffle again


def test_what_a_cell_displays_is_kept_within_its_budget_but_not_scripts(shell, db_path, monkeypatch):
    """A table's HTML is kept; HTML with scripts (Plotly's first figure carries its 3.5 MB
    library) and a widget's view are listed by type and size only, and so is what comes after
    the run's budget is spent."""
    monkeypatch.setattr(shell.display_formatter, "active_types", ["text/plain", "text/html"])
    run_ok(shell, "%%experiment shown\nimport pandas as pd\nfrom IPython.display import HTML\n"
                  "display(pd.DataFrame({'a': [1, 2]}))\ndisplay(HTML('<script>load()</script><div>plot</div>'))\n"
                  "display(HTML('x' * 300))\npd.DataFrame({'b': [3]})\n")  # the last expression's too
    run_ok(shell, "%config XPMagics.max_display_bytes = 200")
    run_ok(shell, "%%experiment shown\ndisplay(HTML('y' * 300))\n")
    store = Store(db_path, create=False)
    kept = {(d["position"], d["mime"]): d["kept"] for d in store.get_run(1).displays}
    assert kept == {(1, "text/plain"): True, (1, "text/html"): True, (2, "text/plain"): True,
                    (2, "text/html"): False, (3, "text/plain"): True, (3, "text/html"): True,
                    (4, "text/plain"): True, (4, "text/html"): True}
    html = dict(((p, m), d) for p, m, d in store.display_data(1, "text/html"))
    assert b"<table" in html[(1, "text/html")] and html[(3, "text/html")] == b"x" * 300
    assert [(d["mime"], d["kept"]) for d in store.get_run(2).displays] == [("text/html", False), ("text/plain", True)]
    assert "1 = text/html" in repr(shell.run_line_magic("xp", "show 1")).split("displays:")[1]


def test_a_live_plot_keeps_what_is_left_under_the_cell(shell, db_path):
    """A training loop redrawing its plot every epoch (clear_output, or a display updated in place)
    leaves one figure under the cell: the run keeps that one, not every epoch's."""
    run_ok(shell, "from IPython.display import clear_output\n")
    run_ok(shell, "%%experiment live\nfor epoch in range(300):\n    clear_output(wait=True)\n"
                  "    display(f'epoch {epoch}')\nh = display('first', display_id=True)\nfor i in range(300):\n"
                  "    h.update(f'update {i}')\ndisplay('last')\n")
    store = Store(db_path, create=False)
    assert store.display_data(1, "text/") == [(1, "text/plain", b"'epoch 299'"), (2, "text/plain", b"'update 299'"),
                                              (3, "text/plain", b"'last'")]


def test_statsmodels_models_and_results_are_fingerprinted(shell, db_path):
    """statsmodels has no estimator API, so a regression fitted on other data or with another
    formula or family had no fingerprint, and a replay or diff saw no change."""
    run_ok(shell, "import numpy as np, pandas as pd, statsmodels.api as sm, statsmodels.formula.api as smf\n"
                  "rng = np.random.default_rng(0)\ndf = pd.DataFrame(rng.random((100, 3)), columns=['a', 'b', 'c'])\n"
                  "df['y'] = df.a * 2 + df.b + rng.normal(size=100) * 0.1\nformula = 'y ~ a + b'\n")
    fitting = ("%%experiment regress\nfit = smf.ols(formula, df).fit()\n"
               "glm = sm.GLM((df.y > 1.5).astype(int), sm.add_constant(df[['a', 'b']]),\n"
               "             family=sm.families.Binomial()).fit()\nxp.dataset(df[['a', 'b']], df.y)\n"
               "xp.log(r2=fit.rsquared)\n")
    first, second = read_before_and_after(shell, db_path, fitting, "formula = 'y ~ a + c'\n")
    assert first.outputs["fit"] is not None and first.outputs["fit"] != second.outputs["fit"]
    assert first.outputs["glm"] == second.outputs["glm"]  # the same data, family and link
    summary = json.loads(rows(db_path, "SELECT summary FROM run_variables WHERE run_id = 2 AND name = 'fit'")[0][0])
    assert summary["type"] == "statsmodels.OLSResults" and list(summary["params"]) == ["Intercept", "a", "c"]
    assert f"OLSResults(Intercept={summary['params']['Intercept']}, a=" in repr(shell.run_line_magic("xp", "show 2"))
    row = Store(db_path, create=False).knowledge_rows(experiment="regress")[0]
    assert row["model_family"] in ("statsmodels.OLS", "statsmodels.GLM")


def test_tensor_fingerprints_follow_the_values_in_any_layout_and_type():
    torch = pytest.importorskip("torch")
    from xpmagic.fingerprint import fingerprint

    torch.manual_seed(0)
    big = torch.randn(3000, 3000)  # 36 MB: sampled
    assert fingerprint(big.t()).digest == fingerprint(big.t().contiguous()).digest  # a view or its copy
    assert fingerprint(big).summary["sampled"] is True
    changed = big.clone()
    changed[1500:] += 1.0
    assert fingerprint(changed).digest != fingerprint(big).digest
    z = torch.randn(10, dtype=torch.complex64)
    assert fingerprint(z.conj()).digest == fingerprint(z.conj().resolve_conj()).digest
    dense = torch.randn(20, 20).relu()
    kinds = [dense.to(torch.bfloat16), dense.to_sparse(), dense.to_sparse_csr(), torch.tensor(3.5),
             torch.empty(0, 4), torch.nn.Parameter(torch.ones(3))]
    digests = [fingerprint(t).digest for t in kinds]
    assert None not in digests and len(set(digests)) == len(digests)  # a layout is content, as for scipy.sparse
    quantized = [torch.quantize_per_tensor(torch.full((4,), 0.33), scale, 0, torch.qint8) for scale in (0.1, 0.2)]
    assert fingerprint(quantized[0]).digest != fingerprint(quantized[1]).digest  # the values they stand for
    lazy = [fingerprint(torch.nn.LazyLinear(n)) for n in (10, 20)]  # no weights before the first call
    assert None not in {p.digest for p in lazy} and lazy[0].digest != lazy[1].digest
    assert lazy[0].summary["fields"]["parameters"] == "not known yet"
    assert fingerprint(torch.nn.Linear(3, 3, device="meta")).digest is not None
    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    schedules = [fingerprint(torch.optim.lr_scheduler.StepLR(opt, step)) for step in (10, 20)]
    assert schedules[0].digest != schedules[1].digest and schedules[1].summary["fields"]["step_size"] == "20"
    seeded = [fingerprint(torch.Generator().manual_seed(seed)).digest for seed in (3, 3, 4)]
    assert seeded[0] == seeded[1] != seeded[2]
    assert fingerprint(torch.float16).digest != fingerprint(torch.float32).digest


def test_threads_of_a_cell_log_to_its_run_and_are_told_when_they_log_after_it(shell, db_path, capsys):
    """A thread the cell joins logs to the run. One still logging after the cell ended is told,
    once, that its values are not recorded, and goes on: raising in it would stop the person's
    training with our error."""
    run_ok(shell, "%%experiment joined\nimport threading\n"
                  "def work():\n    for i in range(5):\n        xp.log('loss', 1 / (i + 1), step=i)\n"
                  "t = threading.Thread(target=work); t.start(); t.join()\n")
    run_ok(shell, "%%experiment left\nimport threading\ngo, done = threading.Event(), threading.Event()\n"
                  "def late():\n    go.wait(10)\n    for i in range(3):\n        xp.log(late=i)\n    done.set()\n"
                  "threading.Thread(target=late).start()\nxp.log(early=1)\n")
    capsys.readouterr()
    run_ok(shell, "go.set(); assert done.wait(10)")  # the thread went on after its first late value
    assert capsys.readouterr().err.count("xp.log from thread") == 1
    store = Store(db_path, create=False)
    assert store.get_run(1).metrics == {"loss": 0.2} and store.get_run(2).metrics == {"early": 1.0}
    result = shell.run_cell("xp.log(outside=1)")  # the cell's own thread: a plain mistake
    assert "call it inside an %%experiment cell" in str(result.error_in_exec)


def test_a_timed_line_reads_and_writes_like_the_statement_it_times(shell, db_path):
    run_ok(shell, "%%experiment prep\nimport numpy as np\nclean = np.arange(100.0)\n")
    run_ok(shell, "%%experiment timed\n%time doubled = clean * 2\n")
    store = Store(db_path, create=False)
    timed = store.get_run(2)
    assert "clean" in timed.inputs and "doubled" in timed.outputs and store.lineage_sources(2) == [1]


@pytest.mark.parametrize("cell", [
    "%%time\n%%experiment timed\nscore = float(clean.mean())\nxp.log(score=score)\n",
    "%%experiment timed\n%%time\nscore = float(clean.mean())\nxp.log(score=score)\n",
])
def test_time_stacks_with_experiment_either_way(shell, db_path, capsys, cell):
    run_ok(shell, "%%experiment prep\nimport numpy as np\nclean = np.arange(100.0)\n")
    run_ok(shell, "%%experiment plain\nscore = float(clean.mean())\nxp.log(score=score)\n")
    run_ok(shell, cell)
    plain, timed = rows(db_path, "SELECT code_hash, status, stdout FROM runs WHERE id > 1 ORDER BY id")
    assert timed[1] == "ok" and "Wall time" in timed[2] and "Wall time" in capsys.readouterr().out
    if cell.startswith("%%time"):
        assert timed[0] == plain[0]  # %%time above the run is not part of its code
    store = Store(db_path, create=False)
    assert store.get_run(3).metrics["score"] == 49.5 and store.lineage_sources(3) == [1]


def test_frames_are_fingerprinted_by_content_whatever_their_layout(shell, db_path):
    """Column by column (text through Arrow, not a per-value hash): the whole of a 150,000-row
    frame, so an edit anywhere shows, and equal content in other chunks or index types is equal."""
    run_ok(shell, "import pandas as pd\nN = 150_000\n")
    run_ok(shell, "%%experiment make\n"
                  "frame = pd.DataFrame({'n': range(N), 'text': [f'row {i}' for i in range(N)],\n"
                  "                      'cat': pd.Categorical(['a', 'b'] * (N // 2)),\n"
                  "                      'raw': pd.Series([f'r{i}' for i in range(N)], dtype=object)})\n")
    run_ok(shell, "same = pd.concat([frame.iloc[:1000], frame.iloc[1000:]])\n"
                  "same.index = pd.Index(list(range(N)))\n")  # other chunks, an Index of the same numbers
    run_ok(shell, "%%experiment use\nn = len(same)\n")
    run_ok(shell, "%%experiment edit\nframe.loc[123_456, 'raw'] = 'edited'\n")
    store = Store(db_path, create=False)
    made, used, edited = store.get_run(1), store.get_run(2), store.get_run(3)
    assert used.inputs["same"] == made.outputs["frame"] and store.lineage_sources(2) == [1]
    assert edited.outputs["frame"] not in (None, made.outputs["frame"])
    summary = json.loads(rows(db_path, "SELECT summary FROM run_variables WHERE run_id = 1 AND name = 'frame'")[0][0])
    assert "sampled" not in summary and summary["shape"] == [150_000, 4]


def test_large_values_are_sampled_alike_whatever_their_layout():
    """A sample is runs of consecutive rows or values (each a read of memory, not a cache line per
    value): a view and a copy, a frame of numbers, text and dates built either way, are alike; an
    edit in the first or the last row shows; a transposed view is gathered, not copied whole."""
    from xpmagic.fingerprint import fingerprint

    rng = np.random.default_rng(0)
    matrix = rng.random((2000, 1000))  # 16 MB: sampled
    assert fingerprint(matrix.T).digest == fingerprint(np.ascontiguousarray(matrix.T)).digest
    assert fingerprint(matrix).summary["sampled"] is True
    frame = pd.DataFrame(matrix[:, :20], columns=[f"c{i}" for i in range(20)])
    frame["city"] = rng.choice(["Oslo", "Lima"], size=len(frame))
    frame["when"] = pd.date_range("2024-01-01", periods=len(frame), freq="min")
    rebuilt = pd.DataFrame({name: frame[name].to_numpy() for name in frame.columns})  # other blocks
    sample = 100_000  # bytes: the frame is sampled
    assert fingerprint(frame, sample).summary["sampled"] is True
    assert fingerprint(frame, sample).digest == fingerprint(rebuilt, sample).digest
    for row in (0, len(frame) - 1):
        edited = frame.copy()
        edited.loc[row, "c3"] += 1.0
        assert fingerprint(edited, sample).digest != fingerprint(frame, sample).digest
        edited = frame.copy()
        edited.loc[row, "city"] = "Rome"
        assert fingerprint(edited, sample).digest != fingerprint(frame, sample).digest


def test_dates_durations_and_masked_values_are_fingerprinted_by_content(shell, db_path):
    """Time series: datetime64 has no buffer (such frames had no fingerprint at all) and a tz-aware
    column became Timestamp objects, hashed by address (a new digest every cell, and slow)."""
    run_ok(shell, "%%experiment make\nimport numpy as np, pandas as pd\n"
                  "series = pd.DataFrame({'at': pd.date_range('2024-01-01', periods=500, freq='h'),\n"
                  "                       'utc': pd.date_range('2024-01-01', periods=500, freq='h', tz='UTC'),\n"
                  "                       'took': pd.to_timedelta(np.arange(500), unit='s')})\n"
                  "days = np.arange('2024-01', '2024-03', dtype='datetime64[D]')\n"
                  "hidden = np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])\n")
    run_ok(shell, "%%experiment use\nn = len(series) + len(days) + hidden.count()\n")
    run_ok(shell, "%%experiment edit\nseries.loc[250, 'utc'] = pd.Timestamp('2030-01-01', tz='UTC')\n"
                  "hidden.mask = [0, 0, 0]\n")
    store = Store(db_path, create=False)
    made, used, edited = store.get_run(1), store.get_run(2), store.get_run(3)
    assert all(made.outputs[name] for name in ("series", "days", "hidden"))
    assert used.inputs == {name: made.outputs[name] for name in ("series", "days", "hidden")}
    assert set(used.outputs) == {"n"}  # the others were read, not changed
    assert store.lineage_sources(2) == [1]
    assert edited.outputs["series"] not in (None, made.outputs["series"])
    assert edited.outputs["hidden"] not in (None, made.outputs["hidden"])


def test_paths_dates_and_other_plain_values_are_fingerprinted(shell, db_path):
    """A notebook's settings: DATA = Path(...), CUTOFF = date(...): they had no fingerprint, so a
    run that read another file or cut-off recorded no change."""
    run_ok(shell, "%%experiment settings\nfrom pathlib import Path\nimport datetime, decimal\n"
                  "DATA = Path('data') / 'train.csv'\nCUTOFF = datetime.date(2024, 1, 1)\n"
                  "RATE = decimal.Decimal('0.10')\nWINDOW = range(0, 7)\n")
    run_ok(shell, "%%experiment use\nlabel = f'{DATA.stem} {CUTOFF} {RATE} {len(WINDOW)}'\n")
    run_ok(shell, "CUTOFF = datetime.date(2025, 1, 1)\n")
    run_ok(shell, "%%experiment use\nlabel = f'{DATA.stem} {CUTOFF} {RATE} {len(WINDOW)}'\n")
    store = Store(db_path, create=False)
    settings, first, second = store.get_run(1), store.get_run(2), store.get_run(3)
    names = ("DATA", "CUTOFF", "RATE", "WINDOW")
    assert all(settings.outputs[name] for name in names)
    assert first.inputs == {name: settings.outputs[name] for name in names}
    assert second.inputs["CUTOFF"] not in (None, first.inputs["CUTOFF"])
    assert second.inputs["DATA"] == first.inputs["DATA"]


def test_indexes_polars_frames_and_partials_are_fingerprinted(shell, db_path):
    """`features = X.columns[:2]`, `score = partial(f1_score, average='macro')` and polars frames
    had no fingerprint: a run that read other features, another scorer or other data recorded no
    change, and no lineage."""
    run_ok(shell, "%%experiment prepare\nimport functools, polars as pl, pandas as pd\n"
                  "from sklearn.metrics import f1_score\n"
                  "X = pd.DataFrame({'a': [1, 2], 'b': [3, 4], 'c': [5, 6]})\n"
                  "features = X.columns[:2]\nscore = functools.partial(f1_score, average='macro')\n"
                  "table = pl.DataFrame({'a': [1, 2, 3], 'b': ['x', 'y', 'z']})\n"
                  "xp.dataset(table.select('a'), table['b'], name='polars')\n"
                  "import numpy as np\nclass Frame(pd.DataFrame):\n    pass\nclass Grid(np.ndarray):\n    pass\n"
                  "derived, grid = Frame({'a': [1, 2]}), np.zeros((2, 2)).view(Grid)\n")
    first, second = read_before_and_after(
        shell, db_path, "%%experiment use\nn = len(X[features]) + table.height\nname = score.func.__name__\n",
        "features = X.columns[1:]\nscore = functools.partial(f1_score, average='micro')\n"
        "table = table.with_columns(pl.col('a') * 2)\n")
    store = Store(db_path, create=False)
    prepare = store.get_run(1)
    names = ("features", "score", "table")
    assert all(prepare.outputs[name] for name in (*names, "derived", "grid"))  # classes another package derived
    assert {name: first.inputs[name] for name in names} == {name: prepare.outputs[name] for name in names}
    assert store.lineage_sources(2) == [1]
    assert all(second.inputs[name] not in (None, first.inputs[name]) for name in names)
    summaries = dict(rows(db_path, "SELECT name, summary FROM run_variables WHERE run_id = 1"))
    assert json.loads(summaries["features"])["values"] == ["a", "b"]
    assert json.loads(summaries["table"])["shape"] == [3, 2]
    (dataset,) = prepare.datasets
    assert dataset["kind"] == "polars.DataFrame" and dataset["dtypes"] == {"a": "Int64"}, dataset
    assert dataset["target"]["classes"] == {"x": 1, "y": 1, "z": 1}


def test_containers_of_data_are_fingerprinted_element_by_element(shell, db_path):
    """{'train': frame, 'test': frame}: each frame as on its own (sampled, not pickled whole, which
    copied the data on every cell that read it); plain containers keep their digests."""
    run_ok(shell, "%config XPMagics.fingerprint_sample_bytes = 4096\n")
    run_ok(shell, "%%experiment split\nimport numpy as np, pandas as pd\n"
                  "frame = pd.DataFrame({'x': np.arange(20_000), 'y': np.arange(20_000) % 2})\n"
                  "splits = {'train': frame.iloc[:15_000], 'test': frame.iloc[15_000:]}\n"
                  "plain = {'folds': [1, 2, 3], 'name': 'cv'}\n"
                  "pieces = [frame.iloc[i:i + 10] for i in range(0, 3000, 10)]\n"
                  "numbers = [np.int64(i) for i in range(3000)]\n")
    run_ok(shell, "%%experiment fit\nn = len(splits['train']) + len(plain)\n")
    run_ok(shell, "%%experiment resplit\nsplits['test'] = frame.iloc[10_000:]\n")
    store = Store(db_path, create=False)
    split, fit, resplit = store.get_run(1), store.get_run(2), store.get_run(3)
    assert split.outputs["splits"] and fit.inputs["splits"] == split.outputs["splits"]
    assert store.lineage_sources(2) == [1]
    assert resplit.outputs["splits"] not in (None, split.outputs["splits"])
    summary = json.loads(rows(db_path, "SELECT summary FROM run_variables WHERE run_id = 1 AND name = 'splits'")[0][0])
    assert summary == {"type": "dict", "len": 2, "sampled": True}
    summaries = dict(rows(db_path, "SELECT name, summary FROM run_variables WHERE run_id = 1"))
    assert json.loads(summaries["pieces"]) == {"type": "list", "len": 300, "sampled": True}  # every second frame
    assert json.loads(summaries["numbers"]) == {"type": "list", "len": 3000}  # cheap: every one
    import pickle

    from xpmagic.fingerprint import digest_bytes

    assert split.outputs["plain"] == digest_bytes(pickle.dumps({"folds": [1, 2, 3], "name": "cv"}, protocol=5))


MODELS = {
    "forest": "RandomForestClassifier(n_estimators=30, random_state=0)",
    "boosted": "HistGradientBoostingClassifier(max_iter=10, random_state=0)",
    "pipeline": "make_pipeline(StandardScaler(), LogisticRegression())",
    "neighbours": "KNeighborsClassifier()",
    "search": "GridSearchCV(LogisticRegression(), {'C': [0.1, 1.0]}, cv=3)",
}


def test_a_model_fitted_on_other_data_has_another_fingerprint(shell, db_path):
    """A model's fingerprint holds what fitting made: a forest's trees, a pipeline's steps, the
    training data a nearest-neighbours model keeps. These were hashed by type and length, so a
    model refitted on other data kept its fingerprint; a search's timings, which differ in every
    fit, are left out."""
    run_ok(shell, "import numpy as np\nfrom sklearn.ensemble import RandomForestClassifier, "
                  "HistGradientBoostingClassifier\nfrom sklearn.pipeline import make_pipeline\n"
                  "from sklearn.preprocessing import StandardScaler\n"
                  "from sklearn.linear_model import LogisticRegression\n"
                  "from sklearn.neighbors import KNeighborsClassifier\n"
                  "from sklearn.model_selection import GridSearchCV\n"
                  "rng = np.random.default_rng(0)\nX = rng.normal(size=(200, 4))\ny = (X[:, 0] > 0).astype(int)\n"
                  "X2, y2 = X * 1.5 + 0.2, 1 - y\n")
    fits = "".join(f"{name} = {make}.fit(X, y)\n" for name, make in MODELS.items())
    run_ok(shell, "%%experiment first\n" + fits)
    run_ok(shell, "%%experiment again\n" + fits)  # the same fit, anew
    run_ok(shell, "%%experiment other\n" + fits.replace("(X, y)", "(X2, y2)"))
    store = Store(db_path, create=False)
    first, again, other = (store.get_run(i).outputs for i in (1, 2, 3))
    for name in MODELS:
        assert first[name] and first[name] == again[name], name
        assert other[name] not in (None, first[name]), name
    summaries = dict(rows(db_path, "SELECT name, summary FROM run_variables WHERE run_id = 1"))
    forest, pipeline = json.loads(summaries["forest"]), json.loads(summaries["pipeline"])
    assert forest["class"] == "RandomForestClassifier" and forest["sampled"] is True  # 3 of the 30 trees
    assert pipeline["fitted"] is True  # its steps are (it said False: a pipeline keeps no state of its own)


def test_lineage_across_sessions_by_fingerprint(shell, db_path):
    run_ok(shell, "%%experiment prep\nimport numpy as np\nfeatures = np.linspace(0, 1, 500)\n")
    shell.run_line_magic("unload_ext", "xpmagic")
    shell.reset(new_session=True)  # a new session: no memory of who produced what
    shell.run_line_magic("load_ext", "xpmagic")
    run_ok(shell, "import numpy as np\nloaded = np.linspace(0, 1, 500)\n")  # same content, reloaded
    run_ok(shell, "%%experiment train\nm = loaded.max()\n")
    store = Store(db_path, create=False)
    prep_id, train_id = sorted(store.run_ids())
    assert store.lineage_sources(train_id) == [prep_id]


def test_fingerprints_are_the_same_in_every_process(tmp_path):
    """Nested code objects (comprehensions, lambdas) and functions have memory addresses in their
    repr (an estimator's score_func=...), and sets iterate in an order that changes with each
    process's string hashing: none may reach a fingerprint, or lineage across sessions and replay
    verdicts break."""
    script = ("from xpmagic.fingerprint import fingerprint\n"
              "from sklearn.model_selection import cross_val_score\n"
              "def pick(x):\n    return x in {'alpha', 'beta', 'gamma'} and [i * x for i in range(3)]\n"
              "from sklearn.feature_selection import SelectKBest\n"
              "import pandas as pd\n"
              "when = pd.DataFrame({'utc': pd.date_range('2024-01-01', periods=50, freq='h', tz='UTC')})\n"
              "values = (pick, cross_val_score, {'alpha', 'beta', 'gamma', 'delta'},\n"
              "          SelectKBest(score_func=pick), when, {'columns': {'alpha', 'beta'}, 'when': when})\n"
              "from sklearn.ensemble import RandomForestClassifier\n"
              "forest = RandomForestClassifier(n_estimators=12, random_state=0)\n"
              "forest.fit([[0, 1], [1, 0]] * 10, [0, 1] * 10)\n"
              "values += (forest,)\n"
              "import functools, polars\n"
              "values += (when.columns, pd.Index(['alpha', 'beta']), functools.partial(pick, x='alpha'),\n"
              "           polars.DataFrame({'name': ['alpha', 'beta'], 'n': [1, 2]}))\n"
              "import dataclasses, argparse, collections\n"
              "Config = dataclasses.make_dataclass('Config', [('lr', float), ('tags', set)])\n"
              "values += (Config(0.1, {'alpha', 'beta'}), argparse.Namespace(lr=0.1, tags={'alpha'}),\n"
              "           {f'word{i}': i for i in range(50_000)}, collections.namedtuple('P', 'x')({'alpha'}))\n"
              "from sklearn.model_selection import StratifiedKFold\nfrom sklearn.metrics import make_scorer, f1_score\n"
              "values += (StratifiedKFold(5, shuffle=True, random_state=0), make_scorer(f1_score, average='macro'),\n"
              "           pd.Categorical(['alpha', 'beta', 'alpha']))\n"
              "try:\n    import torch\nexcept ImportError:  # the test extra installs it\n    torch = None\n"
              "if torch is not None:\n    torch.manual_seed(0)\n    net = torch.nn.Linear(3, 2)\n"
              "    values += (torch.randn(5), net, torch.optim.SGD(net.parameters(), lr=0.1))\n"
              "import xarray as xr\n"
              "values += (xr.DataArray([[1.0, 2.0]], dims=('a', 'b'), coords={'a': ['x']},\n"
              "                        attrs={'tags': {'alpha'}}),)\n"
              "print([fingerprint(v).digest for v in values])\n")
    digests = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2, 3)}
    assert len(digests) == 1 and "None" not in digests.pop()


def test_text_columns_are_fingerprinted_without_pyarrow(tmp_path):
    """Text columns were hashed only through pyarrow, which nothing installed: on a machine without
    it, every frame with a text column had no fingerprint."""
    script = ("import sys\nsys.modules['pyarrow'] = None  # as if not installed\n"
              "import pandas as pd\nfrom xpmagic.fingerprint import fingerprint\n"
              "frames = [pd.DataFrame({'city': ['Oslo', 'Lima'], 'n': [1, 2]}),\n"
              "          pd.DataFrame({'city': ['Oslo', 'Rome'], 'n': [1, 2]}), pd.DataFrame({'mixed': [1, 'a']})]\n"
              "print([fingerprint(f).digest for f in frames])\n")
    digests = eval(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert None not in digests and len(set(digests)) == 3


def test_dataset_records_fingerprint_shape_and_dtypes(shell, db_path):
    shell.user_ns["df"] = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 0.1, 0.2]})
    shell.user_ns["y"] = np.array([0, 1, 0])
    run_ok(shell, "%%experiment data\nxp.dataset(df, y)\n")
    ((name, fp, kind, shape, dtypes, target),) = rows(
        db_path, "SELECT name, fingerprint, kind, shape, dtypes, target FROM datasets")
    assert name == "df" and kind == "DataFrame" and json.loads(shape) == [3, 2]
    assert json.loads(dtypes) == {"a": "int64", "b": "float64"}
    assert json.loads(target)["classes"] == {"0": 2, "1": 1}
    shell.user_ns["df"].loc[0, "a"] = 99
    run_ok(shell, "%%experiment data\nxp.dataset(df, y)\n")
    fps = rows(db_path, "SELECT fingerprint FROM datasets ORDER BY run_id")
    assert fps[0] != fps[1]


def test_sparse_and_image_data_are_recorded_with_their_task(shell, db_path):
    run_ok(shell, "import numpy as np, scipy.sparse as sp\n"
                  "X = sp.random(600, 40, density=0.1, format='csr', random_state=0)\n"
                  "images = np.random.default_rng(0).random((600, 8, 8))\ny = np.arange(600) % 3\n")
    run_ok(shell, "%%experiment text\nxp.dataset(X, y, name='tfidf')\nxp.log(acc=0.5)\n")
    shell.user_ns["X"].data[0] += 1  # the same shape and sparsity, other content
    run_ok(shell, "%%experiment text\nxp.dataset(X, y, name='tfidf')\n")
    run_ok(shell, "%%experiment pixels\nxp.dataset(images, y, name='digits')\nxp.log(acc=0.5)\n")
    store = Store(db_path, create=False)
    (first,), (second,) = store.get_run(1).datasets, store.get_run(2).datasets
    assert first["kind"] == "sparse" and first["shape"] == [600, 40]
    assert second["fingerprint"] != first["fingerprint"]
    assert store.get_run(2).inputs["X"]  # read by the cell: a fingerprint, not only a summary
    meta = {row["task_name"]: row["meta"] for row in store.knowledge_rows()}
    assert meta["tfidf"]["features"] == 40 and meta["tfidf"]["density"] == pytest.approx(0.1)
    assert meta["tfidf"]["classes"] == 3 and "stump_accuracy" in meta["tfidf"]
    assert meta["digits"]["features"] == 64 and "nb_accuracy" in meta["digits"]


def test_artifact_records_hash_and_size(shell, db_path, tmp_path):
    run_ok(shell, "%%experiment art\nopen('model.bin', 'wb').write(b'abc')\nxp.artifact('model.bin')\n")
    ((name, path, sha, size),) = rows(db_path, "SELECT name, path, sha256, size FROM artifacts")
    assert name == "model.bin" and size == 3 and path == str(tmp_path / "model.bin")
    assert sha == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_a_folder_artifact_is_recorded_by_its_files(shell, db_path, tmp_path):
    model = tmp_path / "model"
    (model / "weights").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "weights" / "part-0.bin").write_bytes(b"abc")
    run_ok(shell, "%%experiment saved\nxp.artifact('model/')\n")
    (model / "weights" / "part-0.bin").write_bytes(b"abd")  # the same sizes, other content
    run_ok(shell, "%%experiment saved\nxp.artifact('model')\n")
    first, second = rows(db_path, "SELECT name, path, sha256, size FROM artifacts ORDER BY run_id")
    assert first[0] == second[0] == "model" and first[1] == str(model) and first[3] == second[3] == 5
    assert first[2] != second[2]


def test_a_folder_artifact_skips_pipes_and_refuses_a_working_folder(shell, db_path, tmp_path, monkeypatch, capsys):
    import xpmagic.run

    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"abc")
    os.mkfifo(model / "progress.fifo")  # opening it to read would wait for a writer forever
    run_ok(shell, "%%experiment saved\nxp.artifact('model')\n")
    assert rows(db_path, "SELECT size FROM artifacts") == [(3,)]

    monkeypatch.setattr(xpmagic.run, "MAX_ARTIFACT_FILES", 2)
    for number in range(3):
        (tmp_path / f"notes-{number}.txt").write_text("x")
    capsys.readouterr()
    assert not shell.run_cell("%%experiment saved\nxp.artifact('.')\n").success
    text = capsys.readouterr()
    assert "holds more than 2 files" in text.out + text.err and "Traceback" not in text.out + text.err


def test_environment_recorded_once_and_without_secrets(shell, db_path, monkeypatch):
    monkeypatch.setenv("MY_API_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("DB_PASSWORD", "hunter2")
    monkeypatch.setenv("DATABASE_URL", "postgresql://alice:pw123@db/x")
    monkeypatch.setenv("HARMLESS_SETTING", "visible")
    run_ok(shell, "%%experiment env\nx = 1\n")
    run_ok(shell, "%%experiment env\nx = 2\n")
    assert rows(db_path, "SELECT count(*) FROM environments") == [(1,)]
    dump = "\n".join(str(r) for r in rows(db_path, "SELECT * FROM environments"))
    assert "s3cr3t-value" not in dump and "hunter2" not in dump and "pw123" not in dump
    assert "MY_API_TOKEN" not in dump and "visible" in dump
    packages = json.loads(rows(db_path, "SELECT packages FROM environments")[0][0])
    assert "numpy" in packages


def test_a_secret_the_cell_touches_is_not_recorded(shell, db_path, monkeypatch):
    secret = "sk-live-3f9a8b7c6d5e"
    monkeypatch.setenv("MY_API_TOKEN", secret)
    monkeypatch.setenv("SERVICE_CREDENTIALS_FILE", str(db_path))  # a path that exists: not the secret itself
    run_ok(shell, "%%experiment llm\nimport os\napi_token = os.environ['MY_API_TOKEN']\ndb_password = 'hunter2!'\n"
                  "headers = {'Authorization': 'Bearer ' + api_token}\nmax_tokens = 'sixteen tokens'\n"
                  "display(headers)\n"
                  "key = xp.param('api_key', 'none')\nmodel = xp.param('model', 'gpt-' + api_token)\n"
                  "print('calling with', api_token)\nprint('key file', os.environ['SERVICE_CREDENTIALS_FILE'])\n"
                  "import argparse\n"
                  "args = argparse.Namespace(lr=0.1, api_key='hunter2-key', url='https://x/' + api_token)\n"
                  "xp.log(acc=0.5)\napi_token\n")
    shell.run_cell("%%experiment llm\nraise ValueError('bad token ' + os.environ['MY_API_TOKEN'])\n")
    run_ok(shell, "copied = api_token\nPLAIN = 'a constant'\n"  # plain cells: replay records constants it reads
                  "service = argparse.Namespace(api_key='plain-cell-key-1234', retries=3)\n")
    run_ok(shell, "%%experiment reader\nn = len(copied) + len(api_token) + len(PLAIN) + service.retries\n")
    dump = "\n".join(sqlite3.connect(db_path).iterdump())
    assert secret not in dump, [line[:300] for line in dump.splitlines() if secret in line]
    assert "plain-cell-key-1234" not in dump  # not in the summary of `service`, nor in a line that makes it again
    shown = [bytes(d) for (d,) in rows(db_path, "SELECT data FROM run_displays WHERE run_id = 1 ORDER BY position")]
    assert shown == [b"{'Authorization': 'Bearer [redacted]'}", b"'[redacted]'"]  # displayed, and the last expression
    run = Store(db_path, create=False).get_run(1)
    assert f"\ncalling with [redacted]\nkey file {db_path}\n" in run.stdout  # after what it displayed
    assert run.params["model"] == "gpt-[redacted]"
    assert run.params["api_key"] == "[redacted]"  # named like a secret: never its value
    summaries = dict(rows(db_path, "SELECT name, summary FROM run_variables WHERE run_id = 1"))
    assert json.loads(summaries["db_password"]) == {"type": "str", "len": 8, "redacted": True}
    assert json.loads(summaries["max_tokens"])["value"] == "sixteen tokens"  # not a secret's name
    assert json.loads(summaries["args"])["fields"] == {  # a settings object: its fields, as for variables
        "lr": "0.1", "api_key": "'[redacted]'", "url": "'https://x/[redacted]'"}
    assert Store(db_path, create=False).get_run(2).error.message == "bad token [redacted]"
    assert shell.user_ns["api_token"] == secret  # the cell itself is untouched
    assert Store(db_path, create=False).get_run(3).definitions == [{"name": "PLAIN", "source": "PLAIN = 'a constant'"}]


def test_git_state_of_the_working_folder(shell, db_path, tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "x")
    run_ok(shell, "%%experiment g\nx = 1\n")
    magics = shell.magics_manager.registry["XPMagics"]
    assert magics.recorder.git.wait_idle(30)
    ((commit, branch, dirty),) = rows(
        db_path, "SELECT g.commit_sha, g.branch, g.dirty FROM runs r JOIN git_states g"
                 " ON g.id = r.git_state_id")
    assert len(commit) == 40 and branch == "main" and dirty == 1  # xp.db is untracked


def test_git_snapshot_tells_clean_from_changed_work(tmp_path):
    import subprocess

    from xpmagic.environment import git_snapshot

    folder = tmp_path / "repo with space"
    folder.mkdir()

    def git(*args):
        subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    assert git_snapshot(folder)["commit"] is None and git_snapshot(folder)["root"] == str(folder)
    (folder / "model.py").write_text("C = 1\n")
    git("add", "model.py")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "x")
    clean = git_snapshot(folder)
    assert clean["branch"] == "main" and len(clean["commit"]) == 40
    assert clean["dirty"] is False and clean["diff_hash"] is None
    (folder / "model.py").write_text("C = 2\n")
    first = git_snapshot(folder)
    (folder / "model.py").write_text("C = 3\n")
    second = git_snapshot(folder)
    assert first["dirty"] and second["dirty"] and first["diff_hash"] != second["diff_hash"]
    assert first["commit"] == clean["commit"]
    (folder / "model.py").write_bytes("C = 'café'\n".encode("latin-1"))  # a diff that is not UTF-8
    assert git_snapshot(folder)["diff_hash"] not in (None, second["diff_hash"])


def _committed_repo(folder):
    import subprocess

    folder.mkdir()
    for name in ("a.py", "b.py"):
        (folder / name).write_text(f"{name} = 1\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "x"]):
        subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)
    return folder


def test_the_git_shell_answers_as_git_itself_and_recovers(tmp_path):
    from xpmagic.environment import _git_by_processes
    from xpmagic.gitshell import GitShell

    repo = _committed_repo(tmp_path / "repo")
    (repo / "a.py").write_text("a.py = 2\n")
    (repo / "new.py").write_text("x = 1\n")
    shell = GitShell()
    answer = shell.snapshot(repo)
    assert answer == _git_by_processes(repo) and answer[0][4] == "main" and b"new.py" in answer[1]
    assert b"+a.py = 2" in answer[2]
    assert shell.snapshot(tmp_path) == ([], b"", b"")  # not a repository
    shell._process.kill()  # a shell that died is started again
    assert shell.snapshot(repo) == answer
    shell.close()
    impatient = GitShell(timeout_s=1e-6)
    assert impatient.snapshot(repo) is None  # too slow: the caller runs git itself
    impatient.close()


def test_taking_git_state_never_rewrites_the_index(tmp_path):
    """A plain `git status` refreshes and rewrites .git/index, racing the person's own commit."""
    import os

    from xpmagic.environment import git_snapshot

    repo = _committed_repo(tmp_path / "repo")
    later = os.stat(repo / "a.py").st_mtime + 30
    os.utime(repo / "a.py", (later, later))  # stat data no longer matches the index: status would refresh it
    index = (repo / ".git" / "index").read_bytes()
    assert git_snapshot(repo)["dirty"] is False
    assert (repo / ".git" / "index").read_bytes() == index


def test_config_and_environment_choose_the_database(shell, tmp_path, monkeypatch, capsys):
    other = tmp_path / "other.db"
    run_ok(shell, f"%config XPMagics.db_path = {str(other)!r}")
    run_ok(shell, "%%experiment where\nx = 1\n")
    assert other.exists()
    assert str(other) in repr(shell.run_line_magic("xp", "db"))
    run_ok(shell, "%config XPMagics.db_path = ''")
    from_env = tmp_path / "env.db"
    monkeypatch.setenv("XPMAGIC_DB", str(from_env))
    run_ok(shell, "%%experiment where\nx = 1\n")
    assert rows(from_env, "SELECT count(*) FROM runs") == [(1,)]


def test_a_database_where_none_can_be_made_is_one_line(shell, tmp_path, capsys):
    """It said the file "cannot be read as an xpmagic database; move it aside", of a file that
    does not exist and cannot."""
    (tmp_path / "a-file").write_text("not a folder")
    run_ok(shell, f"%config XPMagics.db_path = {str(tmp_path / 'a-file' / 'xp.db')!r}")
    result = shell.run_cell("%%experiment nowhere\nx = 1\n")
    out = capsys.readouterr().out
    assert not result.success and "xpmagic: cannot create a database at" in out and "a folder you can write to" in out
    assert "Traceback" not in out and (tmp_path / "a-file").read_text() == "not a folder"


def test_default_database_is_in_the_working_directory(shell, tmp_path):
    run_ok(shell, "%config XPMagics.db_path = ''")
    run_ok(shell, "%%experiment here\nx = 1\n")
    assert (tmp_path / "xpmagic.db").exists()


def test_phase_is_normalised(shell, db_path):
    run_ok(shell, "%%experiment p --phase 'data prep'\nx = 1\n")
    assert rows(db_path, "SELECT phase FROM runs") == [("data-preparation",)]


@pytest.mark.parametrize("cell, expected", [
    ("%%experiment\nx = 1\n", "experiment"),
    ("%%experiment n --seed abc\nx = 1\n", "invalid int value"),
    ("%%experiment n --bogus\nx = 1\n", "unrecognized arguments"),
    ("%%experiment n -o 1bad\nx = 1\n", "not a valid variable name"),
    ("%%experiment n -o xp\nx = 1\n", "would replace the xp handle"),
    ("%%experiment n --phase nowhere\nx = 1\n", "valid phases"),
    ("%%experiment n\nxp.param('C', 5, low=0, high=1)\n", "outside [0, 1]"),
    ("%%experiment n\nxp.log('loss', 'high')\n", "must be a number"),
    ("%%experiment n\nimport pandas as pd\nxp.log(s=pd.Series([1.0, 2.0]))\n", "each value as a step"),
    ("%%experiment n\nxp.param('p', 1)\nxp.param('p', 2)\n", "declared twice in this run, differently"),
    ("%%experiment n\nxp.dataset([[1], [2], [3]], [0, 1])\n", "X has 3 rows but y has 2"),
    ("%%experiment n\nimport polars as pl\nxp.dataset(pl.DataFrame({'a': [1]}).lazy())\n", "collect() it first"),
    ("%%experiment n\nxp.dataset([[1], [2]], (i for i in 'ab'))\n", "cannot fingerprint y, a generator"),
    ("%%experiment n\nxp.param('p', {'a': 1})\n", "or a tuple of them (such as (1, 2)), got dict"),
    ("%%experiment n\nxp.param('p', (1,), choices=[(1,), ((1, 2),)])\n", "each choice must be"),
    ("%%experiment n\nxp.param('p', (1, 2), low=0, high=3)\n", "list its values with choices"),
    ("%%experiment n\nxp.artifact('missing.txt')\n", "no file or folder at"),
    ("%%experiment n\nxp.artifact(123)\n", "needs a path"),
    ("%%experiment n\nxp.param('kernel', 'rbf', low=0, high=1)\n", "choices=[...]"),
    ("%%experiment n\nxp.param('C', 1.0, low='0', high=10)\n", "low and high must be numbers"),
    ("%%experiment n\nxp.param('C', 1.0, low=0, high=10, step=0)\n", "step must be a number above 0"),
    ("%%experiment n\nxp.param('C', 1.0, low=0.1, high=10, step=0.1, log=True)\n", "cannot have a step"),
    ("%%experiment n\nxp.param('C', 1.0, step=0.5)\n", "step needs low and high"),
])
def test_bad_input_gives_one_clear_line(shell, capsys, cell, expected):
    result = shell.run_cell(cell)
    assert not result.success
    out = capsys.readouterr()
    text = out.out + out.err
    lines = [line for line in text.splitlines() if line.startswith("xpmagic:") and expected in line]
    assert lines, text
    assert "Traceback" not in text and "xpmagic/" not in text


def test_tuple_parameters_are_recorded_and_read_back_as_tuples(shell, db_path, tmp_path):
    """ngram_range=(1, 2) was refused. Stored as a JSON list, read back (by replay, a rebuilt
    notebook, %xp runs) as the tuple it was; a list default is returned as a tuple too."""
    run_ok(shell, "%%experiment text\nngrams = xp.param('ngram_range', (1, 2), choices=[(1, 1), (1, 2)])\n"
                  "layers = xp.param('layers', [100, 50])\nkinds = type(ngrams).__name__, type(layers).__name__\n")
    assert shell.user_ns["kinds"] == ("tuple", "tuple") and shell.user_ns["layers"] == (100, 50)
    assert rows(db_path, "SELECT name, value, choices FROM params ORDER BY name") == [
        ("layers", "[100,50]", None), ("ngram_range", "[1,2]", "[[1,1],[1,2]]")]
    run = Store(db_path, create=False).get_run(1)
    assert run.params == {"ngram_range": (1, 2), "layers": (100, 50)}
    shell.user_ns["xp"].next_run(params=json.loads(json.dumps(run.params)))  # as a replay passes them: lists
    run_ok(shell, "%%experiment text\nngrams = xp.param('ngram_range', (1, 1), choices=[(1, 1), (1, 2)])\n"
                  "layers = xp.param('layers', [10])\n")
    assert (shell.user_ns["ngrams"], shell.user_ns["layers"]) == ((1, 2), (100, 50))


def test_a_lock_another_program_keeps_loses_no_run(shell, db_path, capsys, monkeypatch):
    """A database browser with unsaved changes holds SQLite's write lock. The cell waited the busy
    timeout, then showed sqlite3's "database is locked" traceback from our internals; a run whose
    end met the lock stayed `running`, its metrics lost."""
    import xpmagic.store._store as store_module

    run_ok(shell, "%%experiment first\nx = 1\n")
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.5)
    shell.magics_manager.registry["XPMagics"].store().conn.execute("PRAGMA busy_timeout = 500")
    browser = sqlite3.connect(db_path, isolation_level=None)
    browser.execute("BEGIN IMMEDIATE")
    result = shell.run_cell("%%experiment blocked\ny = 2\n")
    text = capsys.readouterr()
    assert not result.success and "y" not in shell.user_ns  # nothing ran that could not be recorded
    assert "stayed locked by another program" in text.err + text.out and "Traceback" not in text.err + text.out
    browser.execute("COMMIT")

    shell.user_ns["browser"] = browser  # the lock is taken while the cell runs: its end cannot write
    run_ok(shell, "%%experiment kept\nbrowser.execute('BEGIN IMMEDIATE')\nxp.log(acc=0.9)\n")
    assert "run 2 is kept in memory, not written yet" in capsys.readouterr().err
    assert rows(db_path, "SELECT status FROM runs WHERE id = 2") == [("running",)]
    browser.execute("COMMIT")
    run_ok(shell, "%%experiment after\nz = 3\n")
    assert rows(db_path, "SELECT r.id, r.status, m.last FROM runs r LEFT JOIN metrics m ON m.run_id = r.id"
                         " ORDER BY r.id") == [(1, "ok", None), (2, "ok", 0.9), (3, "ok", None)]
    browser.close()


def test_a_parameter_declared_again_alike_keeps_its_value(shell, db_path):
    run_ok(shell, "%%experiment n\nfor _ in range(3):\n    p = xp.param('p', 2, low=0, high=5)\nxp.log(v=p)\n")
    assert rows(db_path, "SELECT name, value FROM params") == [("p", "2")]


def test_meta_features_of_odd_data_print_no_warnings_into_the_cell(shell):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # as a notebook shows them
        run_ok(shell, "%%experiment odd\nimport numpy as np, pandas as pd\n"
                      "X = pd.DataFrame({'s': ['a'] * 40, 'n': [np.nan] * 40, 'c': [1.0] * 40})\n"
                      "xp.dataset(X, ['x', 'y'] * 20, name='odd')\n")
    assert [str(w.message) for w in caught] == []


def test_a_rejected_metric_value_leaves_no_metric_behind(shell, db_path):
    assert not shell.run_cell("%%experiment n\nxp.log(acc='high')\n").success
    assert rows(db_path, "SELECT status FROM runs") == [("failed",)]
    assert rows(db_path, "SELECT count(*) FROM metrics") == [(0,)]


def test_xp_calls_outside_a_run_say_where_they_belong(shell, capsys):
    result = shell.run_cell("xp.log(acc=1)")
    assert not result.success
    assert "inside an %%experiment cell" in capsys.readouterr().out
    assert shell.run_cell("v = xp.param('C', 2.0)").success and shell.user_ns["v"] == 2.0


def test_xp_queries_return_frames_and_views(shell):
    run_ok(shell, "%%experiment q\nxp.param('a', 1)\nxp.log(m=0.5)\n")
    run_ok(shell, "%%experiment q\nxp.param('a', 2)\nxp.log(m=0.7)\n")
    frame = shell.run_line_magic("xp", "runs q")
    assert list(frame["params.a"]) == [2, 1] and list(frame["metrics.m"]) == [0.7, 0.5]
    assert str(frame["started_at"].dt.tz) == "UTC" and frame["started_at"].is_monotonic_decreasing
    diff = repr(shell.run_line_magic("xp", "diff 1 2"))
    assert "a: 1 -> 2" in diff and "m: 0.5 -> 0.7" in diff and "-xp.param('a', 1)" in diff
    shown = repr(shell.run_line_magic("xp", "show last"))
    assert shown.startswith("run 2 · q · ok")
    assert "<table>" in shell.run_line_magic("xp", "show 1")._repr_html_()


def test_code_diff_keeps_a_last_line_without_newline_on_its_own_line(shell):
    run_ok(shell, "%%experiment q\nxp.log(m=0.5)")  # a notebook cell's last line has no newline
    run_ok(shell, "%%experiment q\nxp.log(m=0.7)")
    lines = repr(shell.run_line_magic("xp", "diff 1 2")).splitlines()
    assert "-xp.log(m=0.5)" in lines and "+xp.log(m=0.7)" in lines


def test_diff_shows_a_helper_edited_in_a_plain_cell(shell):
    """The same experiment cell, other results: the diff shows the helper that changed."""
    run_ok(shell, "OFFSET = 1\n\ndef score(x):\n    return x + OFFSET\n")
    run_ok(shell, "%%experiment q\nxp.log(m=score(0.5))\n")
    run_ok(shell, "OFFSET = 1\n\ndef score(x):\n    return x * 2 + OFFSET\n")
    run_ok(shell, "%%experiment q\nxp.log(m=score(0.5))\n")
    lines = repr(shell.run_line_magic("xp", "diff 1 2")).splitlines()
    assert "--- run 1 (imports and definitions it read)" in lines
    assert "-    return x + OFFSET" in lines and "+    return x * 2 + OFFSET" in lines
    assert not any(line.startswith(("-OFFSET", "+OFFSET")) for line in lines)  # unchanged
    assert "-xp.log(m=score(0.5))" not in lines  # the cell itself is the same


def test_unknown_run_is_one_line(shell, capsys):
    run_ok(shell, "%%experiment q\nx = 1\n")
    result = shell.run_cell("%xp show 99")
    assert not result.success
    assert "xpmagic: no run 99" in capsys.readouterr().out


def test_summary_line_is_shown(shell, capsys):
    run_ok(shell, "%%experiment shown\nxp.log(acc=0.5)\n")
    out = capsys.readouterr().out
    assert "xpmagic: run 1 · shown · ok" in out and "acc=0.5" in out


def test_a_report_dict_is_logged_by_dotted_names_and_the_line_stays_short(shell, capsys, db_path):
    """xp.log takes a dict, as MLflow's log_metrics does; classification_report's nested one by
    dotted names. The line under the cell shows the first few and where the rest are."""
    run_ok(shell, "%%experiment report\nfrom sklearn.metrics import classification_report\n"
                  "xp.log(classification_report([0, 1, 1, 0], [0, 1, 0, 0], output_dict=True), step=0)\n")
    store = Store(db_path, create=False)
    metrics = store.get_run(1).metrics
    assert len(metrics) == 17 and metrics["accuracy"] == 0.75 and metrics["macro avg.recall"] == 0.75
    line = [text for text in capsys.readouterr().out.splitlines() if text.startswith("xpmagic: run 1")][0]
    assert line.endswith("and 11 more (%xp show 1)") and line.count("=") == 6


def test_numpy_scalars_are_parameters_as_the_values_they_hold(shell, db_path):
    """np.int64 from np.arange, np.bool_, np.str_ choices from an array: refused before ("got bool")."""
    run_ok(shell, "%%experiment np\nimport numpy as np\n"
                  "n = xp.param('n', np.arange(10)[5], low=1, high=10)\n"
                  "flag = xp.param('flag', np.bool_(True))\n"
                  "kernel = xp.param('kernel', np.array(['rbf'])[0], choices=np.array(['rbf', 'linear']))\n"
                  "kinds = (type(n).__name__, type(flag).__name__, type(kernel).__name__)\n")
    assert shell.user_ns["kinds"] == ("int", "bool", "str")
    run = Store(db_path, create=False).get_run(1)
    assert run.params == {"n": 5, "flag": True, "kernel": "rbf"}
    assert [s.choices for s in run.param_specs if s.name == "kernel"] == [("rbf", "linear")]


def test_nested_run_cell_inside_an_experiment_is_one_run(shell, db_path):
    run_ok(shell, "%%experiment outer\nget_ipython().run_cell('inner_value = 5')\nx = inner_value\n")
    assert rows(db_path, "SELECT experiment_id, status FROM runs") == [(1, "ok")]


def test_a_database_deleted_during_the_session_is_not_written_on_in_vain(shell, db_path, capsys):
    run_ok(shell, "%%experiment before\nx = 1\n")
    for suffix in ("", "-wal", "-shm"):  # what `rm xpmagic.db*` does
        if os.path.exists(f"{db_path}{suffix}"):
            os.remove(f"{db_path}{suffix}")
    run_ok(shell, "%%experiment after\nimport numpy as np\nxp.dataset(np.eye(6), [0, 1] * 3, name='d')\n"
                  "xp.log(acc=1.0)\n")
    assert "was deleted or replaced after this session opened it" in capsys.readouterr().err
    store = Store(db_path, create=False)  # a new file at the path, holding the run
    assert [run.experiment for run in store.list_runs()] == ["after"]
    assert [row["task_name"] for row in store.knowledge_rows()] == ["d"]


@pytest.mark.parametrize("line", ["%%experiment --help", "%%experiment fit -h", "%%experiment?"])
def test_experiment_help_shows_the_options_and_runs_nothing(shell, db_path, capsys, line):
    shell.run_cell(f"{line}\nprint('the body ran')\n")
    out = capsys.readouterr().out
    assert "--optimize METRIC" in out and "the body ran" not in out
    assert not db_path.exists() or rows(db_path, "SELECT count(*) FROM runs") == [(0,)]


def test_xp_help_and_missing_command(shell, capsys):
    assert shell.run_cell("%xp runs --help").success
    assert "usage: %xp runs" in capsys.readouterr().out
    result = shell.run_cell("%xp")
    assert not result.success and "needs a command" in capsys.readouterr().out

"""%%experiment --optimize: background Optuna trials, steered while they run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import rows, run_ok, stop_all_studies
from xpmagic.errors import UsageError

QUADRATIC = ("x = xp.param('x', 0.0, low=-5.0, high=5.0)\n"
             "print('evaluating', x)\n"
             "xp.log(score=-(x - 1.0) ** 2)\n")
SLOW = ("import time\n"
        "x = xp.param('x', 0.0, low=-5.0, high=5.0)\n"
        "time.sleep(0.1)\n"
        "xp.log(score=-(x - 1.0) ** 2)\n")


@pytest.fixture(autouse=True)
def _stop_studies():
    yield
    stop_all_studies()


def optimize(shell, name: str, options: str, body: str):
    result = run_ok(shell, f"%%experiment {name} --optimize score {options}\n{body}")
    return shell.user_ns["xp"].study(name), result


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_trials_run_in_the_background_and_are_recorded_as_runs(shell, db_path, capsys):
    started = time.perf_counter()
    study, result = optimize(shell, "quad", "--trials 15 --seed 3", QUADRATIC)
    assert time.perf_counter() - started < 5  # the cell returned with the panel
    assert type(result.result).__name__ == "StudyPanel"
    assert study.wait(60) and study.state == "finished"
    assert abs(study.best_params["x"] - 1.0) < 2.0
    trials = rows(db_path, "SELECT trial_number, status, trial_state, stdout FROM runs ORDER BY trial_number")
    assert [t[0] for t in trials] == list(range(15))
    assert all(t[1] == "ok" and t[2] == "complete" and t[3].startswith("evaluating") for t in trials)
    assert "evaluating" not in capsys.readouterr().out  # trial prints stay in their runs
    values = rows(db_path, "SELECT m.last FROM metrics m JOIN runs r ON r.id = m.run_id WHERE m.name='score'")
    assert study.best_value == max(v[0] for v in values)


def test_a_trial_reads_user_data_but_its_assignments_do_not_leak(shell, db_path):
    run_ok(shell, "offset = 2.0\nx = 'the user value'\n")
    study, _ = optimize(shell, "iso", "--trials 3", "x = xp.param('x', 0.0, low=0.0, high=1.0)\n"
                                                     "leaked = True\nxp.log(score=x + offset)\n")
    study.wait(30)
    assert shell.user_ns["x"] == "the user value" and "leaked" not in shell.user_ns
    assert all(v[0] >= 2.0 for v in rows(db_path, "SELECT last FROM metrics WHERE name = 'score'"))
    # every trial run records the notebook variable it read, fingerprinted once for the study
    read = rows(db_path, "SELECT run_id, name, kind FROM run_variables WHERE direction = 'in' ORDER BY run_id")
    assert [(name, kind) for _, name, kind in read] == [("offset", "scalar")] * 3


def test_trials_get_the_handle_when_the_notebook_calls_numpy_xp(shell, db_path):
    handle = shell.user_ns["xp"]
    run_ok(shell, "import numpy as xp")
    run_ok(shell, f"%%experiment arrays --optimize score --trials 3 --seed 0 --no-recommend\n{QUADRATIC}")
    assert handle.study("arrays").wait(30)
    assert rows(db_path, "SELECT status, trial_state FROM runs") == [("ok", "complete")] * 3


def test_trials_record_the_persons_own_modules(shell, db_path, tmp_path):
    (tmp_path / "xp_trial_helper.py").write_text("def centre():\n    return 1.0\n")
    try:
        run_ok(shell, f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport xp_trial_helper\n")
        study, _ = optimize(shell, "local", "--trials 2 --no-recommend",
                            "x = xp.param('x', 0.0, low=-5.0, high=5.0)\n"
                            "xp.log(score=-(x - xp_trial_helper.centre()) ** 2)\n")
        assert study.wait(30)
    finally:
        sys.modules.pop("xp_trial_helper", None)
        shell.run_cell(f"sys.path.remove({str(tmp_path)!r})")
    modules = rows(db_path, "SELECT l.modules FROM runs r JOIN local_code l ON l.id = r.local_code_id")
    assert len(modules) == 2 and all('"module":"xp_trial_helper"' in m[0] for m in modules)


def test_an_objective_with_ipython_syntax_runs(shell, db_path, tmp_path):
    """A line magic in the objective (`%time`), or the objective in a script run with %run,
    whose xp.param calls are the study's space."""
    study, _ = optimize(shell, "timed", "--trials 3 --seed 0 --no-recommend",
                        "x = xp.param('x', 0.0, low=-5.0, high=5.0)\n%time y = x - 1.0\nxp.log(score=-y ** 2)\n")
    assert study.wait(30) and study.best_value is not None
    refused = shell.run_cell("%%experiment cell-timed --optimize score\n%%time\nx = xp.param('x', 0.0, low=-5.0, "
                             "high=5.0)\ncell_only = x\nxp.log(score=-x ** 2)\n")
    assert not refused.success and "cell_only" not in shell.user_ns  # %%time runs its cell in the notebook's namespace
    (tmp_path / "objective.py").write_text("from xpmagic import xp\n"
                                           "x = xp.param('x', 0.0, low=-5.0, high=5.0)\n"
                                           "trial_only = x\n"
                                           "xp.log(score=-(x - 1.0) ** 2)\n")
    run_ok(shell, "x = 'mine'\n")
    study, _ = optimize(shell, "scripted", "--trials 3 --seed 0 --no-recommend", "%run objective.py\n")
    assert study.wait(30) and study.state == "finished"
    assert len(study.controller.finished_trials()) == 3 and study.best_value is not None
    # IPython's %run copies what the script defined into the notebook: a background trial overwrote x.
    assert shell.user_ns["x"] == "mine" and "trial_only" not in shell.user_ns and "y" not in shell.user_ns
    trials = rows(db_path, "SELECT p.value, l.modules FROM runs r JOIN experiments e ON e.id = r.experiment_id"
                           " JOIN params p ON p.run_id = r.id JOIN local_code l ON l.id = r.local_code_id"
                           " WHERE e.name = 'scripted'")
    assert len({value for value, _ in trials}) == 3  # sampled from the script's range
    assert all('"module":"%run objective.py"' in modules for _, modules in trials)


def test_pause_resume_and_stop(shell, db_path):
    study, _ = optimize(shell, "steer", "--trials 200", SLOW)
    wait_for(lambda: study.controller.finished_trials())
    study.pause()
    time.sleep(0.3)  # let the running trial finish
    done = len(study.controller.finished_trials())
    time.sleep(0.5)
    assert study.state == "paused" and len(study.controller.finished_trials()) == done
    study.resume()
    wait_for(lambda: len(study.controller.finished_trials()) > done + 1)
    study.stop()
    assert study.wait(10) and study.state == "stopped"
    actions = [i["action"] for i in study.interactions]
    assert actions == ["pause", "resume", "stop"]
    assert study.interactions[0]["before"] == "running" and study.interactions[0]["after"] == "paused"


def test_budget_can_be_raised(shell):
    study, _ = optimize(shell, "budget", "--trials 3", QUADRATIC)
    study.wait(30)
    study.add_trials(4)
    assert study.wait(30) and len(study.controller.finished_trials()) == 7
    (budget,) = [i for i in study.interactions if i["action"] == "budget"]
    assert budget["before"] == 3 and budget["after"] == 7 and budget["source"] == "python"
    assert [i["action"] for i in study.interactions].count("finished") == 2  # once per budget


def test_space_edit_applies_to_the_next_trials(shell, db_path):
    study, _ = optimize(shell, "space", "--trials 400", SLOW)
    wait_for(lambda: study.controller.finished_trials())
    study.set_space("x", low=3.0, high=3.5)
    edited_at = len(study.controller.trials)
    wait_for(lambda: len(study.controller.finished_trials()) >= edited_at + 3)
    study.stop()
    study.wait(10)
    later = [t for t in study.controller.trials if t.number >= edited_at and t.state == "complete"]
    assert later and all(3.0 <= t.params["x"] <= 3.5 for t in later)
    assert study.record["space"]["params"]["x"]["low"] == 3.0


def test_choices_and_the_kind_of_a_parameter_can_be_edited_while_trials_run(shell, db_path):
    """Optuna refuses other choices, or a float range for an integer, under a name its trials
    used ("does not support dynamic value space"): the study paused after such an edit."""
    study, _ = optimize(shell, "kinds", "--trials 400", "import time\n"
                        "kernel = xp.param('kernel', 'rbf', choices=['rbf', 'linear'])\n"
                        "depth = xp.param('depth', 2, low=1, high=5)\ntime.sleep(0.05)\n"
                        "xp.log(score=depth + (kernel == 'poly'))\n")
    wait_for(lambda: study.controller.finished_trials())
    study.set_space("kernel", choices=["rbf", "poly"])
    study.set_space("depth", low=0.5, high=1.5)
    edited_at = len(study.controller.trials)
    wait_for(lambda: len(study.controller.finished_trials()) >= edited_at + 3)
    assert study.state == "running", study.controller.message
    study.stop()
    study.wait(10)
    later = [t for t in study.controller.trials if t.number >= edited_at and t.state == "complete"]
    assert later and all(t.params["kernel"] in ("rbf", "poly") and 0.5 <= t.params["depth"] <= 1.5 for t in later)
    assert rows(db_path, "SELECT DISTINCT name FROM params p JOIN runs r ON r.id = p.run_id"
                         " WHERE r.trial_number IS NOT NULL ORDER BY name") == [("depth",), ("kernel",)]


def test_enqueued_configurations_run_next_and_the_queue_can_be_reordered(shell):
    study, _ = optimize(shell, "queue", "--trials 400", SLOW)
    study.pause()
    study.enqueue(x=0.25)
    study.enqueue(x=0.5)
    study.enqueue(x=0.75)
    study.move(3, 1)
    study.cancel(2)
    assert [q["x"] for q in study.controller.queue] == [0.75, 0.5]
    first_new = len(study.controller.trials)
    study.resume()
    wait_for(lambda: len(study.controller.finished_trials()) >= first_new + 2)
    study.stop()
    study.wait(10)
    by_number = {t.number: t.params["x"] for t in study.controller.trials}
    assert by_number[first_new] == 0.75 and by_number[first_new + 1] == 0.5


def test_nothing_runs_until_approved(shell, capsys):
    study, _ = optimize(shell, "gate", "--trials 6 --approve", QUADRATIC)
    wait_for(lambda: len(study.controller.planned) == 3)
    time.sleep(0.3)
    assert study.controller.finished_trials() == []
    assert study.wait() is False  # at once, not forever: only the person can let it go on
    assert "study 'gate' waits for you: 3 planned trials await your approval" in capsys.readouterr().err
    study.approve(2)
    wait_for(lambda: len(study.controller.finished_trials()) == 2)
    time.sleep(0.3)
    assert len(study.controller.finished_trials()) == 2  # the third waits for approval
    study.approve()
    wait_for(lambda: len(study.controller.planned) == 3)  # the next batch is planned
    study.approve()
    assert study.wait(30) and len(study.controller.finished_trials()) == 6


def test_the_approval_batch_size_is_the_persons_choice(shell):
    study, _ = optimize(shell, "gate5", "--trials 7 --approve 5", QUADRATIC)
    wait_for(lambda: len(study.controller.planned) == 5)
    study.approve()
    wait_for(lambda: len(study.controller.planned) == 2)  # the budget leaves 2 for the next batch
    assert len(study.controller.finished_trials()) <= 5
    study.approve()
    assert study.wait(30) and len(study.controller.finished_trials()) == 7


def test_steering_refuses_what_it_cannot_mean(shell):
    study, _ = optimize(shell, "gate-bad", "--trials 6 --approve 2", QUADRATIC)
    wait_for(lambda: len(study.controller.planned) == 2)
    for call, expected in (
            (lambda: study.approve(0), "approve at least 1 of the 2 planned trials"),
            (lambda: study.approve(-1), "approve at least 1"),  # a negative count approved from the end
            (lambda: study.fix("x", "a"), "x is a number; it cannot be fixed to 'a'"),
            (lambda: study.move(2, 1), "the queue is empty"),
            (lambda: study.reject(5), "no planned trial #5; planned trials are #1 to #2"),
            (lambda: study.enqueue(), "enqueue needs the values to try"),
            (lambda: study.cancel("a"), "a queue position must be a whole number, got 'a'"),
            (lambda: study.add_trials(2.5), "the number of trials to add must be a whole number")):
        with pytest.raises(UsageError, match=expected):
            call()
    assert len(study.controller.planned) == 2 and not study.controller.ready
    # queued while trials await approval, it is planned at once: the reply says so, not "#0"
    assert study.enqueue(x=0.5) == "planned: it awaits your approval with the other planned trials"
    assert study.controller.planned[0][1]["x"] == 0.5 and not study.controller.queue
    assert study.approve(1) == "approved 1 trial"


def test_whole_number_and_categorical_parameters_refuse_what_does_not_fit(shell):
    study, _ = optimize(shell, "ints", "--trials 4 --approve 1",
                        "n = xp.param('n', 3, low=1, high=9)\nk = xp.param('k', 'a', choices=['a', 'b'])\n"
                        "xp.log(score=n)\n")
    with pytest.raises(UsageError, match="n=2.5 is not a whole number; n is searched in whole numbers from 1 to 9"):
        study.enqueue(n=2.5)
    with pytest.raises(UsageError, match=r"k is chosen from \['a', 'b'\], not searched in a range"):
        study.set_space("k", 0, 1)
    assert study.enqueue(n=4).startswith("planned")


def test_an_approval_batch_below_one_is_refused_in_one_line(shell):
    result = shell.run_cell(f"%%experiment gate0 --optimize score --approve 0\n{QUADRATIC}")
    assert "--approve BATCH must be at least 1" in str(result.error_in_exec)


def test_failing_trials_are_recorded_and_repeated_failures_pause(shell, db_path):
    study, _ = optimize(shell, "flaky", "--trials 30",
                        "x = xp.param('x', 0.0, low=0.0, high=1.0)\nraise ValueError('broken')\n")
    wait_for(lambda: study.state == "paused")
    assert "5 failed trials in a row" in study.record["message"]
    assert study.wait() is False  # paused: it waits for the person, so wait() does not block
    assert rows(db_path, "SELECT DISTINCT status, trial_state, error_type FROM runs") == [
        ("failed", "failed", "ValueError")]


def test_constraint_violations_are_never_best(shell):
    body = ("x = xp.param('x', 0.0, low=0.0, high=10.0)\n"
            "xp.log(score=x, latency_ms=x * 10)\n")
    study, _ = optimize(shell, "fast", "--trials 20 --constraint 'latency_ms < 50' --sampler random --seed 1",
                        body)
    study.wait(30)
    states = {t.state for t in study.controller.trials}
    assert "infeasible" in states
    assert study.best_value < 5.0
    import optuna

    storage = study.record["storage"]
    best = optuna.load_study(study_name=study.name, storage=storage).best_trial
    assert best.value < 5.0


def test_steering_from_another_process(shell, db_path):
    study, _ = optimize(shell, "remote", "--trials 400", SLOW)
    exe = shutil.which("xpmagic", path=os.path.dirname(sys.executable))
    result = subprocess.run([exe, "pause", "remote", "--db", str(db_path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "paused" in result.stdout, result.stderr
    assert study.state == "paused"
    listed = json.loads(subprocess.run([exe, "studies", "--db", str(db_path), "--json"],
                                       capture_output=True, text=True).stdout)
    assert listed[0]["name"] == "remote" and listed[0]["state"] == "paused"
    assert listed[0]["storage"].startswith("sqlite:///") and "n_trials" in listed[0]
    assert study.interactions[-1]["source"] == "cli"


def test_a_worker_imports_the_notebooks_own_modules_and_records_them(shell, db_path, tmp_path):
    """A kernel imports `helpers.py` from the notebook's folder; `xpmagic worker` could not (no
    notebook folder on its path), printed the shell's traceback, and its trials recorded no local code."""
    (tmp_path / "xp_worker_helper.py").write_text("def centre():\n    return 1.0\n")
    (tmp_path / "elsewhere").mkdir()
    exe = shutil.which("xpmagic", path=os.path.dirname(sys.executable))
    try:
        run_ok(shell, f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport xp_worker_helper\n")
        shell.user_ns["__session__"] = str(tmp_path / "analysis.ipynb")  # as a Jupyter kernel names it
        run_ok(shell, "%%experiment data\npoints = [0.5, 1.5]\n")  # the study reads a recorded run's output
        study, _ = optimize(shell, "shared", "--trials 40 --no-recommend",
                            "import time\nx = xp.param('x', 0.0, low=-5.0, high=5.0)\ntime.sleep(0.2)\n"
                            "xp.log(score=-(x - xp_worker_helper.centre() - min(points)) ** 2)\n")
        worker = subprocess.run([exe, "worker", "shared", "--db", str(db_path), "--max-idle", "5"], capture_output=True,
                                text=True, timeout=120, cwd=tmp_path / "elsewhere")
        assert study.wait(60) and study.state == "finished"
    finally:
        sys.modules.pop("xp_worker_helper", None)
        shell.run_cell(f"sys.path.remove({str(tmp_path)!r})")
    assert worker.returncode == 0, worker.stdout + worker.stderr
    by_process = rows(db_path, "SELECT r.pid, r.status, l.modules FROM runs r LEFT JOIN local_code l"
                               " ON l.id = r.local_code_id WHERE r.trial_number IS NOT NULL")
    assert {pid for pid, _, _ in by_process} - {os.getpid()}, worker.stdout  # the worker ran trials
    assert all(status == "ok" and '"module":"xp_worker_helper"' in (modules or "") for _, status, modules in by_process)

    (tmp_path / "xp_worker_helper.py").unlink()  # a worker on a machine without the module: one clear line
    run_ok(shell, "import sys\nsys.modules['xp_worker_helper'] = type(sys)('xp_worker_helper')\n")
    study, _ = optimize(shell, "shared", "--trials 400", "x = xp.param('x', 0.0, low=-5.0, high=5.0)\n"
                        "xp.log(score=-(x - len(xp_worker_helper.__name__)) ** 2)\n")
    study.pause()
    try:
        failed = subprocess.run([exe, "worker", "shared", "--db", str(db_path), "--max-idle", "5"],
                                capture_output=True, text=True, timeout=120)
    finally:
        sys.modules.pop("xp_worker_helper", None)
    assert failed.returncode != 0 and "Traceback" not in failed.stdout + failed.stderr
    assert "No module named 'xp_worker_helper'" in failed.stderr and "notebook's folder" in failed.stderr


def test_two_jobs_run_trials_at_the_same_time(shell, db_path):
    study, _ = optimize(shell, "parallel", "--trials 6 --jobs 2", SLOW)
    study.wait(30)
    spans = rows(db_path, "SELECT started_at, ended_at FROM runs ORDER BY started_at")
    overlaps = sum(1 for a, b in zip(spans, spans[1:]) if b[0] < a[1])
    assert overlaps >= 2


def test_magic_steering_commands(shell):
    study, _ = optimize(shell, "magic", "--trials 400", SLOW)
    assert "paused" in repr(shell.run_line_magic("xp", "pause magic"))
    assert "budget is now 500" in repr(shell.run_line_magic("xp", "budget magic +100"))
    assert "x now in [0.0, 1.0]" in repr(shell.run_line_magic("xp", "space magic x 0 1"))
    assert "queued" in repr(shell.run_line_magic("xp", "enqueue magic x=0.5"))
    for bad, expected in (("x=abc", "x='abc' is not a number"), ("x=7", "x=7 is outside the search space [0.0, 1.0]")):
        result = shell.run_cell(f"%xp enqueue magic {bad}")
        assert expected in str(result.error_in_exec)  # refused, not clipped or sampled behind the person's back
    assert study.controller.queue == [{"x": 0.5}]  # paused: nothing took it
    narrowed = repr(shell.run_line_magic("xp", "space magic x 0.6 1"))
    assert "queued #1 now runs with x=0.5 -> 0.6" in narrowed  # moved inside, and said so
    assert study.controller.queue == [{"x": 0.6}]
    assert "stopped" in repr(shell.run_line_magic("xp", "stop magic"))
    assert [i["source"] for i in study.interactions] == ["magic"] * 6


@pytest.mark.parametrize("options, expected", [
    ("--trials 0", "--trials must be at least 1"),
    ("--sampler bogus", "invalid choice"),
    ("--constraint 'import os'", "--constraint"),
    ("--jobs 0", "--jobs must be at least 1"),
    ("--narrow --no-recommend", "cannot go with --no-recommend"),
])
def test_bad_optimize_arguments_are_one_line(shell, capsys, options, expected):
    result = shell.run_cell(f"%%experiment bad --optimize score {options}\n{QUADRATIC}")
    assert not result.success
    text = capsys.readouterr().out
    assert "xpmagic:" in text and expected in text and "Traceback" not in text


def test_an_objective_running_a_missing_script_is_named_in_one_line(shell, capsys):
    """`%run trian.py` said the cell needs an xp.param with a range: the space is read from the script."""
    result = shell.run_cell("%%experiment typo --optimize score\n%run trian.py --epochs 3\n")
    assert not result.success
    out = capsys.readouterr()
    assert "%run trian.py: no such script in" in out.out + out.err and "Traceback" not in out.out + out.err


def test_the_magic_line_takes_variables_as_any_ipython_magic_does(shell):
    """`{expr}` and `$name` in the %%experiment line are the notebook's values, as IPython fills
    them into every magic's line (the cell is rewritten before IPython would)."""
    run_ok(shell, "data_name, SEED, budget = 'wine', 7, 3\n")
    run_ok(shell, "%%experiment fit-{data_name} --seed {SEED} --tag seed-$SEED\nx = 1\n")
    run = shell.user_ns["xp"].get(1)
    assert (run.experiment, run.seed, run.tags) == ("fit-wine", 7, ["seed-7"])
    run_ok(shell, "%%experiment tune-{data_name} --optimize acc --trials {budget} --seed {SEED}\n"
                  "C = xp.param('C', 1.0, low=0.1, high=10.0)\nxp.log(acc=C)\n")
    study = shell.user_ns["xp"].study("tune-wine")
    assert study.wait(60) and len(rows(shell.user_ns["xp"].db, "SELECT id FROM runs WHERE study_id IS NOT NULL")) == 3


def test_optimize_needs_a_searchable_parameter(shell, capsys):
    result = shell.run_cell("%%experiment none --optimize score\nxp.log(score=1)\n")
    assert not result.success and "needs at least one xp.param with a range" in capsys.readouterr().out


def test_a_space_given_by_the_notebooks_names_and_numpy_values_is_read(shell, db_path):
    """Ranges from constants of an earlier cell and numpy defaults were not literals: the study
    refused to start ("needs at least one xp.param with a range")."""
    run_ok(shell, "import numpy as np\nLOW, HIGH = 0.01, 10.0\n")
    study, _ = optimize(shell, "named", "--trials 4 --seed 0 --no-recommend",
                        "C = xp.param('C', np.float64(1.0), low=LOW, high=HIGH, log=True)\n"
                        "n = xp.param('n', np.arange(10)[3], low=1, high=8)\n"
                        "xp.log({'score': -float(np.log10(C)) ** 2 - (n - 4) ** 2})\n")
    assert study.wait(30) and study.state == "finished"
    space = study.record["space"]["params"]
    assert (space["C"]["low"], space["C"]["high"], space["C"]["log"]) == (0.01, 10.0, True)
    assert (space["n"]["value"], space["n"]["low"], space["n"]["high"]) == (3, 1, 8)
    assert rows(db_path, "SELECT count(*) FROM runs WHERE trial_state = 'complete'") == [(4,)]


TUPLES = ("layers = xp.param('layers', (8,), choices=[(4,), (8,), (8, 4)])\n"
          "assert isinstance(layers, tuple), type(layers)\n"
          "xp.dataset(X, y, name='blobs')\n"
          "xp.log(score=-abs(sum(layers) - 12))\n")


def test_tuple_choices_reach_trials_recommendations_and_replays_as_tuples(shell, db_path):
    """ngram_range=(1, 2), hidden_layer_sizes=(100, 50): a tuple parameter was refused. Optuna
    keeps a tuple choice as its JSON text; the cell, the runs and the knowledge get the tuple."""
    run_ok(shell, "X = [[float(i), float(i % 3)] for i in range(30)]\ny = [i % 2 for i in range(30)]\n")
    study, _ = optimize(shell, "tuples", "--trials 6 --seed 0", TUPLES)
    assert study.wait(30) and study.state == "finished"
    assert all(t.state == "complete" for t in study.controller.trials), study.controller.trials
    assert {t.params["layers"] for t in study.controller.trials} <= {(4,), (8,), (8, 4)}
    study.controller.space.check_queued({"layers": [8, 4]})  # a tuple choice typed as a list (JSON, the CLI)
    with pytest.raises(UsageError, match="give at least one choice"):  # it was an IndexError
        study.set_space("layers", choices=[])
    assert study.record["best_params"]["layers"] in ([8, 4], [4], [8])  # JSON in the record
    shown = shell.run_line_magic("xp", "runs tuples")
    assert set(shown["params.layers"]) <= {(4,), (8,), (8, 4)}
    again, _ = optimize(shell, "tuples-again", "--trials 3 --seed 1", TUPLES)  # warm-started from the knowledge
    assert again.wait(30) and again.state == "finished"
    assert again.controller.recommendation is not None
    assert (8, 4) in [c["layers"] for c in again.controller.recommendation.warm_start]
    assert all(t.state == "complete" for t in again.controller.trials), again.controller.trials
    assert [t.params["layers"] for t in again.controller.trials][0] == (8, 4)
    grid, _ = optimize(shell, "tuples-grid", "--trials 3 --sampler grid --no-recommend", TUPLES)
    assert grid.wait(30) and grid.state == "finished"
    assert sorted(t.params["layers"] for t in grid.controller.trials) == [(4,), (8,), (8, 4)]


def test_a_range_the_objective_computes_itself_is_named_in_one_line(shell, capsys):
    result = shell.run_cell("%%experiment computed --optimize score\nhigh = 5.0\n"
                            "C = xp.param('C', 1.0, low=0.1, high=high)\nxp.log(score=C)\n")
    out = capsys.readouterr().out
    assert not result.success and "xp.param('C', 1.0, low=0.1, high=high) uses values the cell computes" in out


def test_optuna_dashboard_reads_the_study_unchanged(shell):
    """Through optuna-dashboard's own WSGI server code, as its web page would."""
    import io
    from wsgiref.util import setup_testing_defaults

    from optuna_dashboard import wsgi

    study, _ = optimize(shell, "dash", "--trials 5 --seed 2", QUADRATIC)
    study.wait(30)
    app = wsgi(study.record["storage"])

    def get(path: str) -> dict:
        environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
        setup_testing_defaults(environ)
        status = []
        body = b"".join(app(environ, lambda s, h, exc=None: status.append(s)))
        assert status[0].startswith("200"), status
        return json.loads(body)

    (listed,) = get("/api/studies")["study_summaries"]
    assert listed["study_name"] == "dash"
    detail = get(f"/api/studies/{listed['study_id']}")
    assert detail["name"] == "dash" and len(detail["trials"]) == 5
    assert {t["state"] for t in detail["trials"]} == {"Complete"}
    values = [t["values"][0] for t in detail["trials"]]
    assert max(values) == pytest.approx(study.best_value)


def test_a_study_keeps_its_database_when_the_session_switches_or_closes_its_own(shell, db_path, tmp_path):
    """Closing the session's connection under a running study's query crashed the kernel."""
    study, _ = optimize(shell, "steady", "--trials 12", SLOW.replace("0.1", "0.05"))
    wait_for(lambda: len(study.controller.finished_trials()) >= 2)
    other = tmp_path / "other.db"
    shell.run_line_magic("config", f"XPMagics.db_path = {str(other)!r}")
    run_ok(shell, "%%experiment elsewhere\nx = 1\n")  # the session now records into other.db
    shell.run_line_magic("unload_ext", "xpmagic")  # closes the session's connection
    assert study.controller.wait(30) and study.controller.state == "finished"
    shell.run_line_magic("load_ext", "xpmagic")
    assert rows(db_path, "SELECT count(*), min(status) FROM runs WHERE trial_number IS NOT NULL") == [(12, "ok")]
    assert rows(other, "SELECT count(*) FROM runs WHERE trial_number IS NOT NULL") == [(0,)]


QUICK = "x = xp.param('x', 0.0, low=-5.0, high=5.0)\nxp.log(score=-(x - 1.0) ** 2)\n"


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc")
def test_many_studies_in_one_session_do_not_run_it_out_of_files(shell, db_path):
    """Each study used to keep about ten descriptors open for good (its own database, knowledge
    and Optuna connections): a few hundred studies reached the usual limit of 1024."""
    first, _ = optimize(shell, "files-0", "--trials 2 --seed 0", QUICK)
    assert first.controller.wait(30)
    before = _open_files()
    for i in range(1, 9):
        study, _ = optimize(shell, f"files-{i}", "--trials 2 --seed 0", QUICK)
        assert study.controller.wait(30) and study.controller.state == "finished"
    assert _open_files() - before <= 4
    assert rows(db_path, "SELECT count(*) FROM runs WHERE trial_number IS NOT NULL") == [(18,)]


def test_a_study_after_the_database_was_deleted_writes_to_the_new_file(shell, db_path, tmp_path):
    first, _ = optimize(shell, "before", "--trials 2 --seed 0", QUICK)
    assert first.controller.wait(30)
    shell.run_line_magic("unload_ext", "xpmagic")
    for path in tmp_path.glob("xp*.db*"):  # the database and Optuna's file, as a person starting over
        path.unlink()
    shell.run_line_magic("load_ext", "xpmagic")
    shell.run_line_magic("config", f"XPMagics.db_path = {str(db_path)!r}")
    second, _ = optimize(shell, "after", "--trials 3 --seed 0", QUICK)
    assert second.controller.wait(30) and second.controller.state == "finished"
    assert rows(db_path, "SELECT e.name, count(*) FROM runs r JOIN experiments e ON e.id = r.experiment_id"
                         " WHERE r.trial_number IS NOT NULL GROUP BY e.name") == [("after", 3)]

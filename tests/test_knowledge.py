"""The knowledge table, meta-features and recommendations."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from test_optimize import _stop_studies  # noqa: F401  (autouse fixture)

from conftest import run_ok
from xpmagic.metafeatures import meta_features
from xpmagic.recommend import recommend
from xpmagic.records import ParamSpec
from xpmagic.store import Store


def test_meta_features_on_known_data():
    from sklearn.datasets import load_iris

    meta = meta_features(*load_iris(return_X_y=True))
    assert (meta["rows"], meta["features"], meta["classes"]) == (150, 4, 3)
    assert meta["class_entropy"] == pytest.approx(1.0) and meta["minority_share"] == pytest.approx(1 / 3)
    assert meta["share_missing"] == 0 and meta["share_categorical"] == 0
    assert 0.5 < meta["stump_accuracy"] < 0.8 and meta["nb_accuracy"] > 0.9
    frame = pd.DataFrame({"colour": ["red", "blue", None, "red"], "size": [1.0, np.nan, 3.0, 4.0]})
    meta = meta_features(frame, np.array([0, 1, 0, 0]))
    assert meta["share_categorical"] == 0.5 and meta["share_missing"] == pytest.approx(2 / 8)
    assert meta["minority_share"] == 0.25
    assert meta_features(np.arange(20.0).reshape(10, 2), np.linspace(0, 1, 10))["task"] == "regression"


def test_meta_features_of_a_large_data_set_read_a_sample_of_its_rows():
    import tracemalloc

    rng = np.random.default_rng(0)
    X = rng.exponential(size=(400_000, 20)).astype(np.float32)  # skewed: skew 2, kurtosis 6
    y = (rng.random(400_000) < 0.1).astype(int)
    tracemalloc.start()
    meta = meta_features(X, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Reading every row as float64 would take 64 MB, and each statistic's temporary as much again.
    assert peak < 30e6, f"{peak / 1e6:.0f} MB"
    assert (meta["rows"], meta["features"]) == (400_000, 20)
    assert meta["minority_share"] == pytest.approx(y.mean())  # the class balance reads every label
    assert meta["mean_abs_skew"] == pytest.approx(2.0, abs=0.2)
    assert meta["mean_kurtosis"] == pytest.approx(6.0, abs=1.5)


WINE = ("from sklearn.datasets import load_wine\nfrom sklearn.svm import SVC\n"
        "from sklearn.model_selection import cross_val_score\n"
        "from sklearn.pipeline import make_pipeline\nfrom sklearn.preprocessing import StandardScaler\n"
        "X, y = load_wine(return_X_y=True)\n")
SVC_CELL = ("C = xp.param('C', 1.0, low=1e-3, high=1e3, log=True)\n"
            "xp.dataset(X, y, name='wine')\n"
            "model = make_pipeline(StandardScaler(), SVC(C=C))\n"
            "xp.log(accuracy=cross_val_score(model, X, y, cv=3).mean())\n")


def test_knowledge_goes_to_a_separate_file_when_configured_even_one_made_anew(shell, db_path, tmp_path):
    team = tmp_path / "team-knowledge.db"
    run_ok(shell, f"%config XPMagics.knowledge_path = {str(team)!r}\n")
    run_ok(shell, WINE)
    run_ok(shell, f"%%experiment wine-svc\n{SVC_CELL}")
    assert Store(db_path).knowledge_rows() == [] and len(Store(team).knowledge_rows()) == 1
    os.remove(team)  # the share is replaced, e.g. restored from elsewhere
    Store(team).close()
    run_ok(shell, f"%%experiment wine-svc\n{SVC_CELL}")
    assert len(Store(team).knowledge_rows()) == 1  # the row went to the file now there


def test_runs_and_trials_add_knowledge_rows(shell, db_path):
    run_ok(shell, WINE)
    run_ok(shell, f"%%experiment wine-svc\n{SVC_CELL}")
    run_ok(shell, f"%%experiment wine-svc --optimize accuracy --trials 4 --seed 0 --no-recommend\n{SVC_CELL}")
    shell.user_ns["xp"].study("wine-svc").wait(60)
    rows = Store(db_path).knowledge_rows()
    assert len(rows) == 5
    first = rows[0]
    assert first["model_family"] == "SVC" and first["config"] == {"C": 1.0}
    assert first["metric"] == "accuracy" and first["direction"] == "maximize" and first["score"] > 0.9
    assert first["meta"]["rows"] == 178 and first["task_name"] == "wine" and first["cost_s"] > 0
    trials = [r for r in rows if r["study"] == "wine-svc"]
    assert sorted(r["trial_number"] for r in trials) == [0, 1, 2, 3]
    assert all(r["sampler"] == "tpe" for r in trials)


SCORE_HELPER = ("def svc_score(C):\n"
                "    return cross_val_score(make_pipeline(StandardScaler(), SVC(C=C)), X, y, cv=3).mean()\n")
UNASSIGNED_MODEL_CELL = "xp.dataset(X, y, name='wine')\nxp.log(accuracy=svc_score(xp.param('C', {C})))\n"


def test_a_model_never_assigned_is_known_by_the_class_the_cell_constructs(shell, db_path):
    """cross_val_score(HGB(...)) leaves no estimator in a variable: the family is the predictor
    class the cell calls, through its alias, for a run and for an optimization's trials."""
    run_ok(shell, WINE + "from sklearn.svm import SVC as Classifier\n")
    inline = ("C = xp.param('C', 1.0, low=0.1, high=10.0, log=True)\nxp.dataset(X, y, name='wine')\n"
              "xp.log(accuracy=cross_val_score(make_pipeline(StandardScaler(), Classifier(C=C)), X, y, cv=3).mean())\n")
    run_ok(shell, f"%%experiment inline\n{inline}")
    run_ok(shell, f"%%experiment inline-tuning --optimize accuracy --trials 2 --seed 0 --no-recommend\n{inline}")
    shell.user_ns["xp"].study("inline-tuning").wait(60)
    assert {r["model_family"] for r in Store(db_path).knowledge_rows()} == {"SVC"}


def test_the_family_is_the_model_not_the_preprocessing_beside_it(shell, db_path):
    """`pre = ColumnTransformer(...)`, `pipe = make_pipeline(pre, LogisticRegression())`: the
    knowledge said ColumnTransformer (the name sorted last), for a run and for trials."""
    run_ok(shell, WINE + "from sklearn.compose import ColumnTransformer\n"
                         "from sklearn.linear_model import LogisticRegression\n")
    cell = ("C = xp.param('C', 1.0, low=0.1, high=10.0, log=True)\nxp.dataset(X, y, name='wine')\n"
            "pre = ColumnTransformer([('scale', StandardScaler(), list(range(13)))])\n"
            "pipe = make_pipeline(pre, LogisticRegression(C=C, max_iter=2000))\n"
            "xp.log(accuracy=cross_val_score(pipe, X, y, cv=3).mean())\n")
    run_ok(shell, f"%%experiment piped\n{cell}")
    run_ok(shell, f"%%experiment piped-tuning --optimize accuracy --trials 2 --seed 0 --no-recommend\n{cell}")
    shell.user_ns["xp"].study("piped-tuning").wait(60)
    assert [r["model_family"] for r in Store(db_path).knowledge_rows()] == ["LogisticRegression"] * 3


def test_a_model_built_in_a_script_run_with_percent_run_is_known_too(shell, db_path, tmp_path):
    """`%run train.py`: the model class is constructed in the script, for a run, for trials, and
    for the recommendations of the experiment (read from the script's recorded source)."""
    (tmp_path / "train.py").write_text(
        "from xpmagic import xp\nfrom sklearn.datasets import load_wine\nfrom sklearn.model_selection import "
        "cross_val_score\nfrom sklearn.tree import DecisionTreeClassifier\nX, y = load_wine(return_X_y=True)\n"
        "depth = xp.param('depth', 3, low=1, high=8)\nxp.dataset(X, y, name='wine')\n"
        "model = DecisionTreeClassifier(max_depth=depth, random_state=0)\n"
        "xp.log(accuracy=cross_val_score(model, X, y, cv=3).mean())\n")
    run_ok(shell, "%%experiment scripted\n%run train.py\n")
    run_ok(shell, "%%experiment scripted-tuning --optimize accuracy --trials 2 --seed 0 --no-recommend\n"
                  "%run train.py\n")
    shell.user_ns["xp"].study("scripted-tuning").wait(60)
    assert [r["model_family"] for r in Store(db_path).knowledge_rows()] == ["DecisionTreeClassifier"] * 3
    recommendation = shell.run_line_magic("xp", "recommend scripted")
    assert recommendation.warm_start and "among the best on wine" in recommendation.warm_start_reasons[0]


def test_a_task_keeps_one_summary_when_the_model_family_is_unknown(shell, db_path):
    """The estimator is never assigned to a variable, so the family is unknown (NULL): each run
    used to add a summary of its own, and recommendations read a stale one as the best."""
    run_ok(shell, WINE + SCORE_HELPER)
    for C in (0.001, 1.0, 0.01):
        run_ok(shell, f"%%experiment wine-svc\n{UNASSIGNED_MODEL_CELL.format(C=C)}")
    store = Store(db_path)
    [summary] = [r for r in store.best_per_task(None, "accuracy", "maximize") if r["config"] == {"C": 1.0}]
    assert summary["task_rows"] == 3 and len(store.best_per_task(None, "accuracy", "maximize")) == 3
    assert store.best_per_task(None, "accuracy", "maximize")[0]["config"] == {"C": 1.0}  # best first
    rec = recommend(store, meta=store.knowledge_rows()[0]["meta"], specs=SPECS, metric="accuracy",
                    direction="maximize", model_family=None)
    assert rec.expected_range == (summary["score"], summary["score"]) and summary["score"] > 0.9


def test_a_database_with_duplicated_task_summaries_keeps_the_newest(tmp_path):
    from sqlite_utils import Database

    from xpmagic.store import _schema

    path = tmp_path / "old.db"
    db = Database(path)
    _schema.migrations().apply(db, stop_before="m009_one_summary_per_task")
    for n in (1, 2):
        db.execute("INSERT INTO knowledge_tasks (model_family, metric, direction, task, meta, top, n)"
                   " VALUES (NULL, 'accuracy', 'maximize', 't', '{}', ?, ?)", (f"[{n}]", n))
    db.conn.commit()
    db.close()
    store = Store(path)
    assert store.conn.execute("SELECT top, n FROM knowledge_tasks").fetchall() == [("[2]", 2)]


def _row(uid, task, meta, C, score, rating=None):
    return {"uid": uid, "task": task, "task_name": task, "meta": meta, "model_family": "SVC",
            "config": {"C": C}, "metric": "accuracy", "direction": "maximize", "score": score,
            "rating": rating, "created_at": "t", "origin": "test"}


NEAR = {"rows": 200, "features": 10, "classes": 3, "class_entropy": 0.95, "stump_accuracy": 0.6}
FAR = {"rows": 100_000, "features": 500, "classes": 20, "class_entropy": 0.2, "stump_accuracy": 0.1}
SPECS = {"C": ParamSpec("C", 1.0, 1e-3, 1e3, True)}


@pytest.fixture
def constructed(tmp_path):
    store = Store(tmp_path / "k.db")
    store.add_knowledge(
        [_row(f"near-{i}", "near", NEAR, c, s) for i, (c, s) in enumerate([(10.0, 0.95), (0.1, 0.7), (500.0, 0.8)])]
        + [_row(f"far-{i}", "far", FAR, c, s) for i, (c, s) in enumerate([(0.01, 0.9), (100.0, 0.5)])]
        + [_row("bad", "near2", {**NEAR, "rows": 210}, 999.0, 0.99, rating=1),
           _row("ok2", "near2", {**NEAR, "rows": 210}, 20.0, 0.9)])
    return store


def test_recommendations_come_from_the_most_similar_task_first(constructed):
    rec = recommend(constructed, meta=NEAR, specs=SPECS, metric="accuracy",
                    direction="maximize", model_family="SVC")
    assert rec.warm_start[0] == {"C": 10.0} and "near" in rec.warm_start_reasons[0]
    assert {"C": 999.0} not in rec.warm_start  # rated 1 star: never recommended
    assert rec.similar_tasks[-1]["name"] == "far"
    assert rec.similar_tasks[-1]["why"] == "differs most in classes (3 vs 20) and rows (200 vs 100,000)"
    assert rec.similar_tasks[0]["why"] == "alike in every meta-feature"  # near: the same meta-features
    low, high = rec.space["C"]["low"], rec.space["C"]["high"]
    assert low <= 1.0 <= high  # the default stays inside the narrowed space
    assert rec.expected_range[0] <= 0.95 <= rec.expected_range[1]
    assert "most support from near" in rec.warm_start_reasons[0]
    again = recommend(constructed, meta=NEAR, specs=SPECS, metric="accuracy",
                      direction="maximize", model_family="SVC")
    assert again.to_dict() == rec.to_dict()  # deterministic


def test_leave_one_task_out(constructed):
    rec = recommend(constructed, meta=NEAR, specs=SPECS, metric="accuracy", direction="maximize",
                    model_family="SVC", exclude_task="near")
    assert {"C": 10.0} not in rec.warm_start and rec.similar_tasks[0]["name"] == "near2"


def _costed(uid, task, meta, C, score, cost, rating=None):
    return {**_row(uid, task, meta, C, score, rating), "cost_s": cost}


def _slow_and_fast(store, rated_tasks=(), unrated_tasks=()):
    """Each task: a slow configuration that scores a little better and a fast one. On rated
    tasks (far away, other configurations) the person gave the slow one 1 star and the fast one 5."""
    rows = []
    for task, meta in [*rated_tasks, *unrated_tasks]:
        rated = (task, meta) in rated_tasks
        slow, fast = (900.0, 0.01) if rated else (300.0, 1.0)
        rows.append(_costed(f"{task}-slow", task, meta, slow, 0.95, 20.0, 1 if rated else None))
        rows.append(_costed(f"{task}-fast", task, meta, fast, 0.93, 0.1, 5 if rated else None))
        rows.append(_costed(f"{task}-bad", task, meta, 0.002, 0.5, 0.1))
    store.add_knowledge(rows)
    return store


RATED = tuple((f"rated-{i}", {**FAR, "rows": 90_000 + 1000 * i}) for i in range(4))
UNRATED = (("fresh", NEAR),)


def test_ratings_teach_a_weight_for_unrated_configurations(tmp_path):
    from xpmagic import ratings

    store = _slow_and_fast(Store(tmp_path / "k.db"), RATED, UNRATED)
    rated = store.rated_rows("SVC", "accuracy", "maximize")
    assert len(rated) == 8 and {r["rating"] for r in rated} == {1, 5}
    rows = store.best_per_task("SVC", "accuracy", "maximize")
    model = ratings.learn(rated, ratings.context_for(rows, rated, SPECS, "maximize"))
    fresh = store.task_rows("SVC", "accuracy", "maximize", "fresh")
    slow, fast = ({**next(r for r in fresh if r["config"]["C"] == c), "task": "fresh"} for c in (300.0, 1.0))
    assert model.predicted_stars(slow) < 2.5 < 3.5 < model.predicted_stars(fast)
    assert model.weight(slow) < 1.0 < model.weight(fast)
    assert ratings.learn(rated[:2], model.context) is None  # too few ratings to learn from


def test_recommendations_learn_from_ratings(tmp_path):
    plain = recommend(_slow_and_fast(Store(tmp_path / "plain.db"), (), RATED + UNRATED), meta=NEAR,
                      specs=SPECS, metric="accuracy", direction="maximize", model_family="SVC")
    assert plain.warm_start[0] == {"C": 300.0} and plain.ratings_learned == 0  # the scores alone
    learned = recommend(_slow_and_fast(Store(tmp_path / "rated.db"), RATED, UNRATED), meta=NEAR,
                        specs=SPECS, metric="accuracy", direction="maximize", model_family="SVC")
    # The nearest task was never rated, yet its fast configuration comes first now.
    assert learned.warm_start[0] == {"C": 1.0} and "fresh" in learned.warm_start_reasons[0]
    unlearned = recommend(_slow_and_fast(Store(tmp_path / "filter.db"), RATED, UNRATED), meta=NEAR, specs=SPECS,
                          metric="accuracy", direction="maximize", model_family="SVC", learn_ratings=False)
    assert unlearned.warm_start[0] == {"C": 300.0}  # the 1-star filter alone does not carry it over
    assert "your ratings predict" in learned.warm_start_reasons[0]
    assert learned.ratings_learned == 8 and "learned from your 8 ratings" in repr(learned)


def test_the_guide_listens_to_the_results_of_this_task(tmp_path):
    """Tasks like the new one by meta-features prefer a large C; other tasks a small C. When the
    new task's first results rank like the other tasks, the next picks follow those."""
    store = Store(tmp_path / "k.db")
    rows = []
    for i in range(3):
        for task, meta, curve in ((f"alike-{i}", {**NEAR, "rows": 200 + i}, lambda c: math.log10(c)),
                                  (f"other-{i}", {**NEAR, "rows": 260 + i}, lambda c: -math.log10(c))):
            rows += [_row(f"{task}-{c}", task, meta, c, 0.5 + 0.1 * curve(c))
                     for c in (0.001, 0.01, 0.1, 10.0, 100.0, 1000.0)]
    store.add_knowledge(rows)
    rec = recommend(store, meta=NEAR, specs=SPECS, metric="accuracy", direction="maximize", model_family="SVC")
    assert rec.warm_start[0] == {"C": 1000.0}  # the similar tasks' favourite
    # Six grid tasks: the replay finds every task's best within the first trials whatever the strength.
    assert rec.adaptation_strength == 5 and "middle strength (5): replaying" in rec.adaptation_reason
    assert "every strength left 0.000 of the range to go" in rec.adaptation_reason
    observed = [({"C": 1000.0}, 0.60), ({"C": 100.0}, 0.62), ({"C": 10.0}, 0.65)]  # ranks like the others
    weights = rec.guide.weights(observed)
    assert sum(weights[[t.name.startswith("other") for t in rec.guide.tasks]]) > 0.9
    before = rec.guide.plan([], 2)
    assert [p.config for p in before] == [{"C": 1000.0}, {"C": 0.001}]
    after = rec.guide.plan(observed, 1, exclude=lambda c: c in [o for o, _ in observed])
    assert after[0].config == {"C": 0.001} and "ranked your 3 results" in after[0].reason
    assert "other-" in after[0].reason.partition("most support from")[2].split(",")[0]
    assert list(rec.guide.weights(observed[:1])) == list(rec.guide.prior)  # one result ranks nothing
    with_nan = rec.guide.weights([*observed, ({"C": 0.1}, float("nan"))])  # a diverged trial orders nothing
    assert np.allclose(with_nan, weights)


GRID = [float(c) for c in np.logspace(-3, 3, 31)]


def _peaked_tasks(store, peaks):
    """Tasks with one meta-feature vector (an equal say for each), given as (name, peak, width) in
    decades of C; every task has a row at every grid value, so predictions are exact."""
    store.add_knowledge([_row(f"{task}-{i}", task, NEAR, c, 0.5 + 0.4 * math.exp(-((math.log10(c) - peak) / width) ** 2)
                              + 0.001 * i / len(GRID))  # no exact ties
                         for task, peak, width in peaks for i, c in enumerate(GRID)])
    return recommend(store, meta=NEAR, specs=SPECS, metric="accuracy", direction="maximize", model_family="SVC")


def test_the_strength_of_adaptation_is_what_worked_when_replayed_on_past_tasks(tmp_path):
    """The guide replays itself on every past task, as if it were new, at every strength (all at
    once, in numpy). The figures must be what the guide itself does: replay one task by hand with
    plan() and weights() at a fixed strength and compare."""
    from xpmagic import adaptation

    shapes = [(-2.5, 0.6), (-2.0, 1.5), (-0.5, 0.4), (0.0, 2.0), (0.5, 0.5), (1.5, 1.0), (2.5, 0.7), (2.0, 3.0)]
    peaks = [(f"t{i}", peak, width) for i, (peak, width) in enumerate(shapes)]
    rec = _peaked_tasks(Store(tmp_path / "k.db"), peaks)
    evidence = rec.guide.adaptation
    assert evidence.replayed == len(peaks) and set(evidence.regret) == set(adaptation.STRENGTHS)
    assert evidence.regret[evidence.strength] == min(evidence.regret.values())
    assert rec.adaptation_strength == evidence.strength and rec.to_dict()["adaptation_reason"] == evidence.reason
    assert f"each of your {len(peaks)} past tasks" in repr(rec)
    for strength in (1.0, 20.0):
        by_hand = []
        for task, _, _ in peaks:
            replay = recommend(Store(tmp_path / "k.db"), meta=NEAR, specs=SPECS, metric="accuracy",
                               direction="maximize", model_family="SVC", exclude_task=task).guide
            replay.adaptation = adaptation.AdaptationEvidence(strength, 0, {})
            truth = {r["config"]["C"]: r["score"] for r in Store(tmp_path / "k.db").task_rows("SVC", "accuracy",
                                                                                              "maximize", task, 200)}
            lo, hi = min(truth.values()), max(truth.values())
            observed = []
            for _ in range(10):
                tried = [o for o, _ in observed]
                pick = replay.plan(observed, 1, exclude=lambda c, tried=tried: c in tried)[0]
                observed.append((pick.config, truth[pick.config["C"]]))
            found = [max(v for _, v in observed[:k]) for k in adaptation.CHECKPOINTS]
            by_hand.append(np.mean([(hi - f) / (hi - lo) for f in found]))
        assert evidence.regret[strength] == pytest.approx(np.mean(by_hand), abs=1e-9)
    # A replayed task that runs out of other tasks' candidates stops, as plan() does: its own best
    # row never counts as found.
    own = np.eye(6)
    evidence = adaptation.choose_strength(credit=0.2 + 0.8 * own, prior_of=(1 - own) / 5, allowed=own == 0,
                                          bonus=np.ones(6), picks=10)
    assert all(r == pytest.approx(0.8) for r in evidence.regret.values())
    # Too few past tasks to replay: a middle strength, and the reason says why.
    few = _peaked_tasks(Store(tmp_path / "few.db"), peaks[:3])
    assert few.adaptation_strength == adaptation.DEFAULT_STRENGTH and few.guide.adaptation.replayed == 0
    assert few.adaptation_reason.endswith("too few past tasks to test which strength works (the test needs 6; "
                                          "you have 3)")


def _curved_tasks(store, tasks):
    """Tasks given as (name, rows in the meta-features, +1 if a large C is good there, -1 if a small one)."""
    store.add_knowledge([_row(f"{task}-{c}", task, {**NEAR, "rows": rows}, c, 0.5 + 0.1 * sign * math.log10(c))
                         for task, rows, sign in tasks for c in (0.001, 0.01, 0.1, 10.0, 100.0, 1000.0)])
    return recommend(store, meta=NEAR, specs=SPECS, metric="accuracy", direction="maximize", model_family="SVC")


def test_similarity_gets_the_share_of_the_vote_it_has_earned(tmp_path, constructed):
    # Close tasks rank configurations alike, distant ones do not: similarity keeps its full share.
    earned = _curved_tasks(Store(tmp_path / "earned.db"),
                           [(f"{kind}-{i}", rows + i, sign) for i in range(3)
                            for kind, rows, sign in (("alike", 200, 1), ("other", 2000, -1))])
    assert earned.guide.evidence.correlation > 0.5 and earned.similarity_share == 0.5
    assert "similarity has 50% of the vote" in repr(earned) and "similarity (50%)" in earned.warm_start_reasons[0]
    # In every cluster of close tasks, one likes a large C and one a small C: closeness predicts nothing.
    unearned = _curved_tasks(Store(tmp_path / "unearned.db"),
                             [(f"c{k}-{sign}", 200 * 10 ** k + (sign > 0), sign) for k in range(3) for sign in (1, -1)])
    assert unearned.guide.evidence.correlation < 0 and unearned.similarity_share == 0
    assert "similarity has no say" in repr(unearned) and "an equal say for every task" in unearned.warm_start_reasons[0]
    assert len(set(unearned.guide.prior)) == 1  # every task starts with the same weight
    # Past tasks of different sizes (3 to 6 results each) still take part; tasks with 2 results do not.
    grid = (0.001, 0.01, 0.1, 10.0, 100.0, 1000.0)
    ragged_store = Store(tmp_path / "ragged.db")
    ragged_store.add_knowledge([_row(f"r{i}-{c}", f"r{i}", {**NEAR, "rows": 200 * 10 ** (i % 2) + i}, c,
                                     0.5 + 0.1 * (1 if i % 2 else -1) * math.log10(c))
                                for i in range(8) for c in grid[:3 + i % 4]]
                               + [_row(f"s{i}-{c}", f"s{i}", NEAR, c, 0.5 + 0.01 * i * c) for i in range(3)
                                  for c in grid[:2]])
    ragged = recommend(ragged_store, meta=NEAR, specs=SPECS, metric="accuracy", direction="maximize",
                       model_family="SVC")
    assert ragged.guide.evidence.tasks == 8 and ragged.guide.evidence.correlation is not None
    # Three past tasks cannot tell: similarity keeps half the vote, and the reason says why.
    few = recommend(constructed, meta=NEAR, specs=SPECS, metric="accuracy", direction="maximize", model_family="SVC")
    assert few.guide.evidence.correlation is None and few.similarity_share == 0.5
    assert few.similarity_reason.endswith("(the test needs 6 past tasks with 3 or more results each; "
                                          "1 of your 3 past tasks has that many)")
    assert few.to_dict()["similarity_share"] == 0.5


def test_knowledge_of_other_parameters_recommends_no_trials(tmp_path):
    store = Store(tmp_path / "k.db")
    store.add_knowledge([{**_row(f"o{i}", "near", NEAR, 1.0, 0.5 + i / 10), "config": {"kernel_width": i}}
                         for i in range(3)])
    rec = recommend(store, meta=NEAR, specs=SPECS, metric="accuracy", direction="maximize", model_family="SVC")
    assert rec.warm_start == [] and rec.guide is None and rec.similar_tasks[0]["name"] == "near"


def test_nothing_known_gives_an_empty_recommendation(tmp_path):
    rec = recommend(Store(tmp_path / "empty.db"), meta=NEAR, specs=SPECS, metric="accuracy",
                    direction="maximize", model_family="SVC")
    assert rec.empty and "nothing" in repr(rec)


def xpmagic(*args, cwd=None):
    exe = shutil.which("xpmagic", path=os.path.dirname(sys.executable))
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize("suffix", [".json", ".csv", ".parquet"])
def test_export_import_merge_round_trip_without_duplicates(constructed, tmp_path, suffix):
    out = tmp_path / f"knowledge{suffix}"
    assert xpmagic("knowledge", "export", str(out), "--db", str(constructed.path)).returncode == 0
    other = tmp_path / "other.db"  # not there yet: importing starts it (a team's knowledge file, say)
    first = xpmagic("knowledge", "import", str(out), "--db", str(other))
    assert f"imported 7 new knowledge rows from {out} into {other}" in first.stdout, first.stderr
    again = xpmagic("knowledge", "import", str(out), "--db", str(other))
    assert "imported 0 new" in again.stdout
    merged = xpmagic("knowledge", "merge", str(constructed.path), "--db", str(other))
    assert "merged 0 new" in merged.stdout
    rows = Store(other).knowledge_rows()
    assert len(rows) == 7 and {r["origin"] for r in rows} == {"test"}
    assert {r["uid"]: r["config"] for r in rows} == {r["uid"]: r["config"] for r in constructed.knowledge_rows()}


def test_merging_starts_a_knowledge_file_and_names_a_missing_source(constructed, tmp_path):
    team = tmp_path / "team.db"
    merged = xpmagic("knowledge", "merge", str(constructed.path), "--db", str(team))
    assert f"merged 7 new knowledge rows from {constructed.path} into {team}" in merged.stdout, merged.stderr
    missing = xpmagic("knowledge", "merge", str(tmp_path / "nowhere.db"), "--db", str(team))
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1
    assert "nothing to merge from" in missing.stderr and "nowhere.db" in missing.stderr
    exported = tmp_path / "team.json"
    exported.write_text("[]")
    not_a_database = xpmagic("knowledge", "merge", str(exported), "--db", str(team))
    assert not_a_database.returncode == 2 and len(not_a_database.stderr.strip().splitlines()) == 1
    assert "use knowledge import" in not_a_database.stderr and "XPMAGIC_DB" not in not_a_database.stderr
    assert xpmagic("runs", "--db", str(team)).stdout.startswith(f"no runs yet in {team}")  # knowledge only


@pytest.mark.parametrize("name, content, expected", [
    ("broken.json", "{not json", "Expecting property name"),
    ("list.json", '{"uid": "a"}', "no list of rows"),
    ("partial.json", '[{"uid": "a", "task": "t"}]', "row 1 has no 'meta'"),
    ("other.csv", "a,b\n1,2\n", "the header has no 'uid'"),
    ("header-only.csv", "a,b\n", "the header has no 'uid'"),  # no rows, but not an export either
    ("fake.parquet", "PAR1 not really", "Parquet"),
])
def test_importing_a_file_that_is_not_knowledge_is_one_line_and_adds_nothing(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    db = tmp_path / "k.db"
    Store(db).close()
    result = xpmagic("knowledge", "import", str(path), "--db", str(db))
    assert result.returncode == 2 and f"cannot import {path}" in result.stderr and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert Store(db).knowledge_rows() == []


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_an_export_of_an_empty_table_imports_as_nothing(tmp_path, suffix):
    db, path = tmp_path / "empty.db", tmp_path / f"none{suffix}"
    Store(db).close()
    assert xpmagic("knowledge", "export", str(path), "--db", str(db)).returncode == 0
    imported = xpmagic("knowledge", "import", str(path), "--db", str(db))
    assert imported.returncode == 0 and "imported 0 new knowledge rows" in imported.stdout, imported.stderr


def test_optimize_warm_starts_from_knowledge_and_says_so(shell, db_path):
    run_ok(shell, WINE)
    run_ok(shell, f"%%experiment first --optimize accuracy --trials 6 --seed 0 --no-recommend\n{SVC_CELL}")
    shell.user_ns["xp"].study("first").wait(60)
    best = shell.user_ns["xp"].study("first").best_params
    result = run_ok(shell, f"%%experiment second --optimize accuracy --trials 5 --seed 1\n{SVC_CELL}")
    panel = result.result
    study = shell.user_ns["xp"].study("second")
    study.wait(60)
    controller = study.controller
    assert controller.recommendation is not None and not controller.recommendation.empty
    assert controller.trials[0].params["C"] == pytest.approx(best["C"])  # the warm start ran first
    assert "Recommended from the knowledge table" in panel.recommendation_html.value
    used = [i for i in study.interactions if i["action"] == "recommendation-used"]
    assert used and used[0]["after"]["warm_start"][0]["C"] == pytest.approx(best["C"])
    warm = len(controller.recommendation.warm_start)
    run_ok(shell, f"%%experiment second --optimize accuracy --trials 7 --seed 1 --resume\n{SVC_CELL}")
    resumed = shell.user_ns["xp"].study("second")
    resumed.wait(60)  # TPE keeps the warm starts' startup when the study resumes
    assert resumed.controller.study.sampler._n_startup_trials == warm
    run_ok(shell, f"%%experiment third --optimize accuracy --trials 3 --seed 1 --no-recommend\n{SVC_CELL}")
    assert shell.user_ns["xp"].study("third").controller.recommendation is None


def test_recommended_trials_follow_the_results_as_they_come(shell, db_path):
    """Tasks with this data's meta-features liked a large C, other tasks a small one; this task
    likes a small one. After two results the queued recommended trials are chosen again."""
    run_ok(shell, WINE + "import math\n")
    meta = meta_features(shell.user_ns["X"], shell.user_ns["y"])
    rows = []
    for i, (alike, other) in enumerate(((1000.0, 0.001), (300.0, 0.01), (100.0, 0.1))):
        for task, task_meta, best in ((f"alike-{i}", meta, alike), (f"other-{i}", {**meta, "rows": 5000 + i}, other)):
            rows += [{**_row(f"{task}-{c}", task, task_meta, c, 0.9 - 0.1 * abs(math.log10(c / best))),
                      "model_family": "SVC"} for c in (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 300.0, 1000.0)]
    Store(db_path).add_knowledge(rows)
    cell = ("C = xp.param('C', 1.0, low=1e-3, high=1e3, log=True)\nxp.dataset(X, y, name='wine')\n"
            "model = SVC(C=C)\nxp.log(accuracy=0.9 - 0.1 * abs(math.log10(C / 0.01)))\n")
    run_ok(shell, f"%%experiment follows --optimize accuracy --trials 5 --seed 0 --narrow\n{cell}")
    study = shell.user_ns["xp"].study("follows")
    study.wait(60)
    planned = next(i for i in study.interactions if i["action"] == "recommendation-used")["after"]["warm_start"]
    assert len(planned) == 5  # 18 candidates, but no more warm starts than the budget runs
    assert planned[0]["C"] >= 100  # the meta-features' guess (a large C) came first
    adapted = [i for i in study.interactions if i["action"] == "recommendation-adapted"]
    assert adapted and adapted[0]["after"]["C"] < 1, "the queued recommendations were never chosen again"
    ran = [t.params["C"] for t in sorted(study.controller.trials, key=lambda t: t.number)]
    assert ran[0] == pytest.approx(planned[0]["C"])
    # the space had been narrowed around the large-C tasks; a small-C recommendation ran as it
    # was (the favourite of a task that ranks like this one) and widened the space
    small = [c for c in ran if c < 0.3]
    assert small and min(small) in [pytest.approx(c) for c in (0.001, 0.01, 0.1)]
    assert study.controller.space.specs["C"].low <= min(small)
    assert any(i["action"] == "space" and i["source"] == "system" for i in study.interactions)
    # A queued recommendation chosen again keeps the reason of its last choice, also when the
    # configuration stayed the same: trial 4 was chosen again after 3 results.
    rec = study.controller.recommendation
    reasons = {c["C"]: why for c, why in zip(rec.warm_start, rec.warm_start_reasons)}
    assert "ranked your 3 results" in reasons[ran[3]] and "ranked your 4 results" in reasons[ran[4]]


def test_a_failing_recommender_leaves_the_study_running_cold(shell, monkeypatch):
    import xpmagic.recommend

    def broken(*args, **kwargs):
        raise RuntimeError("knowledge unreadable")

    monkeypatch.setattr(xpmagic.recommend, "for_cell", broken)
    run_ok(shell, WINE)
    run_ok(shell, f"%%experiment cold --optimize accuracy --trials 2 --seed 0\n{SVC_CELL}")
    study = shell.user_ns["xp"].study("cold")
    study.wait(60)
    assert study.controller.recommendation is None and len(study.controller.finished_trials()) == 2
    said = [i["after"] for i in study.interactions if i["action"] == "recommendation-unavailable"]
    assert said == ["started without recommendations: RuntimeError: knowledge unreadable"]


def test_panel_apply_and_ignore(shell):
    run_ok(shell, WINE)
    run_ok(shell, f"%%experiment base --optimize accuracy --trials 6 --seed 0 --no-recommend\n{SVC_CELL}")
    shell.user_ns["xp"].study("base").wait(60)
    run_ok(shell, "import time")
    slow = SVC_CELL + "time.sleep(0.2)\n"
    panel = run_ok(shell, f"%%experiment next --optimize accuracy --trials 50 --seed 1\n{slow}").result
    panel.pause_button.click()
    controller = panel.controller
    rec = controller.recommendation
    assert rec.space and controller.space.specs["C"].low == pytest.approx(1e-3)  # offered, not taken
    # TPE models the results right after the warm starts, not after its default 10 random trials
    assert controller.study.sampler._n_startup_trials == len(rec.warm_start) < 10
    assert controller.study.user_attrs["xpmagic_startup_trials"] == len(rec.warm_start)
    panel.ignore_recommendation.click()  # undoes the warm starts and the narrowed space
    assert not any(q in rec.warm_start for q in controller.queue)
    assert controller.space.specs["C"].low == pytest.approx(1e-3)
    assert controller.study.sampler._n_startup_trials == 10  # Optuna's default again
    panel.apply_recommendation.click()  # the warm starts back, and the narrowed space
    assert controller.space.specs["C"].low == pytest.approx(rec.space["C"]["low"])
    assert controller.study.sampler._n_startup_trials == len(rec.warm_start)
    panel.ignore_recommendation.click()  # the cell's own space again
    assert controller.space.specs["C"].low == pytest.approx(1e-3)
    actions = [i["action"] for i in controller._store().interactions(controller.study_id)]
    assert {"recommendation-used", "apply-recommendation", "ignore-recommendation"} <= set(actions)


def test_recommend_and_knowledge_commands(shell, db_path):
    run_ok(shell, WINE)
    run_ok(shell, f"%%experiment wine-a --optimize accuracy --trials 4 --seed 0 --no-recommend\n{SVC_CELL}")
    shell.user_ns["xp"].study("wine-a").wait(60)
    text = repr(shell.run_line_magic("xp", "recommend wine-a"))
    assert "warm-start configurations" in text and "wine" in text
    run_ok(shell, "%%experiment wine-a\nnote = 'a quick look, no data set'\n")  # the newest run has no task
    run_ok(shell, "%%experiment plain\nnote = 'no data set at all'\n")
    plain = xpmagic("recommend", "--experiment", "plain", "--db", str(db_path))
    assert plain.returncode == 2 and "the run of 'plain' recorded no data set with a target" in plain.stderr
    result = xpmagic("recommend", "--experiment", "wine-a", "--db", str(db_path), "--json")
    data = json.loads(result.stdout)
    assert data["warm_start"] and data["similar_tasks"][0]["name"] == "wine"
    shown = xpmagic("knowledge", "--db", str(db_path), "--experiment", "wine-a")
    assert "4 knowledge rows" in shown.stdout and "most similar past tasks" in shown.stdout
    assert "alike in every meta-feature" in shown.stdout  # why: its own task
    assert math.isfinite(json.loads(xpmagic("knowledge", "--db", str(db_path), "--json").stdout)["rows"][0]["score"])
    study = shell.user_ns["xp"].study("wine-a")
    for trial, stars in ((0, 2), (1, 4), (2, 5)):  # the panel's stars, through the study handle
        study.rate(trial, stars)
    data = json.loads(xpmagic("recommend", "--experiment", "wine-a", "--db", str(db_path), "--json").stdout)
    assert data["ratings_learned"] == 3

"""Knowledge transfer: does accumulated knowledge make experiments cheaper? (benchmarks.md s.4)

Tasks (31): scikit-learn's bundled classification sets (and diabetes, its target split at the
median), real survey and economic data bundled with statsmodels made classification tasks,
and families of make_classification tasks whose generator settings define clusters of
similar tasks. Models (benchmarks/_models.py):
RBF SVC over log C in [1e-3, 1e3] and log gamma in [1e-4, 10]; HistGradientBoosting over
learning rate, max leaf nodes, min samples leaf and l2 regularization. Each task's 128 fixed
configurations (a Sobol sample) are pre-evaluated with 3-fold CV once and cached; trials are
then table look-ups (a proposed configuration scores as its nearest table configuration). A
live check trains SVCs for real through %%experiment --optimize on three tasks.

Methods (warm-start configurations count as trials): random search; cold TPE (default,
and with as many startup trials as the warm methods seed); the default configuration
first; a portfolio of configurations good across past tasks; configurations from random
past tasks; xpmagic's recommendations (its guide picks the first trials one at a time, each
after the results before it, as the study controller does; by default in the cell's space, and
with the narrowed space as --narrow does).
Every warm method gets the same number of knowledge-driven trials (N_WARM).
Splits: leave-one-task-out, and chronological growth (task i knows tasks 1..i-1).
--confirm N: a registered confirmation set of 20 tasks the guide was not developed on (README).
Reports normalized regret at 1/5/10/25/50 trials, median trials to reach within 0.5
points of the task's best, average rank, the share of tasks where warm starting made
things worse than cold TPE, and paired Wilcoxon tests; writes a plot.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import collections  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from _common import parser, table, write_json  # noqa: E402
from _models import MODELS, N_CONFIGS, SVC_MODEL, Model  # noqa: E402

from xpmagic.guide import KNOWLEDGE_TRIALS  # noqa: E402

CHECKPOINTS = (1, 5, 10, 25, 50)
N_WARM = KNOWLEDGE_TRIALS  # knowledge-driven trials for every warm method: xpmagic's default
DEFAULT_METHOD = "xpmagic"  # what --optimize does by default: knowledge-driven trials, the cell's own space


# -- tasks -------------------------------------------------------------------------------

def make_tasks() -> dict[str, tuple]:
    from sklearn import datasets

    tasks = {}
    for name, loader in (("iris", datasets.load_iris), ("wine", datasets.load_wine),
                         ("breast_cancer", datasets.load_breast_cancer), ("digits", datasets.load_digits)):
        X, y = loader(return_X_y=True)
        if len(X) > 1000:
            index = np.random.RandomState(0).choice(len(X), 1000, replace=False)
            X, y = X[index], y[index]
        tasks[name] = (X, y)
    tasks.update(statsmodels_tasks())
    X, y = datasets.load_diabetes(return_X_y=True)
    tasks["diabetes"] = (X, (y > np.median(y)).astype(int))  # disease progression above the median
    families = {  # generator settings define clusters of similar tasks
        "easy": dict(n_features=10, n_informative=5, class_sep=2.0, flip_y=0.01),
        "hard": dict(n_features=20, n_informative=4, class_sep=0.6, flip_y=0.1),
        "wide": dict(n_features=60, n_informative=10, class_sep=1.0, flip_y=0.03),
        "multi": dict(n_features=15, n_informative=8, class_sep=1.2, flip_y=0.02, n_classes=4),
        "noisy": dict(n_features=8, n_informative=3, class_sep=0.9, flip_y=0.25),
    }
    for family, settings in families.items():
        for variant in range(4):
            n = (300, 500, 800, 1000)[variant]
            X, y = datasets.make_classification(n_samples=n, random_state=100 + variant, **settings)
            tasks[f"{family}-{variant}"] = (X, y)
    return tasks


def confirmation_tasks(number: int) -> dict[str, tuple]:
    """A confirmation set (--confirm N): 20 tasks from five generator families in neither the
    development set nor an earlier confirmation set, four variants each, registered before any
    result on them was computed (benchmarks/README.md, "Confirmation sets"). A method is
    developed on the development set; a confirmation set is run once, and its result reported
    as it comes out."""
    return {1: _confirmation_set_1, 2: _confirmation_set_2}[number]()


def _confirmation_set_1() -> dict[str, tuple]:
    """Registered 2026-11-24 for the refining guide (commit 6b0ca1d)."""
    from sklearn import datasets

    tasks = {}
    for variant in range(4):
        n, seed = (300, 500, 800, 1000)[variant], 200 + variant
        noise = np.random.RandomState(seed).normal(size=(n, 3))  # three irrelevant features
        X, y = datasets.make_moons(n_samples=n, noise=0.3, random_state=seed)
        tasks[f"moons-{variant}"] = (np.hstack([X, noise]), y)
        X, y = datasets.make_circles(n_samples=n, noise=0.15, factor=0.5, random_state=seed)
        tasks[f"circles-{variant}"] = (np.hstack([X, noise]), y)
        X, y = datasets.make_gaussian_quantiles(n_samples=n, n_features=6, n_classes=3, random_state=seed)
        tasks[f"quantiles-{variant}"] = (X, y)
        X, y = datasets.make_classification(n_samples=n, n_features=40, n_informative=3, n_redundant=2,
                                            class_sep=1.0, flip_y=0.05, random_state=seed)
        tasks[f"sparse-{variant}"] = (X, y)
        X, y = datasets.make_classification(n_samples=n, n_features=12, n_informative=6, weights=[0.85],
                                            class_sep=1.0, flip_y=0.02, random_state=seed)
        tasks[f"imbalanced-{variant}"] = (X, y)
    return tasks


def _confirmation_set_2() -> dict[str, tuple]:
    """Registered 2026-11-24 for the guide of commit 897daf3 (frozen before set 1 existed)."""
    from sklearn import datasets

    tasks = {}
    for variant in range(4):
        n, seed = (300, 500, 800, 1000)[variant], 300 + variant
        X, y = datasets.make_hastie_10_2(n_samples=n, random_state=seed)
        tasks[f"hastie-{variant}"] = (X, (y > 0).astype(int))
        X, y = datasets.make_blobs(n_samples=n, centers=4, n_features=5, cluster_std=2.5, random_state=seed)
        tasks[f"blobs-{variant}"] = (X, y)
        X, y = datasets.make_friedman1(n_samples=n, n_features=10, noise=1.0, random_state=seed)
        tasks[f"friedman-{variant}"] = (X, (y > np.median(y)).astype(int))
        X, y = datasets.make_classification(n_samples=n, n_features=20, n_informative=2, n_redundant=10,
                                            n_clusters_per_class=1, class_sep=0.8, flip_y=0.05, random_state=seed)
        tasks[f"redundant-{variant}"] = (X, y)
        X, y = datasets.make_classification(n_samples=n, n_features=16, n_informative=8, n_classes=6,
                                            n_clusters_per_class=1, class_sep=1.5, flip_y=0.02, random_state=seed)
        tasks[f"manyclass-{variant}"] = (X, y)
    return tasks


def statsmodels_tasks() -> dict[str, tuple]:
    """Real survey and economic data bundled with statsmodels, each made a classification task
    (at most 2,000 rows, so a trial stays cheap)."""
    from statsmodels import datasets as sm

    def frame(module):
        return module.load_pandas().data

    anes, fair, mode = frame(sm.anes96), frame(sm.fair), frame(sm.modechoice)
    rand, star, grun = frame(sm.randhie), frame(sm.star98), frame(sm.grunfeld)
    share_above = star.NABOVE / (star.NABOVE + star.NBELOW)
    raw = {
        "anes96": (anes.drop(columns=["vote"]), anes.vote),  # voted Dole or Clinton
        "fair": (fair.drop(columns=["affairs"]), fair.affairs > 0),
        "modechoice": (mode.drop(columns=["choice", "individual"]), mode.choice),  # the travel mode taken
        "randhie": (rand.drop(columns=["mdvis"]), rand.mdvis > 0),  # any visit to a doctor
        "star98": (star.drop(columns=["NABOVE", "NBELOW"]), share_above > share_above.median()),
        "grunfeld": (grun[["invest", "value", "capital", "year"]], grun.firm),  # which firm
    }
    tasks = {}
    for name, (X, y) in raw.items():
        X, y = X.to_numpy(dtype=float), np.unique(np.asarray(y).astype(str), return_inverse=True)[1]
        if len(X) > 2000:
            index = np.random.RandomState(0).choice(len(X), 2000, replace=False)
            X, y = X[index], y[index]
        tasks[name] = (X, y)
    return tasks


def evaluate_table(tasks: dict[str, tuple], model: Model, configs: np.ndarray) -> dict[str, dict]:
    """Accuracy and fit time of every configuration on every task (cached on disk)."""
    stored: dict[str, dict] = {}
    if os.path.exists(model.cache):
        with open(model.cache) as handle:
            stored = {name: row for name, row in json.load(handle).items() if len(row["scores"]) == len(configs)}
    cached = {name: row for name, row in stored.items() if name in tasks}
    if set(cached) == set(tasks):
        return cached
    from joblib import Parallel, delayed
    from sklearn.model_selection import cross_val_score

    def one(X, y, coords):
        start = time.perf_counter()
        score = float(cross_val_score(model.build(model.to_config(coords)), X, y, cv=3).mean())
        return score, time.perf_counter() - start

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one process per core, not threads fighting over them
    result = dict(cached)  # only tasks new since the cache was written are evaluated
    for name, (X, y) in tasks.items():
        if name in result:
            continue
        started = time.perf_counter()
        pairs = Parallel(n_jobs=2)(delayed(one)(X, y, coords) for coords in configs)
        result[name] = {"scores": [p[0] for p in pairs], "costs": [p[1] for p in pairs]}
        print(f"  evaluated {model.key} on {name}: best {max(result[name]['scores']):.3f} "
              f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
        os.makedirs(os.path.dirname(model.cache), exist_ok=True)
        with open(model.cache, "w") as handle:  # after every task: an interrupted run keeps what it did
            json.dump({**stored, **result}, handle)
    return result


# -- one optimization run as table look-ups ---------------------------------------------------

def nearest(model: Model, configs: np.ndarray, point: list[float]) -> int:
    return int(np.argmin((((configs - point) / model.scale) ** 2).sum(axis=1)))


def run_method(model: Model, scores: list[float], configs: np.ndarray, warm: list[tuple[float, ...]], seed: int,
               trials: int, sampler: str, startup: int | None = None,
               space: list[tuple[float, float]] | None = None) -> list[float]:
    """Best score so far after each trial."""
    import optuna

    ranges = space or [(d.lo, d.hi) for d in model.dims]
    if sampler == "random":
        chosen = optuna.samplers.RandomSampler(seed=seed)
    else:
        kwargs = {} if startup is None else {"n_startup_trials": startup}
        chosen = optuna.samplers.TPESampler(seed=seed, **kwargs)
    study = optuna.create_study(direction="maximize", sampler=chosen)
    for coords in warm[:trials]:
        study.enqueue_trial({d.key: min(max(c, lo), hi) for d, c, (lo, hi) in zip(model.dims, coords, ranges)})
    best, curve = -math.inf, []
    for _ in range(trials):
        trial = study.ask()
        point = [trial.suggest_float(d.key, lo, hi) for d, (lo, hi) in zip(model.dims, ranges)]
        value = scores[nearest(model, configs, point)]
        study.tell(trial, value)
        best = max(best, value)
        curve.append(best)
    return curve


# -- baselines and xpmagic ----------------------------------------------------------------------

def normalized(table_: dict[str, dict], name: str) -> np.ndarray:
    s = np.array(table_[name]["scores"])
    return (s - s.min()) / (s.max() - s.min() or 1.0)


def portfolio(table_: dict[str, dict], past: list[str], k: int) -> list[int]:
    """Greedy: configurations with the best mean normalized score over past tasks, diverse."""
    matrix = np.array([normalized(table_, t) for t in past])
    chosen: list[int] = []
    covered = np.zeros(len(past))
    for _ in range(k):
        gains = [np.maximum(covered, matrix[:, i]).mean() if i not in chosen else -1 for i in range(matrix.shape[1])]
        best = int(np.argmax(gains))
        chosen.append(best)
        covered = np.maximum(covered, matrix[:, best])
    return chosen


def knowledge_store(store_path: str, model: Model, metas: dict, table_: dict, configs: np.ndarray,
                    past: list[str], ratings: dict[tuple[str, int], int] | None = None):
    """A fresh database whose knowledge table holds the past tasks' table rows (and, if given,
    a person's ratings of some of them, keyed by task and configuration index)."""
    from xpmagic.store import Store

    if os.path.exists(store_path):
        os.remove(store_path)
    store = Store(store_path)
    rows = [{"uid": f"{t}:{i}", "task": t, "task_name": t, "meta": metas[t], "model_family": model.family,
             "config": model.to_config(coords), "metric": "accuracy", "direction": "maximize",
             "score": table_[t]["scores"][i], "cost_s": table_[t]["costs"][i], "created_at": "bench",
             "origin": "benchmark", "rating": (ratings or {}).get((t, i))}
            for t in past for i, coords in enumerate(configs)]
    store.add_knowledge(rows)
    return store


def xpmagic_recommendation(store_path: str, model: Model, metas: dict, table_: dict, configs: np.ndarray,
                           target: str, past: list[str]):
    """Build a knowledge store of the past tasks' table rows and ask xpmagic's recommender:
    its guide (which picks the knowledge-driven trials as results come in) and narrowed space."""
    from xpmagic.recommend import recommend

    store = knowledge_store(store_path, model, metas, table_, configs, past)
    started = time.perf_counter()
    rec = recommend(store, meta=metas[target], specs=model.specs(), metric="accuracy", direction="maximize",
                    model_family=model.family, n_warm=N_WARM)
    elapsed = time.perf_counter() - started
    store.close()
    space = None
    if rec.space:
        space = [(d.coord(rec.space[d.name]["low"]), d.coord(rec.space[d.name]["high"])) if d.name in rec.space
                 else (d.lo, d.hi) for d in model.dims]
    return rec.guide, space, elapsed


def run_guided(model: Model, scores: list[float], configs: np.ndarray, guide, seed: int, trials: int,
               space: list[tuple[float, float]] | None = None) -> list[float]:
    """Like run_method, but the first N_WARM trials come from xpmagic's guide one at a time, each
    chosen after the results before it, and a pick outside the narrowed space widens it (as the
    study controller does), then TPE."""
    import optuna

    ranges = [list(r) for r in (space or [(d.lo, d.hi) for d in model.dims])]
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=N_WARM))
    observed: list[tuple[dict, float]] = []
    best, curve = -math.inf, []
    for number in range(trials):
        if number < N_WARM:
            picks = guide.plan(observed, 1, exclude=lambda c: any(c == o for o, _ in observed))
            if picks:
                coords = model.to_coords({**model.to_config(model.default), **picks[0].config})
                for bounds, c in zip(ranges, coords):
                    bounds[0], bounds[1] = min(bounds[0], c), max(bounds[1], c)
                study.enqueue_trial({d.key: c for d, c in zip(model.dims, coords)})
        trial = study.ask()
        point = [trial.suggest_float(d.key, lo, hi) for d, (lo, hi) in zip(model.dims, ranges)]
        value = scores[nearest(model, configs, point)]
        study.tell(trial, value)
        observed.append((model.to_config(point), value))
        best = max(best, value)
        curve.append(best)
    return curve


def regret(curve: list[float], scores: list[float]) -> list[float]:
    lo, hi = min(scores), max(scores)
    return [(hi - b) / (hi - lo or 1.0) for b in curve]


def trials_to_target(curve: list[float], scores: list[float]) -> int:
    target = max(scores) - 0.005
    for i, best in enumerate(curve):
        if best >= target:
            return i + 1
    return len(curve) + 1  # not reached within the budget


def evaluate(model: Model, table_: dict, configs: np.ndarray, metas: dict, targets: list[str],
             past_of: dict[str, list[str]], seeds: int, trials: int, folder: str) -> dict:
    """Curves of every method on every target task and seed."""
    methods = ["random", "tpe (cold)", f"tpe (cold, {N_WARM} startup)", "default first",
               "portfolio", "random past tasks", "xpmagic", "xpmagic + space (--narrow)"]
    curves: dict[str, dict[str, list[list[float]]]] = {m: {} for m in methods}
    timings, strengths = [], []
    default = model.default
    for target in targets:
        scores = table_[target]["scores"]
        past = past_of[target]
        rec_guide, rec_space, elapsed = xpmagic_recommendation(
            os.path.join(folder, "knowledge.db"), model, metas, table_, configs, target, past)
        timings.append(elapsed)
        strengths.append(rec_guide.adaptation.strength)
        folio = [tuple(configs[i]) for i in portfolio(table_, past, N_WARM)] if past else []
        for seed in range(seeds):
            rng = random.Random(seed)
            picks = rng.sample(past, min(N_WARM, len(past)))
            random_past = [tuple(configs[int(np.argmax(table_[t]["scores"]))]) for t in picks]
            runs = {
                "random": run_method(model, scores, configs, [], seed, trials, "random"),
                "tpe (cold)": run_method(model, scores, configs, [], seed, trials, "tpe"),
                f"tpe (cold, {N_WARM} startup)": run_method(model, scores, configs, [], seed, trials, "tpe", N_WARM),
                "default first": run_method(model, scores, configs, [default], seed, trials, "tpe", N_WARM),
                "portfolio": run_method(model, scores, configs, folio, seed, trials, "tpe", N_WARM),
                "random past tasks": run_method(model, scores, configs, random_past, seed, trials, "tpe", N_WARM),
                "xpmagic": run_guided(model, scores, configs, rec_guide, seed, trials),
                "xpmagic + space (--narrow)": run_guided(model, scores, configs, rec_guide, seed, trials, rec_space),
            }
            for method, curve in runs.items():
                curves[method].setdefault(target, []).append(curve)
    return {"curves": curves, "recommend_ms": [t * 1000 for t in timings], "strengths": strengths}


def summarize(table_: dict, results: dict, trials: int) -> tuple[list[tuple], dict]:
    curves = results["curves"]
    targets = list(next(iter(curves.values())))
    summary: dict[str, dict] = {}
    per_task_regret: dict[str, dict[int, list[float]]] = {}
    for method, by_task in curves.items():
        regrets = {k: [] for k in CHECKPOINTS if k <= trials}
        to_target = []
        per_task_regret[method] = {k: [] for k in regrets}
        for target, runs in by_task.items():
            scores = table_[target]["scores"]
            task_regrets = {k: [] for k in regrets}
            for curve in runs:
                r = regret(curve, scores)
                for k in regrets:
                    task_regrets[k].append(r[k - 1])
            # the task's own figure is the median over seeds; the goal is the median over tasks
            to_target.append(statistics.median(trials_to_target(curve, scores) for curve in runs))
            for k in regrets:
                mean = statistics.mean(task_regrets[k])
                regrets[k].append(mean)
                per_task_regret[method][k].append(mean)
        summary[method] = {"regret": {k: statistics.mean(v) for k, v in regrets.items()},
                           "median_trials_to_target": statistics.median(to_target)}
    # average rank at 10 trials, per task
    ranks = {m: [] for m in curves}
    for i in range(len(targets)):
        order = sorted(curves, key=lambda m: per_task_regret[m][10][i])
        for position, method in enumerate(order):
            ranks[method].append(position + 1)
    cold = per_task_regret["tpe (cold)"][10]
    rows = []
    for method, data in summary.items():
        worse = sum(1 for a, b in zip(per_task_regret[method][10], cold) if a > b + 1e-9) / len(cold)
        data["average_rank_at_10"] = statistics.mean(ranks[method])
        data["share_worse_than_cold_tpe_at_10"] = worse
        rows.append((method, *[f"{data['regret'][k]:.3f}" for k in data["regret"]],
                     f"{data['median_trials_to_target']:g}", f"{data['average_rank_at_10']:.2f}", f"{worse:.0%}"))
    return rows, {"summary": summary, "per_task_regret": per_task_regret, "targets": targets}


def wilcoxon_rows(per_task: dict) -> list[tuple]:
    from scipy.stats import wilcoxon

    rows = []
    for k in (5, 10):
        ours = per_task[DEFAULT_METHOD][k]
        for other in ("tpe (cold)", "portfolio", "random past tasks", "default first"):
            theirs = per_task[other][k]
            diffs = [a - b for a, b in zip(ours, theirs)]
            if all(abs(d) < 1e-12 for d in diffs):
                p = 1.0
            else:
                p = float(wilcoxon(ours, theirs, zero_method="zsplit").pvalue)
            better = sum(d < -1e-12 for d in diffs)
            worse = sum(d > 1e-12 for d in diffs)
            rows.append((f"xpmagic (default) vs {other} @{k}", f"{statistics.mean(ours):.3f}",
                         f"{statistics.mean(theirs):.3f}", f"{better}/{worse}/{len(diffs) - better - worse}",
                         f"{p:.3g}"))
    return rows


def cluster_rows(per_task: dict, targets: list[str]) -> list[tuple]:
    """Regret at 10 trials by task cluster (the make_classification family, or the real data sets):
    the default must never lose to cold TPE on a cluster by more than the noise across its tasks."""
    clusters: dict[str, list[int]] = {}
    for i, name in enumerate(targets):
        clusters.setdefault(name.split("-")[0] if "-" in name else "real data", []).append(i)
    rows = []
    for cluster, index in sorted(clusters.items()):
        ours = [per_task[DEFAULT_METHOD][10][i] for i in index]
        cold = [per_task["tpe (cold)"][10][i] for i in index]
        diffs = [a - b for a, b in zip(ours, cold)]
        noise = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
        verdict = "better" if statistics.mean(diffs) < -noise else "worse" if statistics.mean(diffs) > noise else "tie"
        rows.append((cluster, len(index), f"{statistics.mean(ours):.3f}", f"{statistics.mean(cold):.3f}",
                     f"{noise:.3f}", verdict))
    return rows


def growth(model: Model, table_: dict, configs: np.ndarray, metas: dict, seeds: int, trials: int,
           folder: str, orders: int = 48) -> list[tuple]:
    """Chronological growth: tasks arrive in random orders; task i knows tasks 1..i-1. Many
    orders, so every bucket holds every task about equally often (hard tasks landing late by
    chance would otherwise look like knowledge hurting)."""
    buckets: dict[str, list[float]] = {}
    names = sorted(table_)
    for order_seed in range(orders):
        order = names[:]
        random.Random(order_seed).shuffle(order)
        for i, target in enumerate(order[1:], start=1):
            past = order[:i]
            guide, _, _ = xpmagic_recommendation(os.path.join(folder, "growth.db"), model, metas, table_,
                                                configs, target, past)
            scores = table_[target]["scores"]
            for seed in range(seeds):
                curve = run_guided(model, scores, configs, guide, seed, min(trials, 10))
                bucket = "1-5" if i <= 5 else "6-10" if i <= 10 else "11-15" if i <= 15 else "16+"
                buckets.setdefault(bucket, []).append(regret(curve, scores)[4])
    return [(b, f"{statistics.mean(v):.3f}", len(v)) for b, v in sorted(
        buckets.items(), key=lambda kv: ["1-5", "6-10", "11-15", "16+"].index(kv[0]))]


def blend_rows(model: Model, table_: dict, configs: np.ndarray, metas: dict, seeds: int,
               folder: str) -> list[tuple]:
    """How the blend was decided: fixed shares of each task's vote that follow meta-feature
    similarity (0: every past task counts the same, a pure portfolio vote; 1: similarity only)
    against xpmagic's default, the share similarity has earned on the past tasks (guide.py),
    leave-one-task-out."""
    from xpmagic import similarity as similarity_module

    names, rows = sorted(table_), []
    earned = similarity_module.similarity_evidence
    try:
        for share in (0.0, 0.25, 0.5, 0.75, 1.0, None):
            if share is not None:
                similarity_module.similarity_evidence = (
                    lambda tasks, vectors, s=share: similarity_module.SimilarityEvidence(s, None, len(tasks)))
            else:
                similarity_module.similarity_evidence = earned
            at5, at10, shares = [], [], []
            for target in names:
                past = [t for t in names if t != target]
                guide, _, _ = xpmagic_recommendation(os.path.join(folder, "blend.db"), model, metas, table_,
                                                     configs, target, past)
                shares.append(guide.evidence.share)
                scores = table_[target]["scores"]
                for seed in range(seeds):
                    r = regret(run_guided(model, scores, configs, guide, seed, 10), scores)
                    at5.append(r[4])
                    at10.append(r[9])
            label = (f"{share:g}" if share is not None
                     else f"earned (default): {min(shares):.2f}-{max(shares):.2f}")
            rows.append((label, f"{statistics.mean(at5):.3f}", f"{statistics.mean(at10):.3f}"))
    finally:
        similarity_module.similarity_evidence = earned
    return rows


def oracle_vote(table_: dict, past: list[str], target: str, k: int, temperature: float = 0.05) -> list[int]:
    """Not a method: the portfolio vote with each past task weighted by how alike it and the target
    rank the table's configurations (Spearman), which needs the target's own table. An upper
    bound for any way of choosing which past tasks to listen to before the first result."""
    def ranks(name: str) -> np.ndarray:
        return np.argsort(np.argsort(table_[name]["scores"]))

    agreement = np.array([np.corrcoef(ranks(target), ranks(t))[0, 1] for t in past])
    weights = np.exp((agreement - agreement.max()) / temperature)
    matrix = np.array([normalized(table_, t) for t in past])
    chosen: list[int] = []
    covered = np.zeros(len(past))
    for _ in range(k):
        gains = (np.maximum(covered[:, None], matrix) * weights[:, None]).sum(axis=0)
        gains[chosen] = -1
        best = int(np.argmax(gains))
        chosen.append(best)
        covered = np.maximum(covered, matrix[:, best])
    return chosen


def oracle_rows(model: Model, table_: dict, configs: np.ndarray, seeds: int, trials: int,
                summary: dict) -> list[tuple]:
    """The oracle vote (then TPE) next to xpmagic and the portfolio: how much any similarity could add."""
    names = sorted(table_)
    at5, at10, to_target = [], [], []
    for target in names:
        scores = table_[target]["scores"]
        warm = [tuple(configs[i]) for i in oracle_vote(table_, [t for t in names if t != target], target, N_WARM)]
        task_to_target = []
        for seed in range(seeds):
            curve = run_method(model, scores, configs, warm, seed, trials, "tpe", N_WARM)
            r = regret(curve, scores)
            at5.append(r[4])
            at10.append(r[9])
            task_to_target.append(trials_to_target(curve, scores))
        to_target.append(statistics.median(task_to_target))
    rows = [(m, f"{summary[m]['regret'][5]:.3f}", f"{summary[m]['regret'][10]:.3f}",
             f"{summary[m]['median_trials_to_target']:g}") for m in ("portfolio", DEFAULT_METHOD, "tpe (cold)")]
    rows.append(("oracle vote (not a method)", f"{statistics.mean(at5):.3f}", f"{statistics.mean(at10):.3f}",
                 f"{statistics.median(to_target):g}"))
    return rows


def ceiling_rows(model: Model, table_: dict, configs: np.ndarray, metas: dict, folder: str) -> list[tuple]:
    """Regret at 5 and 10 trials over every task (each knowing all the others) of the portfolio, the
    oracle vote and xpmagic's guide, with paired tests against the portfolio. The first 10 trials of
    all three are the same for every seed, so one seed suffices. Not a test of xpmagic (the guide
    was developed on these tasks): it shows how far any choice of past tasks could go."""
    from scipy.stats import wilcoxon

    names = sorted(table_)
    picked: dict[str, dict[int, list[float]]] = {m: {5: [], 10: []} for m in ("portfolio", "oracle", "xpmagic")}
    for target in names:
        past = [t for t in names if t != target]
        scores = table_[target]["scores"]
        guide, _, _ = xpmagic_recommendation(os.path.join(folder, "ceiling.db"), model, metas, table_, configs,
                                             target, past)
        curves = {"portfolio": run_method(model, scores, configs,
                                          [tuple(configs[i]) for i in portfolio(table_, past, N_WARM)], 0,
                                          N_WARM, "tpe", N_WARM),
                  "oracle": run_method(model, scores, configs,
                                       [tuple(configs[i]) for i in oracle_vote(table_, past, target, N_WARM)], 0,
                                       N_WARM, "tpe", N_WARM),
                  "xpmagic": run_guided(model, scores, configs, guide, 0, N_WARM)}
        for method, curve in curves.items():
            for k in (5, 10):
                picked[method][k].append(regret(curve, scores)[k - 1])
    rows = []
    for method, label in (("oracle", "oracle vote (reads the target's table)"), ("xpmagic", "xpmagic (default)")):
        for k in (5, 10):
            ours, theirs = picked[method][k], picked["portfolio"][k]
            diffs = [a - b for a, b in zip(ours, theirs)]
            tied = all(abs(d) < 1e-12 for d in diffs)
            p = 1.0 if tied else float(wilcoxon(ours, theirs, zero_method="zsplit").pvalue)
            better, worse = sum(d < -1e-12 for d in diffs), sum(d > 1e-12 for d in diffs)
            rows.append((f"{label} @{k}", f"{statistics.mean(ours):.4f}", f"{statistics.mean(theirs):.4f}",
                         f"{better}/{worse}/{len(diffs) - better - worse}", f"{p:.2g}"))
    return rows


def person_who_needs_speed(table_: dict, task: str, top: int = 10) -> dict[tuple[str, int], int]:
    """A simulated person rates a task's `top` best configurations: 5 stars when the fit is at
    most the median fit time of those configurations, 1 star when slower."""
    scores, costs = np.array(table_[task]["scores"]), np.array(table_[task]["costs"])
    best = [int(i) for i in np.argsort(-scores, kind="stable")[:top]]
    limit = float(np.median(costs[best]))
    return {(task, i): (5 if costs[i] <= limit else 1) for i in best}


def ratings_check(model: Model, table_: dict, configs: np.ndarray, metas: dict, folder: str) -> list[tuple]:
    """Does the learned rating weight carry a person's preference to tasks they never rated?
    Leave-one-task-out; the person rated every other past task (the rest stay unrated). Per
    method: how many warm starts the person would rate 1 star on the target, their relative fit
    time, and the regret of the best warm start (what the preference costs in accuracy)."""
    from xpmagic.recommend import recommend

    names = sorted(table_)
    variants = {"no ratings": (False, False), "ratings as a filter (1-2 stars never)": (True, False),
                "filter + learned weight (default)": (True, True)}
    found: dict[str, dict[str, list[float]]] = {v: {"slow": [], "cost": [], "regret": []} for v in variants}
    for target in names:
        past = [t for t in names if t != target]
        rated = {k: v for t in past[::2] for k, v in person_who_needs_speed(table_, t).items()}
        verdict = person_who_needs_speed(table_, target)
        scores, costs = np.array(table_[target]["scores"]), np.array(table_[target]["costs"])
        median_cost = float(np.median(costs[[i for _, i in verdict]]))
        for variant, (use_ratings, learn) in variants.items():
            store = knowledge_store(os.path.join(folder, "ratings.db"), model, metas, table_, configs, past,
                                    rated if use_ratings else None)
            rec = recommend(store, meta=metas[target], specs=model.specs(), metric="accuracy",
                            direction="maximize", model_family=model.family, n_warm=N_WARM,
                            learn_ratings=learn)
            store.close()
            picks = [nearest(model, configs, list(model.to_coords({**model.to_config(model.default), **c})))
                     for c in rec.warm_start]
            found[variant]["slow"].append(sum(costs[i] > median_cost for i in picks) / max(1, len(picks)))
            found[variant]["cost"].append(float(np.mean([costs[i] / median_cost for i in picks])))
            found[variant]["regret"].append(regret([max(scores[i] for i in picks)], list(scores))[0])
    return [(v, f"{statistics.mean(d['slow']):.0%}", f"{statistics.median(d['cost']):.2f}x",
             f"{statistics.mean(d['regret']):.3f}") for v, d in found.items()]


LIVE_TARGETS = ("wine", "hard-1", "multi-2")
LIVE_BODY = ("from sklearn.model_selection import cross_val_score\n"
             "from sklearn.pipeline import make_pipeline\n"
             "from sklearn.preprocessing import StandardScaler\n"
             "from sklearn.svm import SVC\n"
             "C = xp.param('C', 1.0, low=1e-3, high=1e3, log=True)\n"
             "gamma = xp.param('gamma', 0.01, low=1e-4, high=10.0, log=True)\n"
             "xp.dataset(Xt, yt, name={target!r})\n"
             "model = make_pipeline(StandardScaler(), SVC(C=C, gamma=gamma))\n"
             "xp.log(accuracy=float(cross_val_score(model, Xt, yt, cv=3).mean()))\n")


def live_check(tasks: dict, table_: dict, configs: np.ndarray, metas: dict, seeds: int, trials: int,
               folder: str) -> list[tuple]:
    """Real training through %%experiment --optimize on a few tasks, with and without the
    recommendations, each with a knowledge table of the other tasks only: do the table
    results carry over to the real tool?"""
    from _common import quiet, shell_with_xpmagic

    shell = shell_with_xpmagic(os.path.join(folder, "live-start.db"))
    names = sorted(tasks)
    results: dict[str, dict[int, list[float]]] = {"cold TPE (--no-recommend)": {}, "xpmagic (default)": {}}
    engaged = 0
    for target in LIVE_TARGETS:
        scores = table_[target]["scores"]
        shell.user_ns["Xt"], shell.user_ns["yt"] = tasks[target]
        for seed in range(seeds):
            for method, flag in (("cold TPE (--no-recommend)", "--no-recommend"), ("xpmagic (default)", "")):
                db = os.path.join(folder, f"live-{target}-{seed}-{bool(flag)}.db")
                knowledge_store(db, SVC_MODEL, metas, table_, configs, [t for t in names if t != target]).close()
                name = f"live-{target}"
                with quiet():
                    shell.run_line_magic("config", f"XPMagics.db_path = {db!r}")
                    shell.run_cell(f"%%experiment {name} --optimize accuracy --trials {trials} --seed {seed} "
                                   f"{flag}\n{LIVE_BODY.format(target=target)}")
                    study = shell.user_ns["xp"].study(name)
                    study.wait(600)
                controller = study.controller
                if flag == "" and controller.recommendation is not None and not controller.recommendation.empty:
                    engaged += 1
                values = [t.value for t in sorted(controller.trials, key=lambda t: t.number) if t.value is not None]
                best = list(np.maximum.accumulate(values))
                curve = regret(best, scores)
                for k in (5, 10):
                    if k <= len(curve):
                        results[method].setdefault(k, []).append(curve[k - 1])
    rows = [(method, *[f"{statistics.mean(by_k[k]):.3f}" for k in (5, 10) if k in by_k], len(by_k.get(5, [])))
            for method, by_k in results.items()]
    print(f"(recommendations engaged in {engaged} of {len(LIVE_TARGETS) * seeds} warm runs)", file=sys.stderr)
    return rows


def plot(summary: dict, growth_rows: list[tuple], path: str, trials: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for method, data in summary["summary"].items():
        ks = sorted(data["regret"])
        left.plot(ks, [data["regret"][k] for k in ks], marker="o", label=method,
                  linewidth=2.5 if method.startswith("xpmagic") else 1.2)
    left.set_xscale("log")
    left.set_xlabel("trials")
    left.set_ylabel("mean normalized regret (leave-one-task-out)")
    left.legend(fontsize=8)
    right.plot([r[0] for r in growth_rows], [float(r[1]) for r in growth_rows], marker="o")
    right.set_xlabel("past tasks in the knowledge table")
    right.set_ylabel("regret at 5 trials (xpmagic default)")
    fig.tight_layout()
    fig.savefig(path)


def report_model(model: Model, tasks: dict, table_: dict, configs: np.ndarray, metas: dict, seeds: int,
                 trials: int, folder: str, plot_path: str) -> dict:
    names = sorted(tasks)
    past_of = {t: [o for o in names if o != t] for t in names}  # leave-one-task-out
    started = time.perf_counter()
    results = evaluate(model, table_, configs, metas, names, past_of, seeds, trials, folder)
    rows, summary = summarize(table_, results, trials)
    ks = [k for k in CHECKPOINTS if k <= trials]
    print(f"\n== {model.family}: {', '.join(d.name for d in model.dims)} ==")
    print(f"Leave-one-task-out, {len(names)} tasks x {seeds} seeds, {trials} trials "
          f"({time.perf_counter() - started:.0f} s); regret is normalized per task (0 = the task's best)")
    print(table(rows, ("method", *[f"regret@{k}" for k in ks], "median trials to target (over tasks)",
                       "avg rank@10", "worse than cold TPE@10")))
    tests = wilcoxon_rows(summary["per_task_regret"])
    print("\nPaired Wilcoxon tests over tasks (mean regret; tasks where xpmagic is better / worse / tied, "
          "tied: the same best score so far; p-value)")
    print(table(tests, ("comparison", "xpmagic", "other", "better/worse/tied", "p")))
    clusters = cluster_rows(summary["per_task_regret"], summary["targets"])
    print("\nBy task cluster, regret at 10 trials (noise: standard error of the per-task differences)")
    print(table(clusters, ("cluster", "tasks", "xpmagic (default)", "tpe (cold)", "noise", "xpmagic is")))
    oracle = oracle_rows(model, table_, configs, max(2, seeds // 4), trials, summary["summary"])
    print("\nHow much could similarity add? The vote weighted by each past task's true ranking agreement "
          "with the target (read from the target's own table: no real method can)")
    print(table(oracle, ("method", "regret@5", "regret@10", "median trials to target (over tasks)")))
    # The first trials are the guide's picks, the same for every seed: task orders are what varies.
    orders = 48 if seeds >= 20 else 8
    growth_rows = growth(model, table_, configs, metas, 1, trials, folder, orders=orders)
    print(f"\nChronological growth: regret at 5 trials by the number of past tasks known ({orders} task orders)")
    print(table(growth_rows, ("past tasks", "regret@5", "runs")))
    blend = blend_rows(model, table_, configs, metas, max(2, seeds // 4), folder)
    print("\nThe blend: share of each past task's vote that follows similarity (the rest is equal for all)")
    print(table(blend, ("similarity share", "regret@5", "regret@10")))
    rating_rows = ratings_check(model, table_, configs, metas, folder)
    print("\nRatings: a simulated person who needs fast models rated half the past tasks' top 10 "
          "(5 stars: at most their median fit time, else 1); warm starts on the other task")
    print(table(rating_rows, ("recommender", "warm starts slower than the person accepts",
                              "median fit time vs accepted", "regret of best warm start")))
    chosen = collections.Counter(results["strengths"])
    print("\nHow strongly the first results re-weight past tasks (adaptation.py: chosen by replaying the guide on "
          "the past tasks): " + ", ".join(f"strength {s:g} for {n} targets" for s, n in sorted(chosen.items())))
    rec_ms = results["recommend_ms"]
    print(f"\nrecommendation time: median {statistics.median(rec_ms):.1f} ms "
          f"(knowledge of {len(names) - 1} tasks x {N_CONFIGS} rows)")
    cold = summary["summary"]["tpe (cold)"]["median_trials_to_target"]
    ours = summary["summary"][DEFAULT_METHOD]["median_trials_to_target"]
    print(f"median trials to target: xpmagic's default (knowledge-driven trials, then TPE) {ours:g} vs cold TPE "
          f"{cold:g} ({'at most half' if ours <= cold / 2 else 'NOT at most half'})")
    plot(summary, growth_rows, plot_path, trials)
    print(f"plot: {plot_path}")
    return {"summary": summary["summary"], "wilcoxon": tests, "clusters": clusters, "oracle": oracle,
            "growth": growth_rows, "blend": blend, "ratings": rating_rows, "recommend_ms": rec_ms,
            "strengths": dict(chosen)}


def report_confirmation(model: Model, tasks: dict, confirm: list[str], table_: dict, configs: np.ndarray,
                        metas: dict, seeds: int, trials: int, folder: str) -> dict:
    """The registered test: the confirmation tasks as targets, each knowing every other task."""
    names = sorted(tasks)
    past_of = {t: [o for o in names if o != t] for t in confirm}
    results = evaluate(model, table_, configs, metas, sorted(confirm), past_of, seeds, trials, folder)
    rows, summary = summarize(table_, results, trials)
    ks = [k for k in CHECKPOINTS if k <= trials]
    print(f"\n== {model.family}, confirmation set: {len(confirm)} target tasks x {seeds} seeds, {trials} trials, "
          f"knowledge of the other {len(names) - 1} tasks ==")
    print(table(rows, ("method", *[f"regret@{k}" for k in ks], "median trials to target (over tasks)",
                       "avg rank@10", "worse than cold TPE@10")))
    tests = wilcoxon_rows(summary["per_task_regret"])
    print("\nPaired Wilcoxon tests over the confirmation tasks (better / worse / tied; p-value)")
    print(table(tests, ("comparison", "xpmagic", "other", "better/worse/tied", "p")))
    clusters = cluster_rows(summary["per_task_regret"], summary["targets"])
    print(table(clusters, ("cluster", "tasks", "xpmagic (default)", "tpe (cold)", "noise", "xpmagic is")))
    return {"summary": summary["summary"], "wilcoxon": tests, "clusters": clusters,
            "per_task_regret": summary["per_task_regret"], "targets": summary["targets"]}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--plot", default=os.path.join(_HERE, "transfer.png"), help="where to write the figure")
    p.add_argument("--model", default="all", choices=["all", *MODELS], help="which model family (default: all)")
    p.add_argument("--table-only", action="store_true", help="only build the cached tables of scores")
    p.add_argument("--confirm", type=int, choices=[1, 2], metavar="N",
                   help="registered confirmation test N (1 or 2): its 20 tasks as targets, knowing every other task "
                        "of the development set and confirmation sets 1..N")
    p.add_argument("--ceiling", action="store_true",
                   help="every task so far (development set and confirmation sets 1-2) as a target: the portfolio, "
                        "the oracle vote and xpmagic at 5 and 10 trials (not a test: all of them have been seen)")
    args = p.parse_args()
    seeds, trials = (5, 25) if args.quick else (20, 50)
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    from xpmagic.metafeatures import meta_features

    tasks = make_tasks()
    confirm = confirmation_tasks(args.confirm) if args.confirm else {}
    if confirm or args.ceiling:
        for number in range(1, (args.confirm or 2) + 1):  # what the registered test knows: the sets before it too
            tasks.update(confirmation_tasks(number))
    models = list(MODELS.values()) if args.model == "all" else [MODELS[args.model]]
    tables = {}
    for model in models:
        configs = model.configurations()
        print(f"{model.family}: {len(tasks)} tasks x {N_CONFIGS} configurations (3-fold CV, cached in "
              f"{model.cache})", file=sys.stderr)
        tables[model.key] = (configs, evaluate_table(tasks, model, configs))
    if args.table_only:
        return
    metas = {name: meta_features(X, y) for name, (X, y) in tasks.items()}
    folder = tempfile.mkdtemp(prefix="xpmagic-transfer-")
    figures: dict = {"seeds": seeds, "trials": trials, "tasks": sorted(tasks)}
    if args.ceiling:
        for model in models:
            configs, table_ = tables[model.key]
            rows = ceiling_rows(model, table_, configs, metas, folder)
            print(f"\n== {model.family}: all {len(tasks)} tasks as targets, each knowing the others; "
                  "mean regret vs the portfolio ==")
            print(table(rows, ("method", "mean regret", "portfolio", "better/worse/tied", "p")))
            figures[model.key] = {"ceiling": rows}
        write_json(args.json, figures)
        return
    if confirm:
        for model in models:
            configs, table_ = tables[model.key]
            figures[model.key] = report_confirmation(model, tasks, sorted(confirm), table_, configs, metas, seeds,
                                                     trials, folder)
        write_json(args.json, figures)
        return
    for model in models:
        configs, table_ = tables[model.key]
        root, ext = os.path.splitext(args.plot)
        plot_path = args.plot if model.key == "svc" else f"{root}_{model.key}{ext}"
        figures[model.key] = report_model(model, tasks, table_, configs, metas, seeds, trials, folder, plot_path)
    if "svc" in tables:
        configs, table_ = tables["svc"]
        live_rows = live_check(tasks, table_, configs, metas, 1 if args.quick else 3, 10, folder)
        print(f"\nLive check: real training through %%experiment --optimize on {', '.join(LIVE_TARGETS)} "
              "(SVC; regret normalized by the task's table range; knowledge of the other tasks only)")
        print(table(live_rows, ("method", "regret@5", "regret@10", "runs")))
        figures["live"] = live_rows
    write_json(args.json, figures)


if __name__ == "__main__":
    main()

"""Recommendations for a new optimization, with the reasons behind them.

From the knowledge table: the first trials, chosen by a weighted vote of past tasks
(guide.py: similar tasks count more, every task counts some, so generally good
configurations are in the mix; the vote is re-weighted as this task's results come
in); a narrowed search space around the closest tasks' good regions (never excluding
the default); a sampler; the expected score range; a budget. Deterministic: ties are
broken by the order rows were recorded.
"""

from __future__ import annotations

import ast
import json
import math
import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from . import guide, ratings, similarity
from .knowledge import constructed_model_family
from .metafeatures import explain_distance, similarity_vector
from .records import ParamSpec, param_value
from .store import Store


@dataclass
class Recommendation:
    warm_start: list[dict[str, Any]] = field(default_factory=list)
    warm_start_reasons: list[str] = field(default_factory=list)
    space: dict[str, dict[str, Any]] = field(default_factory=dict)  # param -> {low, high, log}
    space_reasons: list[str] = field(default_factory=list)
    sampler: str = "tpe"
    sampler_reason: str = ""
    expected_range: tuple[float, float] | None = None
    budget: int | None = None
    budget_reason: str = ""
    similar_tasks: list[dict[str, Any]] = field(default_factory=list)
    similarity_share: float | None = None  # of the first trials' vote (guide.py); None: no guide
    similarity_reason: str = ""
    adaptation_strength: float | None = None  # how strongly this task's results re-weight past tasks (adaptation.py)
    adaptation_reason: str = ""
    ratings_learned: int = 0  # ratings the learned weight came from (0: no rating model)
    # Chooses the knowledge-driven trials as results come in (not part of the record).
    guide: Any = field(default=None, repr=False, compare=False)

    @property
    def empty(self) -> bool:
        return not self.warm_start and not self.space

    def to_dict(self) -> dict[str, Any]:
        data = asdict(replace(self, guide=None))
        del data["guide"]
        data["expected_range"] = list(self.expected_range) if self.expected_range else None
        return data

    def __repr__(self) -> str:
        if self.empty:
            return "no recommendation: the knowledge table has nothing on this model family and metric yet"
        lines = ["warm-start configurations (the first trials; those not yet run are re-chosen as results come in):"]
        lines += [f"  {c}  ({r})" for c, r in zip(self.warm_start, self.warm_start_reasons)]
        lines += [f"  ({reason})" for reason in (self.similarity_reason, self.adaptation_reason) if reason]
        if self.space:
            lines.append("narrowed space (offered; --narrow or Apply searches only it):")
            lines += [f"  {name}: [{s['low']:.4g}, {s['high']:.4g}]" + (" log" if s.get("log") else "")
                      for name, s in self.space.items()]
            lines += [f"  ({r})" for r in self.space_reasons]
        lines.append(f"sampler: {self.sampler} ({self.sampler_reason})")
        if self.expected_range:
            lines.append(f"expected score: {self.expected_range[0]:.4g} to {self.expected_range[1]:.4g}")
        if self.budget:
            lines.append(f"budget: {self.budget} trials ({self.budget_reason})")
        if self.ratings_learned:
            lines.append(f"ratings: learned from your {self.ratings_learned} ratings of this model family")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        return f"<pre>{escape(repr(self))}</pre>"


def families_in_code(source: str, known: set[str]) -> list[str]:
    """Model families the cell constructs (calls like SVC(...)), among those the knowledge knows."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    called = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name in known and name not in called:
                called.append(name)
    return called


def _clip(value: Any, spec: ParamSpec) -> Any:
    if spec.choices is not None:
        value = param_value(value)  # a tuple choice comes back from the knowledge table's JSON as a list
        return value if value in spec.choices else None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or spec.low is None:
        return None
    clipped = min(max(value, spec.low), spec.high)
    return int(round(clipped)) if isinstance(spec.value, int) and not isinstance(spec.value, bool) else clipped


BEST_ROWS = 5  # of each task's summary: its best configurations


def _nearest_tasks(summaries: dict[str, Any], meta: dict[str, Any], count: int) -> list[tuple[str, dict[str, Any]]]:
    """The ``count`` tasks closest to ``meta`` that have a usable row (configurations rated 1-2
    stars are left out), nearest first, as (task, {name, meta, rows, distance})."""
    target = similarity_vector(meta)  # once: a large table has thousands of tasks to compare
    by_distance = sorted((math.dist(target, similarity_vector(s.meta)), task) for task, s in summaries.items())
    ranked = []
    for dist, task in by_distance:
        summary = summaries[task]
        rows = [r for r in summary.best(BEST_ROWS) if r["rating"] is None or r["rating"] > 2]
        if rows:
            ranked.append((task, {"name": summary.name, "meta": summary.meta, "rows": rows, "distance": dist}))
            if len(ranked) == count:
                break
    return ranked


def recommend(store: Store, *, meta: dict[str, Any], specs: dict[str, ParamSpec], metric: str,
              direction: str, model_family: str | None, n_similar: int = 3, n_warm: int = guide.KNOWLEDGE_TRIALS,
              exclude_task: str | None = None, learn_ratings: bool = True) -> Recommendation:
    """``n_warm`` knowledge-driven first trials (guide.py: similar tasks and a portfolio of
    generally good configurations in one weighted vote, re-weighted as results come in), a
    narrowed space around the closest tasks' good regions, and the rest. With enough ratings,
    a learned weight (ratings.py) ranks candidates by predicted stars as well as score."""
    summaries = {s.task: s for s in store.task_summaries(model_family, metric, direction) if s.task != exclude_task}
    ranked = _nearest_tasks(summaries, meta, max(GUIDE_TASKS, n_similar))
    rec = Recommendation()
    if not ranked:
        return rec
    nearest = ranked[:n_similar]
    rec.similar_tasks = [{"task": t, "name": info["name"], "distance": round(info["distance"], 4),
                          "why": explain_distance(meta, info["meta"]), "best_score": info["rows"][0]["score"]}
                         for t, info in nearest]
    searchable = {n: s for n, s in specs.items() if s.choices is not None or s.low is not None}
    rated = [r for r in store.rated_rows(model_family, metric, direction) if r["task"] != exclude_task]
    # The tasks whose ranges and costs the ratings model reads: the voters' and the rated rows'.
    read = {task for task, _ in ranked[:GUIDE_TASKS]} | {r["task"] for r in rated}
    rows = [row for task in sorted(read) if task in summaries for row in summaries[task].best(BEST_ROWS)]
    model = ratings.learn(rated, ratings.context_for(rows, rated, searchable, direction)) if learn_ratings else None
    rec.ratings_learned = model.n if model else 0
    rec.guide = _guide(store, ranked[:GUIDE_TASKS], meta, searchable, metric, direction, model_family, model)
    if rec.guide is not None:
        rec.similarity_share = rec.guide.evidence.share
        rec.similarity_reason = rec.guide.evidence.reason
        rec.adaptation_strength = rec.guide.adaptation.strength
        rec.adaptation_reason = rec.guide.adaptation.reason
    for pick in rec.guide.plan([], n_warm) if rec.guide is not None else []:
        rec.warm_start.append(pick.config)
        rec.warm_start_reasons.append(pick.reason + _rating_note(pick.candidate.row, model))
    # narrow around tasks about as close as the nearest one, not every one of the k
    closest = nearest[0][1]["distance"]
    close = [(t, info) for t, info in nearest if info["distance"] <= closest + 1.0]
    rec.space, rec.space_reasons = _narrowed(close, searchable)
    best_scores = [info["rows"][0]["score"] for _, info in nearest]
    rec.expected_range = (min(best_scores), max(best_scores))
    rec.sampler = "tpe"
    rec.sampler_reason = (f"TPE, modelling the results from trial {len(rec.warm_start) + 1} on: the "
                          f"{len(rec.warm_start)} knowledge-driven trials replace its random startup trials"
                          if rec.warm_start else "TPE is a robust default for mixed spaces")
    rec.budget, rec.budget_reason = _budget(nearest)
    return rec


GUIDE_TASKS = 30  # the nearest tasks vote (bounded work with a large table)
# Rows per task the guide looks at, best first. Its poor rows too: a task that predicts a result
# poor must say how poor, or it cannot be told apart from one that predicts it well (transfer.py).
GUIDE_ROWS = 128
RECENT_RUNS = 50  # runs of an experiment searched for the data set its recommendations describe


def _guide(store: Store, ranked: list, meta: dict[str, Any], specs: dict[str, ParamSpec], metric: str,
           direction: str, family: str | None, model: ratings.RatingModel | None) -> guide.KnowledgeGuide | None:
    """Past tasks with their best rows in the unit cube; candidates are each task's top three.
    None when no past configuration fits this search space (other parameter names, say)."""
    past: list[guide.PastTask] = []
    vectors: list[list[float]] = []
    candidates: list[guide.Candidate] = []
    for task, info in ranked:
        lo, hi = info["rows"][0].get("task_min"), info["rows"][0].get("task_max")
        rows = store.task_rows(family, metric, direction, task, GUIDE_ROWS)
        points, fits = guide.unit_points([r["config"] for r in rows], specs)
        if not fits.any():
            continue
        rows = [r for r, fit in zip(rows, fits) if fit]
        past.append(guide.PastTask(info["name"] or task[:8], info["distance"], points[fits],
                                   np.array([_share(r["score"], lo, hi, direction) for r in rows])))
        vectors.append(similarity_vector(info["meta"]))
        for row in rows[:guide.CANDIDATES_PER_TASK]:
            config = _usable(row["config"], specs)
            known = next((c for c in candidates if c.config == config), None)
            if known is not None:
                known.sources.append(len(past) - 1)
                continue
            row = {**row, "task": task, "task_min": lo, "task_max": hi}
            candidates.append(guide.Candidate(config, info["name"] or task[:8],
                                              model.weight(row) if model else 1.0, row, [len(past) - 1]))
    if not past or not candidates:
        return None
    # Equal gains go to the same configuration whichever task brought it (the replay relies on it).
    candidates.sort(key=lambda c: json.dumps(c.config, sort_keys=True, default=str))
    return guide.KnowledgeGuide(past, candidates, specs, direction, similarity.similarity_evidence(past, vectors),
                                np.array(vectors))


def _usable(config: dict[str, Any], specs: dict[str, ParamSpec]) -> dict[str, Any] | None:
    """The configuration within this search space (clipped to its bounds), or None if nothing fits."""
    clipped = {n: _clip(config.get(n), s) for n, s in specs.items() if n in config}
    return {k: v for k, v in clipped.items() if v is not None} or None


def _share(score: float, lo: float | None, hi: float | None, direction: str) -> float:
    if lo is None or hi is None or hi == lo:
        return 1.0
    share = (score - lo) / (hi - lo)
    return share if direction == "maximize" else 1.0 - share


def _rating_note(row: dict[str, Any] | None, model: ratings.RatingModel | None) -> str:
    if row is None:
        return ""
    if row.get("rating") is not None:
        return f"; you rated it {row['rating']}/5"
    return f"; your ratings predict {model.predicted_stars(row):.1f}/5" if model is not None else ""


def _oriented(score: float, direction: str) -> float:
    return score if direction == "maximize" else -score


def _narrowed(nearest: list, specs: dict[str, ParamSpec]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    space, reasons = {}, []
    for name, spec in specs.items():
        if spec.choices is not None or spec.low is None:
            continue
        values = [r["config"][name] for _, info in nearest for i, r in enumerate(info["rows"][:3])
                  if isinstance(r["config"].get(name), (int, float)) and (i == 0 or _good(r))]
        if not values:
            continue
        default = spec.value if isinstance(spec.value, (int, float)) else None
        points = values + ([default] if default is not None else [])
        if spec.log and min(points) > 0:
            low, high = min(points) / 3, max(points) * 3
        else:
            margin = 0.1 * (spec.high - spec.low)
            low, high = min(points) - margin, max(points) + margin
        low, high = max(low, spec.low), min(high, spec.high)
        width = (lambda a, b: math.log(b / a)) if spec.log and spec.low > 0 else (lambda a, b: b - a)
        if low < high and width(low, high) < 0.9 * width(spec.low, spec.high):
            space[name] = {"low": low, "high": high, "log": spec.log}
    if space:
        reasons.append(f"around the top configurations of the {len(nearest)} closest tasks, "
                       "widened 3x (log) or by 10% of the range, always including the default")
    return space, reasons


def _good(row: dict[str, Any]) -> bool:
    """In the top quarter of its task's score range (direction already applied by rank)."""
    lo, hi = row.get("task_min"), row.get("task_max")
    if lo is None or hi is None or hi == lo:
        return True
    share = (row["score"] - lo) / (hi - lo)
    return share >= 0.75 or share <= 0.25 and row["score"] == lo  # minimizing: low is good


def _budget(nearest: list) -> tuple[int | None, str]:
    found = [r["trial_number"] + 1 for _, info in nearest for r in info["rows"][:1]
             if r["trial_number"] is not None]
    if not found:
        return None, ""
    budget = max(10, int(math.ceil(2 * statistics.median(found))))
    when = statistics.median(found)
    return budget, (f"the best trial came at a median of {when:g} trial{'' if when == 1 else 's'} on similar"
                    " tasks; twice that leaves room")


# -- what a new optimization or experiment is about -------------------------------------------

def dataset_args(source: str) -> list[str]:
    """Names passed to xp.dataset(...) in a cell, e.g. ['X', 'y']."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "dataset"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "xp"):
            names = [a.id for a in node.args[:2] if isinstance(a, ast.Name)]
            names += [k.value.id for k in node.keywords if k.arg in ("X", "y") and isinstance(k.value, ast.Name)]
            return names
    return []


def task_meta_from_namespace(source: str, namespace: dict[str, Any]) -> dict[str, Any] | None:
    """Meta-features of the data the cell will pass to xp.dataset, read from the namespace."""
    from .metafeatures import meta_features

    names = dataset_args(source)
    if len(names) < 2 or any(n not in namespace for n in names[:2]):
        return None
    try:
        return meta_features(namespace[names[0]], namespace[names[1]])
    except Exception:
        return None


def for_cell(store: Store, *, source: str, namespace: dict[str, Any], specs: dict[str, ParamSpec],
             metric: str, direction: str) -> Recommendation:
    """Recommendations for an optimization cell about to start (empty when nothing fits)."""
    families = families_in_code(source, set(store.knowledge_families()))
    meta = task_meta_from_namespace(source, namespace)
    if meta is None:
        return Recommendation()
    # The class the cell constructs, through aliases (HGB for HistGradientBoostingClassifier)
    family = constructed_model_family(source, namespace) or (families[-1] if families else None)
    return recommend(store, meta=meta, specs=specs, metric=metric, direction=direction, model_family=family)


def _newest_run_with_task(store: Store, knowledge: Store, run_ids: list[int]) -> tuple[Any, dict | None]:
    """The newest run (and its data set) whose task the knowledge table describes: a quick run
    without xp.dataset after the real ones does not hide them."""
    for run_id in run_ids:
        run = store.get_run(run_id)
        task = next((d for d in run.datasets if knowledge.task_meta(d["fingerprint"])), None)
        if task is not None:
            return run, task
    return None, None


def for_experiment(store: Store, knowledge: Store, experiment: str) -> Recommendation:
    """Recommendations for the next optimization of a recorded experiment."""
    from .errors import UsageError

    run_ids = store.run_ids(experiment, RECENT_RUNS)
    if not run_ids:
        raise UsageError(f"no runs of experiment {experiment!r}; record one first")
    latest, task = _newest_run_with_task(store, knowledge, run_ids)
    if latest is None:
        which = (f"the run of {experiment!r} recorded no data set" if len(run_ids) == 1
                 else f"none of the newest {len(run_ids)} runs of {experiment!r} recorded a data set")
        raise UsageError(f"{which} with a target: call xp.dataset(X, y) in the cell")
    metric = next(iter(latest.metrics), None)
    try:
        study = store.study(experiment)
        metric, direction = study["metric"], study["direction"]
    except UsageError:
        from .knowledge import guess_direction

        direction = guess_direction(metric or "")
    if metric is None:
        raise UsageError(f"run {latest.id} of {experiment!r}, the newest with a data set, logged no metric")
    from .recorder import split_cell

    body = split_cell(latest.code)[1] if latest.code.lstrip().startswith("%%") else latest.code
    scripts = [store.code_source(m["sha256"]) or "" for m in latest.local_code if m["module"].startswith("%run ")]
    known = set(knowledge.knowledge_families())
    families = [family for source in (body, *scripts) for family in families_in_code(source, known)]
    specs = {s.name: s for s in latest.param_specs}
    return recommend(knowledge, meta=knowledge.task_meta(task["fingerprint"]), specs=specs, metric=metric,
                     direction=direction, model_family=families[-1] if families else None)

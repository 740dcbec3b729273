"""What a person's star ratings teach about configurations they have not rated.

A rating says more than the metric: "too slow", "overfits", "not deployable". A small
ridge regression learns the rating from what a knowledge row shows (its score within
its task, its cost, where it sits in the search space), so unrated configurations that
look like poorly rated ones are recommended less, and ones like well rated ones more.
With few ratings the learned weight stays close to 1: a handful of stars should not
overturn what the scores say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .guide import unit_point
from .records import ParamSpec

MIN_RATINGS = 3       # fewer than this: nothing is learned
RIDGE = 1.0           # pulls the weights toward "a rating is a rating of 3"
SHRINK_RATINGS = 10   # with n ratings, a prediction moves the weight by n / (n + 10) of its size
MAX_SWING = 0.6       # a predicted 1-star row weighs 0.4, a predicted 5-star row 1.6 (at most)


@dataclass(frozen=True)
class RowContext:
    """What a row's features are measured against: its task's score range and the search space."""

    specs: dict[str, ParamSpec]
    direction: str
    task_ranges: dict[str, tuple[float | None, float | None]]
    median_log_cost: dict[str, float]  # per task: a fit's cost means something next to its task's


def features(row: dict[str, Any], context: RowContext) -> list[float]:
    """Score share within its task (1 = the task's best), log10 cost relative to the median,
    and the configuration's place in the unit cube of each numeric parameter."""
    lo, hi = context.task_ranges.get(row["task"], (None, None))
    share = 0.5
    if lo is not None and hi is not None and hi > lo:
        share = (row["score"] - lo) / (hi - lo)
        share = share if context.direction == "maximize" else 1.0 - share
    cost, reference = row.get("cost_s"), context.median_log_cost.get(row["task"])
    relative_cost = (math.log10(cost) - reference) if cost and cost > 0 and reference is not None else 0.0
    return [share, max(-2.0, min(2.0, relative_cost)), *unit_point(row["config"], context.specs)]


@dataclass(frozen=True)
class RatingModel:
    """Predicts a row's rating (1-5) from its features; ``weight`` turns that into a multiplier."""

    n: int
    coef: tuple[float, ...]
    intercept: float
    context: RowContext

    def predicted_stars(self, row: dict[str, Any]) -> float:
        centred = float(np.dot(self.coef, features(row, self.context))) + self.intercept
        return 3.0 + 2.0 * max(-1.0, min(1.0, centred))

    def weight(self, row: dict[str, Any]) -> float:
        """The person's own rating where there is one, else the learned prediction, shrunk."""
        stars = row["rating"] if row.get("rating") is not None else self.predicted_stars(row)
        swing = MAX_SWING * self.n / (self.n + SHRINK_RATINGS)
        return 1.0 + swing * (stars - 3.0) / 2.0


def learn(rated: list[dict[str, Any]], context: RowContext) -> RatingModel | None:
    """Ridge regression of (rating - 3) / 2 on the features; None with too few ratings."""
    if len(rated) < MIN_RATINGS:
        return None
    X = np.array([features(r, context) for r in rated])
    y = np.array([(r["rating"] - 3.0) / 2.0 for r in rated])
    mean = X.mean(axis=0)
    centred = X - mean
    coef = np.linalg.solve(centred.T @ centred + RIDGE * np.eye(X.shape[1]), centred.T @ (y - y.mean()))
    intercept = float(y.mean() - mean @ coef)
    return RatingModel(len(rated), tuple(float(c) for c in coef), intercept, context)


def context_for(rows: list[dict[str, Any]], rated: list[dict[str, Any]], specs: dict[str, ParamSpec],
                direction: str) -> RowContext:
    """Task score ranges from the knowledge summaries; each task's median cost over its rows at hand."""
    ranges = {r["task"]: (r.get("task_min"), r.get("task_max")) for r in rated + rows}
    costs: dict[str, list[float]] = {}
    for r in rows + rated:
        if r.get("cost_s") and r["cost_s"] > 0:
            costs.setdefault(r["task"], []).append(math.log10(r["cost_s"]))
    return RowContext(specs, direction, ranges, {t: float(np.median(c)) for t, c in costs.items()})

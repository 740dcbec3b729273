"""The first trials of an optimization, chosen from the knowledge table one at a time.

Every past task votes for configurations by how good they were there. Votes start
weighted by meta-feature similarity, blended with an equal say for every task (so a
portfolio of generally good configurations is part of the mix). Similarity gets the
share of the vote it has earned: how well, among the past tasks themselves, closer
meta-features meant configurations ranked alike (none when it did not). As this task's own
results come in, a past task that predicted their order gains weight, one that predicted
it the other way loses it, at a strength the past tasks earned the same way: replaying the
guide on each of them (adaptation.py). The next trial is the candidate that adds the most
to what the tried configurations already cover, summed over the weighted tasks (greedy
coverage).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import adaptation
from .records import ParamSpec, param_value
from .similarity import MAX_SIMILARITY_SHARE, SimilarityEvidence

KNOWLEDGE_TRIALS = 10  # trials chosen by the guide before the sampler takes over (transfer.py: 10 beat 5)
PROBE_ROWS = 16  # rows per task, spread over its ranks, on which two tasks' rankings are compared
SIMILARITY_SCALE = 0.1  # meta-feature distance over which a task's prior weight falls by e
RADIUS = 0.15  # a past task knows a configuration when one of its rows lies this close (unit cube)
CANDIDATES_PER_TASK = 3


@dataclass
class PastTask:
    name: str
    distance: float
    points: np.ndarray  # its rows' configurations in the unit cube
    shares: np.ndarray  # their scores as a share of the task's range (1 = its best)

    def predict(self, points: np.ndarray) -> np.ndarray:
        """For each point, the share of the nearest known row, or below every known row when none is close."""
        squared = ((points ** 2).sum(axis=1)[:, None] + (self.points ** 2).sum(axis=1)[None, :]
                   - 2 * points @ self.points.T)  # squared distances, without a points x rows x dims array
        nearest = squared.argmin(axis=1)
        close = squared[np.arange(len(points)), nearest] <= RADIUS ** 2 + 1e-12
        return np.where(close, self.shares[nearest], 0.9 * float(self.shares.min()))

    def probes(self) -> tuple[np.ndarray, np.ndarray]:
        """A few of its rows, spread from its best to its worst known (points, shares)."""
        order = np.argsort(-self.shares, kind="stable")
        chosen = order[np.unique(np.linspace(0, len(order) - 1, PROBE_ROWS).astype(int))]
        return self.points[chosen], self.shares[chosen]


@dataclass
class Candidate:
    config: dict[str, Any]
    origin: str  # the past task it was among the best of
    weight: float = 1.0  # what the person's ratings say about it (ratings.py)
    row: dict[str, Any] | None = None  # the knowledge row it came from
    sources: list[int] = field(default_factory=list)  # indices of the past tasks it was among the best of


@dataclass
class Pick:
    candidate: Candidate
    reason: str

    @property
    def config(self) -> dict[str, Any]:
        return self.candidate.config


class KnowledgeGuide:
    """Chooses knowledge-driven trials for one new task, given what it has observed so far."""

    def __init__(self, tasks: list[PastTask], candidates: list[Candidate], specs: dict[str, ParamSpec],
                 direction: str, evidence: SimilarityEvidence | None = None,
                 vectors: np.ndarray | None = None):
        self.tasks = tasks
        self.specs = specs
        self.direction = direction
        self.candidates = candidates
        self._bonus = np.array([c.weight for c in candidates])
        self._points = unit_points([c.config for c in candidates], specs)[0]
        # predicted share of every candidate on every past task (candidates x tasks)
        self._credit = np.column_stack([t.predict(self._points) for t in tasks])
        self.evidence = evidence or SimilarityEvidence(MAX_SIMILARITY_SHARE, None, len(tasks))
        self.prior = _prior(np.array([t.distance for t in tasks]), self.evidence.share)
        # A replayed task's own best rows are not knowledge to it, unless another task had them too.
        allowed = np.array([[c.sources != [u] for c in candidates] for u in range(len(tasks))])
        self.adaptation = adaptation.choose_strength(self._credit, self._replay_priors(vectors), allowed,
                                                     self._bonus, KNOWLEDGE_TRIALS)

    def _replay_priors(self, vectors: np.ndarray | None) -> np.ndarray:
        """Row u: the prior weights if past task u were the new task (meta-feature vectors give
        the distances; without them every other task has an equal say)."""
        n = len(self.tasks)
        priors = np.zeros((n, n))
        for u in range(n):
            others = np.arange(n) != u
            if not others.any():
                continue
            if vectors is None:
                priors[u, others] = 1.0 / others.sum()
            else:
                distances = np.sqrt(((vectors[others] - vectors[u]) ** 2).sum(axis=1))
                priors[u, others] = _prior(distances, self.evidence.share)
        return priors

    def weights(self, observed: list[tuple[dict[str, Any], float]]) -> np.ndarray:
        """Prior weights, lowered for tasks that mispredicted the order of the observed results."""
        observed = [(c, v) for c, v in observed if math.isfinite(v)]  # a NaN score orders nothing
        values = np.array([v if self.direction == "maximize" else -v for _, v in observed], dtype=float)
        if len(values) < 2 or np.all(values == values[0]):
            return self.prior
        points = np.array([unit_point(c, self.specs) for c, _ in observed])
        predicted = np.array([t.predict(points) for t in self.tasks])
        return adaptation.adapted(self.prior, adaptation.misranking(predicted, values), self.adaptation.strength)

    def plan(self, observed: list[tuple[dict[str, Any], float]], count: int,
             exclude: Callable[[dict[str, Any]], bool] = lambda c: False) -> list[Pick]:
        """The next ``count`` configurations: greedy coverage under the current weights."""
        weights = self.weights(observed)
        covered = np.zeros(len(self.tasks))
        if observed:
            points = np.array([unit_point(config, self.specs) for config, _ in observed])
            covered = np.array([t.predict(points).max() for t in self.tasks])
        picks: list[Pick] = []
        taken = [i for i, c in enumerate(self.candidates) if exclude(c.config)]
        for _ in range(count):
            gains = (np.maximum(covered[None, :], self._credit) @ weights) * self._bonus
            gains[taken] = -math.inf
            best = int(gains.argmax())
            if not math.isfinite(gains[best]):
                break
            taken.append(best)
            covered = np.maximum(covered, self._credit[best])
            picks.append(Pick(self.candidates[best], self._reason(best, weights, len(observed))))
        return picks

    def _reason(self, index: int, weights: np.ndarray, observed: int) -> str:
        support = sorted(range(len(self.tasks)), key=lambda j: -weights[j] * self._credit[index, j])[:3]
        voters = ", ".join(f"{self.tasks[j].name} {weights[j]:.0%}" for j in support)
        prior = (f"similarity ({self.evidence.share:.0%}) and an equal say" if self.evidence.share > 0
                 else "an equal say for every task")
        basis = f"{prior}, then how each ranked your {observed} results" if observed >= 2 else prior
        return (f"among the best on {self.candidates[index].origin}; most support from {voters}; "
                f"task weights from {basis}")


def _prior(distances: np.ndarray, share: float) -> np.ndarray:
    """``share`` of the weight by meta-feature similarity, the rest evenly."""
    similarity = np.exp(-(distances - distances.min()) / SIMILARITY_SCALE)
    return (1 - share) / len(distances) + share * similarity / similarity.sum()


def unit_point(config: dict[str, Any], specs: dict[str, ParamSpec]) -> np.ndarray:
    """A configuration in the unit cube of the space (unit_points, for one)."""
    return unit_points([config], specs)[0][0]


def unit_points(configs: list[dict[str, Any]], specs: dict[str, ParamSpec]) -> tuple[np.ndarray, np.ndarray]:
    """Configurations in the unit cube of the space (log scale where the parameter is log), and
    whether each has at least one value that fits the space. A categorical parameter is one
    coordinate per choice, so a different choice is distance 1; a missing or unfitting value is
    the middle. One numpy pass per parameter: the guide places thousands of rows."""
    columns: list[np.ndarray] = []
    fits = np.zeros(len(configs), dtype=bool)
    for name, spec in specs.items():
        values = [config.get(name) for config in configs]
        if spec.choices is not None:
            values = [param_value(v) for v in values]  # a tuple choice comes back from JSON as a list
            for choice in spec.choices:
                columns.append(np.array([math.sqrt(0.5) if v == choice else 0.0 for v in values]))
            fits |= np.array([v in spec.choices for v in values], dtype=bool)
            continue
        numeric = np.array([isinstance(v, (int, float)) and not isinstance(v, bool) for v in values], dtype=bool)
        if spec.low is None:
            columns.append(np.full(len(configs), 0.5))
            continue
        fits |= numeric
        x = np.array([float(v) if ok else math.nan for v, ok in zip(values, numeric)])
        if spec.log and spec.low > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                logged = np.log(x / spec.low) / (math.log(spec.high / spec.low) or 1.0)
            scaled = np.where(x > 0, logged, (x - spec.low) / ((spec.high - spec.low) or 1.0))
        else:
            scaled = (x - spec.low) / ((spec.high - spec.low) or 1.0)
        columns.append(np.where(numeric, np.clip(scaled, 0.0, 1.0), 0.5))
    points = np.column_stack(columns) if columns else np.zeros((len(configs), 0))
    return points, fits

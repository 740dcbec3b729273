"""The first trials of an optimization, chosen from the knowledge table one at a time.

Every past task votes for configurations by how good they were there. Votes start
weighted by meta-feature similarity, blended with an equal say for every task (so a
portfolio of generally good configurations is part of the mix). Similarity gets the
share of the vote it has earned: how well, among the past tasks themselves, closer
meta-features meant configurations ranked alike (none when it did not). As this task's own
results come in, a past task that ranked the configurations tried so far the way this
task did gains weight, one that ranked them the other way loses it. The next trial is
the candidate that adds the most to what the tried configurations already cover,
summed over the weighted tasks (greedy coverage).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .records import ParamSpec
from .similarity import MAX_SIMILARITY_SHARE, SimilarityEvidence

KNOWLEDGE_TRIALS = 10  # trials chosen by the guide before the sampler takes over (transfer.py: 10 beat 5)
PROBE_ROWS = 16  # rows per task, spread over its ranks, on which two tasks' rankings are compared
SIMILARITY_SCALE = 0.1  # meta-feature distance over which a task's prior weight falls by e
DISAGREEMENT = 2.0  # how fast a task that misranks this task's results loses weight
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
                 direction: str, evidence: SimilarityEvidence | None = None):
        self.tasks = tasks
        self.specs = specs
        self.direction = direction
        self.candidates = candidates
        self._bonus = np.array([c.weight for c in candidates])
        self._points = np.array([unit_point(c.config, specs) for c in candidates])
        # predicted share of every candidate on every past task (candidates x tasks)
        self._credit = np.column_stack([t.predict(self._points) for t in tasks])
        distances = np.array([t.distance for t in tasks])
        similarity = np.exp(-(distances - distances.min()) / SIMILARITY_SCALE)
        self.evidence = evidence or SimilarityEvidence(MAX_SIMILARITY_SHARE, None, len(tasks))
        share = self.evidence.share
        self.prior = (1 - share) / len(tasks) + share * similarity / similarity.sum()

    def weights(self, observed: list[tuple[dict[str, Any], float]]) -> np.ndarray:
        """Prior weights times how well each task ranks the observed results (pairs of trials)."""
        values = [v if self.direction == "maximize" else -v for _, v in observed]
        points = [unit_point(c, self.specs) for c, _ in observed]
        pairs = [(a, b) for a in range(len(observed)) for b in range(a + 1, len(observed)) if values[a] != values[b]]
        if not pairs:
            return self.prior
        predicted = np.array([t.predict(np.array(points)) for t in self.tasks])
        wrong = np.array([sum((row[a] - row[b]) * (values[a] - values[b]) < 0 for a, b in pairs)
                          for row in predicted]) / len(pairs)
        weights = self.prior * np.exp(-DISAGREEMENT * len(pairs) * wrong)
        return weights / weights.sum()

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
            gains = (np.maximum(covered[None, :], self._credit) * weights[None, :]).sum(axis=1) * self._bonus
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
        return (f"among the best on {self.candidates[index].origin}; most support from {voters} "
                f"(task weights from {basis})")


def unit_point(config: dict[str, Any], specs: dict[str, ParamSpec]) -> np.ndarray:
    """A configuration in the unit cube of the space (log scale where the parameter is log);
    a categorical parameter is one coordinate per choice, so a different choice is distance 1."""
    coordinates: list[float] = []
    for name, spec in specs.items():
        value = config.get(name)
        if spec.choices is not None:
            coordinates += [math.sqrt(0.5) if value == choice else 0.0 for choice in spec.choices]
        elif not isinstance(value, (int, float)) or isinstance(value, bool) or spec.low is None:
            coordinates.append(0.5)
        elif spec.log and spec.low > 0 and value > 0:
            coordinates.append(min(1.0, max(0.0, math.log(value / spec.low) / (math.log(spec.high / spec.low) or 1.0))))
        else:
            coordinates.append(min(1.0, max(0.0, (value - spec.low) / ((spec.high - spec.low) or 1.0))))
    return np.array(coordinates)

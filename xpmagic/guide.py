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
coverage). From the fourth trial on, every second one refines instead: of the past tasks'
configurations nearest to the best result so far, the one the weighted tasks predict best.
Coverage alone stops at the best configuration some past task had; on many tasks the
portfolio stops there too, and a close neighbour is better (transfer.py).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import adaptation
from .records import ParamSpec
from .similarity import MAX_SIMILARITY_SHARE, SimilarityEvidence

KNOWLEDGE_TRIALS = 10  # trials chosen by the guide before the sampler takes over (transfer.py: 10 beat 5)
PROBE_ROWS = 16  # rows per task, spread over its ranks, on which two tasks' rankings are compared
SIMILARITY_SCALE = 0.1  # meta-feature distance over which a task's prior weight falls by e
RADIUS = 0.15  # a past task knows a configuration when one of its rows lies this close (unit cube)
CANDIDATES_PER_TASK = 3
REFINE_FROM = 4  # the first trial that refines the best so far (three covering trials come first) ...
REFINE_EVERY = 2  # ... and every second one after it
NEIGHBOURS = 8  # past configurations nearest the best so far that a refining trial chooses among
NEIGHBOUR_ROWS = 16  # a past task's best rows, what refining trials choose from (its good regions; bounded work)


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
                 vectors: np.ndarray | None = None, neighbours: list[Candidate] | None = None):
        self.tasks = tasks
        self.specs = specs
        self.direction = direction
        self.candidates = candidates  # what covering trials choose from
        # What refining trials choose from: every past configuration the guide knows. The options
        # are these and the candidates, each configuration once.
        known = {config_key(c.config) for c in neighbours or []}
        self.neighbours = [*(neighbours or []), *(c for c in candidates if config_key(c.config) not in known)]
        self._position = {config_key(c.config): i for i, c in enumerate(self.neighbours)}
        self._candidate_options = np.array([self._position[config_key(c.config)] for c in candidates], dtype=int)
        self._points = unit_points([c.config for c in self.neighbours], specs)[0]
        # predicted share of every option on every past task (options x tasks)
        self._credit = np.column_stack([t.predict(self._points) for t in tasks])
        self._cover_bonus = np.array([c.weight for c in candidates])
        self._refine_bonus = np.array([c.weight for c in self.neighbours])
        self.evidence = evidence or SimilarityEvidence(MAX_SIMILARITY_SHARE, None, len(tasks))
        self.prior = _prior(np.array([t.distance for t in tasks]), self.evidence.share)
        # A replayed task's own rows are not knowledge to it, unless another task had them too.
        pool = adaptation.Pool(self._credit, self._points, self._candidate_options, self._cover_bonus,
                               _not_only_of(candidates, len(tasks)), self._refine_bonus,
                               _not_only_of(self.neighbours, len(tasks)))
        self.adaptation = adaptation.choose_strength(pool, self._replay_priors(vectors), KNOWLEDGE_TRIALS,
                                                     refines, NEIGHBOURS)

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
        """The next ``count`` configurations under the current weights: greedy coverage, and on
        the trials ``refines`` names a refinement of the best so far."""
        weights = self.weights(observed)
        tried = np.array([unit_point(config, self.specs) for config, _ in observed]).reshape(-1, self._points.shape[1])
        covered = self._predicted(tried).max(axis=0) if observed else np.zeros(len(self.tasks))
        best = self._best_so_far(observed)
        picks: list[Pick] = []
        taken = [i for i, c in enumerate(self.candidates) if exclude(c.config)]
        for _ in range(count):
            pick = None
            if best is not None and refines(len(observed) + len(picks) + 1):
                chosen = self._points_of(picks)
                pick = self._refine(best, np.vstack([tried, chosen]), weights,
                                    lambda c: exclude(c) or any(c == p.config for p in picks))
            if pick is None:
                pick = self._cover(covered, weights, taken, len(observed))
            if pick is None:
                break
            covered = np.maximum(covered, self._credit[self._position[config_key(pick.config)]])
            taken.extend(i for i, c in enumerate(self.candidates) if c.config == pick.config)
            picks.append(pick)
        return picks

    def _points_of(self, picks: list[Pick]) -> np.ndarray:
        """The picks' configurations in the unit cube."""
        return unit_points([p.config for p in picks], self.specs)[0].reshape(-1, self._points.shape[1])

    def _predicted(self, points: np.ndarray) -> np.ndarray:
        """Every past task's predicted share of each point (points x tasks)."""
        return np.column_stack([t.predict(points) for t in self.tasks])

    def _cover(self, covered: np.ndarray, weights: np.ndarray, taken: list[int], observed: int) -> Pick | None:
        """The candidate that adds the most to what is covered, over the weighted tasks."""
        credit = self._credit[self._candidate_options]
        gains = (np.maximum(covered[None, :], credit) @ weights) * self._cover_bonus
        gains[taken] = -math.inf
        best = int(gains.argmax())
        if not math.isfinite(gains[best]):
            return None
        support = self._support(credit[best], weights)
        prior = (f"similarity ({self.evidence.share:.0%}) and an equal say" if self.evidence.share > 0
                 else "an equal say for every task")
        basis = f"{prior}, then how each ranked your {observed} results" if observed >= 2 else prior
        return Pick(self.candidates[best], f"among the best on {self.candidates[best].origin}; most support from "
                                           f"{support} (task weights from {basis})")

    def _best_so_far(self, observed: list[tuple[dict[str, Any], float]]) -> tuple[dict[str, Any], float] | None:
        finite = [(c, v) for c, v in observed if math.isfinite(v)]
        if not finite:
            return None
        sign = 1.0 if self.direction == "maximize" else -1.0
        return max(finite, key=lambda result: sign * result[1])

    def _refine(self, best: tuple[dict[str, Any], float], tried: np.ndarray, weights: np.ndarray,
                exclude: Callable[[dict[str, Any]], bool]) -> Pick | None:
        """Of the NEIGHBOURS untried past configurations nearest the best so far, the one the
        weighted tasks predict best. Nearest by count, not by a radius: past configurations lie
        denser in two dimensions than in four. (adaptation._replay_refine does the same in bulk.)"""
        config, value = best
        distances = np.sqrt(((self._points - unit_point(config, self.specs)) ** 2).sum(axis=1))
        untried = np.sqrt(((self._points[:, None, :] - tried[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
        nearest_first = np.argsort(distances, kind="stable")
        order = list(itertools.islice((i for i in nearest_first
                                       if untried[i] > 1e-9 and not exclude(self.neighbours[i].config)), NEIGHBOURS))
        if not order:
            return None
        predicted = (self._credit[order] @ weights) * self._refine_bonus[order]
        index = order[int(predicted.argmax())]
        return Pick(self.neighbours[index],
                    f"refines your best so far ({value:.4g}): "
                    + (f"of the {len(order)} past configurations nearest to it, the one predicted best"
                       if len(order) > 1 else "the only untried past configuration near it")
                    + f" (from {self.neighbours[index].origin}; most support from "
                    f"{self._support(self._credit[index], weights)})")

    def _support(self, credit: np.ndarray, weights: np.ndarray) -> str:
        """The three past tasks that back a configuration most, with their weights."""
        support = sorted(range(len(self.tasks)), key=lambda j: -weights[j] * credit[j])[:3]
        return ", ".join(f"{self.tasks[j].name} {weights[j]:.0%}" for j in support)


def refines(trial: int) -> bool:
    """Whether knowledge-driven trial number ``trial`` (from 1) refines the best so far."""
    return trial >= REFINE_FROM and (trial - REFINE_FROM) % REFINE_EVERY == 0


def _not_only_of(options: list[Candidate], tasks: int) -> np.ndarray:
    """tasks x options: False where the task is the option's only source (a replayed task's own
    rows are not knowledge to it)."""
    only = np.array([c.sources[0] if len(c.sources) == 1 else -1 for c in options], dtype=int)
    return only[None, :] != np.arange(tasks)[:, None]


def config_key(config: dict[str, Any]) -> tuple:
    """A configuration as a dictionary key (its values are numbers, strings, booleans or None)."""
    return tuple(sorted(config.items()))


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

"""How much meta-feature similarity has earned a say in which past tasks to listen to.

Meta-features are a guess at which past tasks resemble a new one. The knowledge table
can test that guess on itself: over pairs of past tasks, do the closer pairs rank
configurations more alike? The rank correlation between closeness and agreement,
clipped to [0, MAX_SIMILARITY_SHARE], is the share of the guide's prior vote that
follows similarity; the rest is an equal say for every task (guide.py). On the transfer
benchmark this is about 0.1 for SVC and 0.05 for gradient boosting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_SIMILARITY_SHARE = 0.5  # the rest of the weight is spread evenly: the portfolio part
MIN_TASKS_FOR_EVIDENCE = 6  # fewer past tasks cannot tell whether similarity predicts anything
MIN_ROWS_FOR_EVIDENCE = 3  # a task with fewer results has (almost) no ranking to compare


@dataclass(frozen=True)
class SimilarityEvidence:
    """How much meta-feature similarity says about which past tasks to listen to."""

    share: float  # of the prior vote, 0 to MAX_SIMILARITY_SHARE
    correlation: float | None  # closeness vs. ranking agreement over pairs of past tasks (None: too few)
    tasks: int  # past tasks with enough results to take part in the test
    known: int | None = None  # past tasks in all (None: the same as tasks)

    @property
    def reason(self) -> str:
        if self.correlation is None:
            known = self.tasks if self.known is None else self.known
            have = (f"you have {self.tasks}" if known == self.tasks
                    else f"{self.tasks} of your {known} past tasks {'has' if self.tasks == 1 else 'have'} that many")
            return (f"similarity has half the vote: too few past tasks to test whether closer meta-features mean "
                    f"configurations rank alike (the test needs {MIN_TASKS_FOR_EVIDENCE} past tasks with "
                    f"{MIN_ROWS_FOR_EVIDENCE} or more results each; {have})")
        if self.share == 0:
            return (f"similarity has no say: across your {self.tasks} past tasks, closer meta-features did not "
                    f"mean configurations ranked alike (rank correlation {self.correlation:.2f})")
        return (f"similarity has {self.share:.0%} of the vote: across your {self.tasks} past tasks, closer "
                f"meta-features meant configurations ranked alike with rank correlation {self.correlation:.2f}")


def similarity_evidence(tasks: list[Any], metas: list[list[float]]) -> SimilarityEvidence:
    """Over pairs of past tasks (guide.PastTask, with their meta-feature vectors): does closeness
    go with ranking configurations alike? Agreement is how well one task's rows predict the
    order of the other's probe rows, averaged both ways."""
    taking_part = [i for i, t in enumerate(tasks) if len(t.shares) >= MIN_ROWS_FOR_EVIDENCE]
    if len(taking_part) < MIN_TASKS_FOR_EVIDENCE:
        return SimilarityEvidence(MAX_SIMILARITY_SHARE, None, len(taking_part), len(tasks))
    tasks = [tasks[i] for i in taking_part]
    probes = [t.probes() for t in tasks]
    width = max(len(shares) for _, shares in probes)
    # Tasks have different numbers of probe rows: pad with NaN, which no pair counts.
    actual = np.full((len(tasks), width), np.nan)
    points = np.zeros((len(tasks), width, probes[0][0].shape[1]))
    for b, (task_points, shares) in enumerate(probes):
        actual[b, :len(shares)], points[b, :len(shares)] = shares, task_points
    flat = points.reshape(-1, points.shape[2])
    predicted = np.array([a.predict(flat).reshape(actual.shape) for a in tasks])  # a x b x rows
    agreement = _rank_agreement(predicted, actual[None, :, :])
    agreement = (agreement + agreement.T) / 2
    vectors = np.array([metas[i] for i in taking_part])
    upper = np.triu_indices(len(tasks), k=1)
    closeness = -np.sqrt(((vectors[:, None, :] - vectors[None, :, :]) ** 2).sum(axis=2))[upper]
    correlation = _spearman(closeness, agreement[upper])
    return SimilarityEvidence(min(MAX_SIMILARITY_SHARE, max(0.0, correlation)), correlation, len(tasks))


def _rank_agreement(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Kendall-style, over the last axis: (concordant - discordant) / pairs; ties count as neither,
    NaN (padding) rows are left out."""
    signs = (np.sign(predicted[..., :, None] - predicted[..., None, :])
             * np.sign(actual[..., :, None] - actual[..., None, :]))
    rows = (~np.isnan(actual)).sum(axis=-1)
    return np.nansum(signs, axis=(-2, -1)) / np.maximum(1, rows * (rows - 1))


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    ranks_x, ranks_y = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    if ranks_x.std() == 0 or ranks_y.std() == 0:
        return 0.0
    return float(np.corrcoef(ranks_x, ranks_y)[0, 1])

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


@dataclass(frozen=True)
class SimilarityEvidence:
    """How much meta-feature similarity says about which past tasks to listen to."""

    share: float  # of the prior vote, 0 to MAX_SIMILARITY_SHARE
    correlation: float | None  # closeness vs. ranking agreement over pairs of past tasks (None: too few)
    tasks: int

    @property
    def reason(self) -> str:
        if self.correlation is None:
            counted = f"{self.tasks} past task is" if self.tasks == 1 else f"{self.tasks} past tasks are"
            return (f"similarity has half the vote: {counted} too few to test whether "
                    "closer meta-features mean configurations rank alike")
        if self.share == 0:
            return (f"similarity has no say: across your {self.tasks} past tasks, closer meta-features did not "
                    f"mean configurations ranked alike (rank correlation {self.correlation:.2f})")
        return (f"similarity has {self.share:.0%} of the vote: across your {self.tasks} past tasks, closer "
                f"meta-features meant configurations ranked alike with rank correlation {self.correlation:.2f}")


def similarity_evidence(tasks: list[Any], metas: list[list[float]]) -> SimilarityEvidence:
    """Over pairs of past tasks (guide.PastTask, with their meta-feature vectors): does closeness
    go with ranking configurations alike? Agreement is how well one task's rows predict the
    order of the other's probe rows, averaged both ways."""
    if len(tasks) < MIN_TASKS_FOR_EVIDENCE:
        return SimilarityEvidence(MAX_SIMILARITY_SHARE, None, len(tasks))
    probes = [t.probes() for t in tasks]
    points = np.concatenate([p for p, _ in probes])
    actual = np.array([shares for _, shares in probes])  # tasks x PROBE_ROWS
    predicted = np.array([a.predict(points).reshape(actual.shape) for a in tasks])  # a x b x rows
    agreement = _rank_agreement(predicted, actual[None, :, :])
    agreement = (agreement + agreement.T) / 2
    vectors = np.array(metas)
    upper = np.triu_indices(len(tasks), k=1)
    closeness = -np.sqrt(((vectors[:, None, :] - vectors[None, :, :]) ** 2).sum(axis=2))[upper]
    correlation = _spearman(closeness, agreement[upper])
    return SimilarityEvidence(min(MAX_SIMILARITY_SHARE, max(0.0, correlation)), correlation, len(tasks))


def _rank_agreement(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Kendall-style, over the last axis: (concordant - discordant) / pairs; ties count as neither."""
    signs = (np.sign(predicted[..., :, None] - predicted[..., None, :])
             * np.sign(actual[..., :, None] - actual[..., None, :]))
    rows = actual.shape[-1]
    return signs.sum(axis=(-2, -1)) / max(1, rows * (rows - 1))


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    ranks_x, ranks_y = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    if ranks_x.std() == 0 or ranks_y.std() == 0:
        return 0.0
    return float(np.corrcoef(ranks_x, ranks_y)[0, 1])

"""How strongly a new task's own results re-weight the past tasks the guide listens to.

After two or more results, every past task is scored by how it predicted their order:
for each result, its predicted share times how many of the other results it beat
(so a task that predicted the winners high gains, one that predicted them low loses,
by how much it predicted, not only whether). Weights follow exp(-strength * misranking).

The right strength depends on the knowledge: where configurations rank alike across tasks
and results are clear, trust the first results a lot; where landscapes are flat and a
score differs from the next by noise, barely. The knowledge table can test this on itself:
replay the guide's first trials on every past task, as if it were new, with the other past
tasks as knowledge, and keep the strength that reached the lowest regret there. On the
transfer benchmark that is 10-20 for SVC and 1 for gradient boosting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRENGTHS = (1.0, 2.0, 5.0, 10.0, 20.0)
DEFAULT_STRENGTH = 5.0  # too few past tasks to replay: a middle one
MIN_TASKS_TO_REPLAY = 6
CHECKPOINTS = (5, 10)  # replayed regret is the mean over these trial counts


@dataclass(frozen=True)
class AdaptationEvidence:
    """The strength chosen, and what the replay on past tasks measured for each."""

    strength: float
    replayed: int  # past tasks replayed as if new (0: too few, the default strength)
    regret: dict[float, float]  # mean replayed regret (share of the task's range) per strength
    tasks: int = 0  # past tasks the guide listens to

    @property
    def reason(self) -> str:
        if not self.replayed:
            return (f"your results re-weight past tasks at a middle strength ({self.strength:g}): too few past tasks "
                    f"to test which strength works (the test needs {MIN_TASKS_TO_REPLAY}; you have {self.tasks})")
        replay = (f"replaying the first {max(CHECKPOINTS)} trials on each of your {self.replayed} past tasks "
                  f"as if it were new")
        worst = max(self.regret, key=lambda s: self.regret[s])
        if self.regret[worst] - self.regret[self.strength] < 1e-9:
            return (f"your results re-weight past tasks at a middle strength ({self.strength:g}): {replay}, every "
                    f"strength left {self.regret[worst]:.3f} of the range to go on average")
        return (f"your results re-weight past tasks at strength {self.strength:g}: {replay}, it left "
                f"{self.regret[self.strength]:.3f} of the range to go on average "
                f"(strength {worst:g}: {self.regret[worst]:.3f})")


def misranking(predicted: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per past task, how its predictions (tasks x results) disagree with the order of the
    results' values (higher is better): minus the sum over results of the predicted share
    times the number of other results it beat, less the number that beat it."""
    beats = np.sign(values[:, None] - values[None, :]).sum(axis=1)
    return -(predicted @ beats)


def adapted(prior: np.ndarray, penalty: np.ndarray, strength: float) -> np.ndarray:
    """Prior weights lowered by exp(-strength * penalty), relative to the best-predicting task."""
    listened = prior > 0
    relative = penalty - penalty[listened].min()
    weights = np.where(listened, prior * np.exp(-strength * np.maximum(relative, 0.0)), 0.0)
    return weights / weights.sum()


def choose_strength(credit: np.ndarray, prior_of: np.ndarray, allowed: np.ndarray, bonus: np.ndarray,
                    picks: int) -> AdaptationEvidence:
    """Replay the guide on every past task at every strength, all at once.

    credit: candidates x tasks, each task's predicted share for each candidate (its truth in the replay).
    prior_of: tasks x tasks, row u the prior weights when task u is the new one (zero for u itself).
    allowed: tasks x candidates, False for a task's own candidates (it cannot be its own knowledge).
    """
    n_candidates, n_tasks = credit.shape
    if n_tasks < MIN_TASKS_TO_REPLAY:
        return AdaptationEvidence(DEFAULT_STRENGTH, 0, {}, n_tasks)
    strengths = np.array(STRENGTHS)
    runs = (n_tasks, len(strengths))
    covered = np.zeros((*runs, n_tasks))
    chosen = np.zeros((*runs, 0), dtype=int)
    real = np.zeros((*runs, 0), dtype=bool)  # False: the run had no candidate left (plan() stops there)
    regret = np.zeros(runs)
    truth = credit.T  # tasks x candidates
    blocked = np.broadcast_to(~allowed[:, None, :], (*runs, n_candidates)).copy()
    steps = min(picks, max(CHECKPOINTS))
    reach = np.empty((*runs, n_candidates, n_tasks))  # what each candidate would cover, per run
    for step in range(steps):
        weights = _replay_weights(credit, truth, prior_of, strengths, chosen)
        np.maximum(covered[:, :, None, :], credit[None, None], out=reach)
        gains = (reach @ weights[..., None])[..., 0] * bonus  # the weighted coverage, as one batched product
        gains[blocked] = -np.inf
        best = gains.argmax(axis=2)
        chosen = np.concatenate([chosen, best[:, :, None]], axis=2)
        real = np.concatenate([real, np.isfinite(gains.max(axis=2))[:, :, None]], axis=2)
        blocked[np.arange(n_tasks)[:, None], np.arange(len(strengths))[None, :], best] = True
        covered = np.maximum(covered, credit[best])
        if step + 1 in CHECKPOINTS:
            found = np.where(real, np.take_along_axis(truth[:, None, :], chosen, axis=2), 0.0).max(axis=2)
            regret += (1.0 - found) / len(CHECKPOINTS)
    mean = regret.mean(axis=0)
    # Among strengths the replay cannot tell apart, the one nearest the middle default.
    tied = np.flatnonzero(mean <= mean.min() + 1e-9)
    chosen_strength = min(strengths[tied], key=lambda s: abs(np.log(s / DEFAULT_STRENGTH)))
    return AdaptationEvidence(float(chosen_strength), n_tasks, {float(s): float(r) for s, r in zip(strengths, mean)},
                              n_tasks)


def _replay_weights(credit: np.ndarray, truth: np.ndarray, prior_of: np.ndarray, strengths: np.ndarray,
                    chosen: np.ndarray) -> np.ndarray:
    """Weights of every (replayed task, strength) run after the picks chosen so far
    (misranking and adapted, over all runs at once)."""
    n_tasks, n_strengths, k = chosen.shape
    prior = np.broadcast_to(prior_of[:, None, :], (n_tasks, n_strengths, n_tasks))
    if k < 2:
        return prior.copy()
    values = np.take_along_axis(truth[:, None, :], chosen, axis=2)  # runs x k
    beats = np.sign(values[..., :, None] - values[..., None, :]).sum(axis=3)
    penalty = -(credit[chosen] * beats[..., None]).sum(axis=2)  # runs x tasks
    listened = prior > 0
    relative = penalty - np.where(listened, penalty, np.inf).min(axis=2, keepdims=True)
    weights = np.where(listened, prior * np.exp(-strengths[None, :, None] * np.maximum(relative, 0.0)), 0.0)
    weights /= weights.sum(axis=2, keepdims=True)
    undecided = np.all(values == values[..., :1], axis=2)  # no order among the results yet
    weights[undecided] = prior[undecided]
    return weights

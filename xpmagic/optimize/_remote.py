"""What a study and its remote workers (``xpmagic worker``) share, through Optuna's storage.

The kernel publishes the steering state (state, budget, search space, deadline) as a study
user attribute whenever it changes; workers read it before every trial, so pause, resume,
stop and space edits reach machines that cannot see the kernel's database. Workers mark
their trials and keep a heartbeat; the kernel folds their trials into its own view (panel,
best value, budget) once a second.
"""

from __future__ import annotations

import time
from typing import Any

CONTROL_ATTR = "xpmagic_control"
WORKER_ATTR = "xpmagic_worker"            # on a trial: which worker ran it
HEARTBEAT_PREFIX = "xpmagic_worker:"      # on the study: worker id -> last sign of life
HEARTBEAT_S = 5.0
WORKER_GONE_S = 60.0                      # a worker silent this long no longer holds its trials


def publish(study: Any, control: dict[str, Any], last: dict[str, Any] | None) -> dict[str, Any]:
    """Write the steering state when it changed; returns what is now published."""
    if control != last:
        study.set_user_attr(CONTROL_ATTR, control)
    return control


def read_control(study: Any) -> dict[str, Any]:
    return study.user_attrs.get(CONTROL_ATTR) or {}


def beat(study: Any, worker_id: str) -> None:
    study.set_user_attr(HEARTBEAT_PREFIX + worker_id, time.time())


def live_workers(attrs: dict[str, Any], now: float | None = None) -> set[str]:
    now = time.time() if now is None else now
    return {key[len(HEARTBEAT_PREFIX):] for key, at in attrs.items()
            if key.startswith(HEARTBEAT_PREFIX) and now - float(at) < WORKER_GONE_S}


def trial_state(trial: Any) -> str:
    """A frozen Optuna trial as the panel names its state."""
    import optuna

    state = trial.state
    if state == optuna.trial.TrialState.RUNNING:
        return "running"
    if state == optuna.trial.TrialState.COMPLETE:
        return "infeasible" if any(v > 0 for v in trial.system_attrs.get("constraints", [])) else "complete"
    if trial.user_attrs.get("xpmagic_cancelled"):
        return "cancelled"
    return "failed"


def counted(trials: list[Any]) -> int:
    """Trials that count against the budget: all but cancelled ones."""
    return sum(1 for t in trials if not t.user_attrs.get("xpmagic_cancelled"))


def over_budget(study: Any, trial: Any, budget: int | None) -> bool:
    """Asked by two processes at once, the budget can be overshot; the storage numbers trials in
    order, so the one whose earlier trials already fill the budget gives way."""
    if budget is None:
        return False
    return counted([t for t in study.get_trials(deepcopy=False) if t.number < trial.number]) >= budget


def cancel(study: Any, trial: Any) -> None:
    import optuna

    trial.set_user_attr("xpmagic_cancelled", True)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)

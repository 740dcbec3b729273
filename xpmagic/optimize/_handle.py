"""``xp.study(NAME)``: steer a study from Python, in this kernel or another process."""

from __future__ import annotations

import sys
import time
from typing import Any

from ..errors import UsageError
from ..store import Store, utc_now
from ..studystate import driver_gone, shown_state
from ._launch import controllers

REMOTE_WAIT_S = 5.0


def send(store: Store, name: str, action: str, payload: dict[str, Any], source: str) -> str:
    """Apply an action: directly when this process drives the study, else through the database."""
    record = store.study(name)
    controller = controllers.get(record["name"])
    if controller is not None:  # this kernel drives it (even finished: the budget may grow)
        return controller.apply(action, payload, source=source)
    if record["state"] in ("stopped", "finished") and action in ("pause", "resume", "stop"):
        raise UsageError(f"study {record['name']!r} is {record['state']}; nothing to {action}")
    if action in ("approve", "reject") and not record.get("approve"):
        raise UsageError(f"study {record['name']!r} runs without --approve: no trial waits for approval")
    control_id = store.request_control(record["id"], action, payload, source, utc_now())
    if driver_gone(record):
        return (f"requested; no kernel drives study {record['name']!r} now (pid {record['pid']} on "
                f"{record['host']} has exited): the request applies when you run its cell again with --resume")
    deadline = time.monotonic() + REMOTE_WAIT_S
    while time.monotonic() < deadline:
        applied, result = store.control_result(control_id)
        if applied is not None:
            if result and result.startswith("refused: "):
                raise UsageError(result[len("refused: "):])
            return result or "done"
        time.sleep(0.05)
    return (f"requested; study {record['name']!r} is driven by another process "
            f"(pid {record['pid']} on {record['host']}) and has not answered yet")


def _whole(value: Any, what: str) -> int:
    """An argument that must be a whole number (2 and "2" are; 2.5, "two" and True are not)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or number != value and str(number) != str(value).strip():
        raise UsageError(f"{what} must be a whole number, got {value!r}")
    return number


class StudyHandle:
    """Steer one study. Every call is recorded as an interaction."""

    def __init__(self, store: Store, name: str, source: str = "python"):
        self._store = store
        self.name = store.study(name)["name"]
        self._source = source

    def _send(self, action: str, **payload: Any) -> str:
        return send(self._store, self.name, action, payload, self._source)

    def pause(self) -> str:
        return self._send("pause")

    def resume(self) -> str:
        return self._send("resume")

    def stop(self) -> str:
        return self._send("stop")

    def add_trials(self, n: int) -> str:
        return self._send("budget", add=_whole(n, "the number of trials to add"))

    def set_budget(self, total: int) -> str:
        return self._send("budget", total=_whole(total, "the budget"))

    def set_space(self, param: str, low: float | None = None, high: float | None = None,
                  log: bool | None = None, choices: list | None = None) -> str:
        return self._send("space", param=param, low=low, high=high, log=log, choices=choices)

    def fix(self, param: str, value: Any) -> str:
        return self._send("fix", param=param, value=value)

    def enqueue(self, **params: Any) -> str:
        return self._send("enqueue", params=params)

    def cancel(self, position: int) -> str:
        """Remove queued configuration number ``position`` (1 = next)."""
        return self._send("cancel", index=_whole(position, "a queue position") - 1)

    def move(self, position: int, to: int) -> str:
        return self._send("reorder", index=_whole(position, "a queue position") - 1,
                          to=_whole(to, "a queue position") - 1)

    def approve(self, count: int | None = None) -> str:
        return self._send("approve", count=count)

    def reject(self, position: int) -> str:
        return self._send("reject", index=_whole(position, "a planned trial's position") - 1)

    def rate(self, trial: int, stars: int) -> str:
        return self._send("rate", trial=_whole(trial, "a trial number"), rating=_whole(stars, "a rating"))

    def lesson(self, text: str) -> str:
        return self._send("lesson", text=text)

    @property
    def controller(self) -> Any:
        return controllers.get(self.name)

    def wait(self, timeout: float | None = None) -> bool:
        """True once the study has finished or stopped. False after ``timeout`` seconds, or at
        once when it can only go on with you (paused, or trials await approval): it says which."""
        controller = self.controller
        if controller is None:
            raise UsageError(f"study {self.name!r} is not driven by this kernel")
        done = controller.wait(timeout)
        waiting = None if done else controller.waiting_for_person()
        if waiting is not None:
            print(f"xpmagic: study {self.name!r} waits for you: {waiting}", file=sys.stderr)
        return done

    @property
    def record(self) -> dict[str, Any]:
        return self._store.study(self.name)

    @property
    def state(self) -> str:
        return shown_state(self.record)[0]

    @property
    def best_params(self) -> dict[str, Any] | None:
        return self.record["best_params"]

    @property
    def best_value(self) -> float | None:
        return self.record["best_value"]

    @property
    def best_run(self) -> int | None:
        """The id of the run recorded for the best complete trial."""
        return self._store.best_trial_run(self.record["id"])

    def rerun_best(self, *, tolerance: float = 1e-9, trust: bool = False) -> Any:
        """Re-run the best trial as a single recorded run in a fresh kernel, with a verdict
        (the same as ``xpmagic replay NAME --best``)."""
        from ..replay import replay_target

        return replay_target(self._store, self.name, tolerance=tolerance, trust=trust, best=True)

    @property
    def interactions(self) -> list[dict[str, Any]]:
        return self._store.interactions(self.record["id"])

    def panel(self) -> Any:
        from ..widgets import StudyPanel

        controller = self.controller
        if controller is None:
            raise UsageError(f"study {self.name!r} is not driven by this kernel; steer it with xp.study()")
        return StudyPanel(controller)

    def __repr__(self) -> str:
        record = self.record
        return (f"<study {self.name}: {shown_state(record)[0]}, {record['n_done']} trials done, "
                f"best {record['best_value']}>")

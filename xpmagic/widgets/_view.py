"""What a study panel shows, computed from the controller (pure: tests check this, not pixels)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from html import escape
from typing import Any


@dataclass
class StudyView:
    name: str
    state: str
    message: str | None
    metric: str
    direction: str
    done: int
    running: int
    budget: int | None
    elapsed_s: float
    eta_s: float | None
    best_value: float | None
    best_params: dict[str, Any] | None
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (trial, value, best so far)
    rows: list[dict[str, Any]] = field(default_factory=list)
    queue: list[dict[str, Any]] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    lessons: list[str] = field(default_factory=list)

    def progress_text(self) -> str:
        budget = "∞" if self.budget is None else str(self.budget)
        parts = [f"{self.done}/{budget} trials", f"{self.running} running",
                 f"elapsed {_duration(self.elapsed_s)}"]
        if self.eta_s is not None:
            parts.append(f"about {_duration(self.eta_s)} left")
        if self.best_value is not None:
            parts.append(f"best {self.metric} {self.best_value:.6g}")
        return " · ".join(parts)


def study_view(controller: Any) -> StudyView:
    with controller._lock:
        trials = list(controller.trials)
        finished = [t for t in trials if t.state not in ("running", "cancelled")]
        running = [t for t in trials if t.state == "running"]
        best = controller.best()
        maximize = controller.config.direction == "maximize"
        history, best_so_far = [], None
        for t in sorted(finished, key=lambda t: t.number):
            if t.state != "complete" or t.value is None:
                continue
            if best_so_far is None or (t.value > best_so_far if maximize else t.value < best_so_far):
                best_so_far = t.value
            history.append((t.number, t.value, best_so_far))
        durations = [t.duration_s for t in finished if t.duration_s]
        eta = None
        if controller.budget is not None and durations and controller.state == "running":
            remaining = max(0, controller.budget - len(finished) - len(running))
            eta = remaining * (sum(durations) / len(durations)) / max(1, controller.config.jobs)
        return StudyView(
            name=controller.name, state=controller.state, message=controller.message,
            metric=controller.config.metric, direction=controller.config.direction,
            done=len(finished), running=len(running), budget=controller.budget,
            elapsed_s=time.time() - controller.started_at, eta_s=eta,
            best_value=None if best is None else best.value,
            best_params=None if best is None else best.params, history=history,
            rows=[{"trial": t.number, "state": t.state, "value": t.value, "params": t.params,
                   "duration_s": t.duration_s, "run": t.run_id, "rating": t.rating, "error": t.error}
                  for t in sorted(trials, key=lambda t: t.number)],
            queue=[dict(q) for q in controller.queue],
            planned=[dict(p) for _, p in controller.planned],
            params={n: s.to_dict() for n, s in controller.space.specs.items()},
            fixed=dict(controller.space.fixed), lessons=list(controller.lessons))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def history_svg(view: StudyView, width: int = 420, height: int = 150) -> str:
    """The optimization history: each trial's value and the best so far."""
    if not view.history:
        return (f"<svg width='{width}' height='{height}'>"
                "<text x='10' y='20' font-size='12'>no completed trial yet</text></svg>")
    numbers = [h[0] for h in view.history]
    values = [h[1] for h in view.history] + [h[2] for h in view.history]
    x0, x1 = min(numbers), max(numbers) if max(numbers) > min(numbers) else min(numbers) + 1
    y0, y1 = min(values), max(values) if max(values) > min(values) else min(values) + 1
    pad = 28

    def x(n: float) -> float:
        return pad + (n - x0) / (x1 - x0) * (width - 2 * pad)

    def y(v: float) -> float:
        return height - pad - (v - y0) / (y1 - y0) * (height - 2 * pad)

    dots = "".join(f"<circle cx='{x(n):.1f}' cy='{y(v):.1f}' r='3' fill='#1f77b4'/>"
                   for n, v, _ in view.history)
    line = " ".join(f"{x(n):.1f},{y(b):.1f}" for n, _, b in view.history)
    return (f"<svg width='{width}' height='{height}' class='xpmagic-history'>"
            f"<text x='{pad}' y='14' font-size='11'>{escape(view.metric)} by trial (line: best so far)</text>"
            f"<text x='2' y='{y(y1) + 4:.0f}' font-size='10'>{y1:.3g}</text>"
            f"<text x='2' y='{y(y0) + 4:.0f}' font-size='10'>{y0:.3g}</text>"
            f"<polyline points='{line}' fill='none' stroke='#d62728' stroke-width='1.5'/>{dots}</svg>")


def trials_table_html(view: StudyView, limit: int = 15) -> str:
    names = list(view.params)
    head = "".join(f"<th>{escape(h)}</th>" for h in ["trial", "state", view.metric, *names, "s", "run", "★"])
    body = []
    for row in view.rows[-limit:]:
        colour = {"complete": "#1a7f37", "failed": "#cf222e", "infeasible": "#9a6700",
                  "cancelled": "#57606a"}.get(row["state"], "#0969da")
        why = f" title='{escape(row['error'], quote=True)}'" if row.get("error") else ""
        cells = [row["trial"], f"<span style='color:{colour}'{why}>{row['state']}</span>", _fmt(row["value"]),
                 *[escape(_fmt(row["params"].get(n))) for n in names], _fmt(row["duration_s"]),
                 _fmt(row["run"]), _fmt(row["rating"])]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    table = f"<table class='xpmagic-trials'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return table + _last_failure_html(view)


def _last_failure_html(view: StudyView) -> str:
    """Why the latest failed trial failed: a red state alone sends people to %xp show."""
    failed = [row for row in view.rows if row["state"] == "failed" and row.get("error")]
    if not failed:
        return ""
    row = failed[-1]
    count = f"{len(failed)} failed trials; " if len(failed) > 1 else ""
    return (f"<div class='xpmagic-failure' style='color:#cf222e'>{count}trial {row['trial']} failed: "
            f"{escape(row['error'])} (details: <code>%xp show {row['run']}</code>)</div>")


def view_text(view: StudyView) -> str:
    lines = [f"study {view.name}: {view.state}" + (f" ({view.message})" if view.message else ""),
             view.progress_text()]
    if view.best_params:
        lines.append(f"best params: {view.best_params}")
    if view.planned:
        lines.append(f"waiting for approval: {view.planned}")
    return "\n".join(lines)

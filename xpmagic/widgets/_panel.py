"""The study panel: ipywidgets controls over a StudyController, rendered from a StudyView."""

from __future__ import annotations

import threading
import time
from html import escape
from typing import Any

import ipywidgets as w

from ..errors import XPError
from ._view import history_svg, study_view, trials_table_html

REFRESH_S = 1.0


def parse_config(text: str, coerce: Any) -> dict[str, Any]:
    """'C=1.0, kernel=rbf' -> {'C': 1.0, 'kernel': 'rbf'} typed like the parameters."""
    params = {}
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise XPError(f"write each value as name=value, got {part!r}")
        params[name.strip()] = coerce(name.strip(), value.strip())
    if not params:
        raise XPError("type a configuration such as C=1.0, gamma=0.01")
    return params


class StudyPanel(w.VBox):
    """Progress, history, trials and every control of one study."""

    def __init__(self, controller: Any):
        self.controller = controller
        self.header = w.HTML()
        self.progress = w.IntProgress(min=0, max=1, layout=w.Layout(width="60%"))
        self.progress_label = w.HTML()
        self.history = w.HTML()
        self.table = w.HTML()
        self.feedback = w.HTML()
        self.pause_button = w.Button(description="Pause", icon="pause")
        self.resume_button = w.Button(description="Resume", icon="play")
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="danger")
        self.add_count = w.BoundedIntText(value=10, min=1, max=100_000, layout=w.Layout(width="80px"))
        self.add_button = w.Button(description="Add trials", icon="plus")
        self.param_select = w.Dropdown(description="param", options=list(controller.space.specs))
        self.low = w.FloatText(description="low", layout=w.Layout(width="180px"))
        self.high = w.FloatText(description="high", layout=w.Layout(width="180px"))
        self.log_scale = w.Checkbox(description="log", indent=False, layout=w.Layout(width="60px"))
        self.apply_range = w.Button(description="Apply range")
        self.fix_value = w.Text(description="fix to", layout=w.Layout(width="200px"))
        self.fix_button = w.Button(description="Fix")
        self.config_text = w.Text(placeholder="C=1.0, gamma=0.01", description="config",
                                  layout=w.Layout(width="340px"))
        self.enqueue_button = w.Button(description="Enqueue", icon="list")
        self.queue_select = w.Select(options=[], rows=4, layout=w.Layout(width="340px"))
        self.up_button = w.Button(description="Up", icon="arrow-up")
        self.down_button = w.Button(description="Down", icon="arrow-down")
        self.cancel_button = w.Button(description="Cancel", icon="times")
        self.planned_html = w.HTML()
        self.approve_button = w.Button(description="Approve batch", icon="check", button_style="success")
        self.reject_select = w.Dropdown(description="reject", options=[])
        self.reject_button = w.Button(description="Reject")
        self.recommendation_html = w.HTML()
        self.apply_recommendation = w.Button(description="Apply", icon="check",
                                             tooltip="queue the recommended trials and narrow the space")
        self.ignore_recommendation = w.Button(description="Ignore", icon="times",
                                              tooltip="drop the recommended trials and restore the cell's space")
        self.rate_trial = w.BoundedIntText(description="trial", min=0, max=10**9,
                                           layout=w.Layout(width="160px"))
        self.rate_stars = w.Dropdown(description="stars", options=[1, 2, 3, 4, 5], value=3,
                                     layout=w.Layout(width="160px"))
        self.rate_button = w.Button(description="Rate", icon="star")
        self.lesson_text = w.Textarea(placeholder="What did this study teach?", layout=w.Layout(width="400px"))
        self.lesson_button = w.Button(description="Save lesson")
        self._wire()
        self.param_select.observe(lambda _: self._load_param(), names="value")
        self._load_param()
        super().__init__([
            self.header, w.HBox([self.progress, self.progress_label]), self.history, self.table,
            w.HBox([self.pause_button, self.resume_button, self.stop_button, self.add_count, self.add_button]),
            w.HTML("<b>Search space</b> (applies to trials not yet started)"),
            w.HBox([self.param_select, self.low, self.high, self.log_scale, self.apply_range]),
            w.HBox([self.fix_value, self.fix_button]),
            w.HTML("<b>Queue</b>"), w.HBox([self.config_text, self.enqueue_button]),
            w.HBox([self.queue_select, w.VBox([self.up_button, self.down_button, self.cancel_button])]),
            self.planned_html, w.HBox([self.approve_button, self.reject_select, self.reject_button]),
            self.recommendation_html, w.HBox([self.apply_recommendation, self.ignore_recommendation]),
            w.HTML("<b>Notes</b>"), w.HBox([self.rate_trial, self.rate_stars, self.rate_button]),
            w.HBox([self.lesson_text, self.lesson_button]), self.feedback,
        ])
        # A timer redraws the panel every REFRESH_S (not after every trial: re-rendering the
        # history after each of hundreds of fast trials made a study 30 % slower).
        self.refresh()
        threading.Thread(target=self._tick, name="xpmagic-panel", daemon=True).start()

    # -- actions -------------------------------------------------------------------
    def _wire(self) -> None:
        c = self.controller
        self.pause_button.on_click(lambda _: self._do("pause"))
        self.resume_button.on_click(lambda _: self._do("resume"))
        self.stop_button.on_click(lambda _: self._do("stop"))
        self.add_button.on_click(lambda _: self._do("budget", add=self.add_count.value))
        self.apply_range.on_click(lambda _: self._apply_range())
        self.fix_button.on_click(lambda _: self._do("fix", lambda: {
            "param": self.param_select.value,
            "value": c.space.coerce(self.param_select.value, self.fix_value.value)}))
        self.enqueue_button.on_click(lambda _: self._do("enqueue", lambda: {
            "params": parse_config(self.config_text.value, c.space.coerce)}))
        self.up_button.on_click(lambda _: self._move(-1))
        self.down_button.on_click(lambda _: self._move(+1))
        self.cancel_button.on_click(lambda _: self._do("cancel", index=self._queue_index()))
        self.approve_button.on_click(lambda _: self._do("approve"))
        self.apply_recommendation.on_click(lambda _: self._do("apply-recommendation"))
        self.ignore_recommendation.on_click(lambda _: self._do("ignore-recommendation"))
        self.reject_button.on_click(lambda _: self._do("reject", index=self.reject_select.index or 0))
        self.rate_button.on_click(lambda _: self._do(
            "rate", trial=self.rate_trial.value, rating=self.rate_stars.value))
        self.lesson_button.on_click(lambda _: self._do("lesson", text=self.lesson_text.value))

    def _do(self, action: str, read_inputs: Any = None, **payload: Any) -> None:
        """Apply an action; ``read_inputs`` parses typed fields, so their errors show here too."""
        try:
            if read_inputs is not None:
                payload.update(read_inputs())
            message = self.controller.apply(action, payload, source="panel")
            self.feedback.value = f"<span style='color:#1a7f37'>{escape(message)}</span>"
        except XPError as exc:
            self.feedback.value = f"<span style='color:#cf222e'>{escape(str(exc))}</span>"
        except Exception as exc:  # a widget callback must not hide a problem
            self.feedback.value = f"<span style='color:#cf222e'>{escape(type(exc).__name__)}: {escape(str(exc))}</span>"
        self.refresh()

    def _apply_range(self) -> None:
        spec = self.controller.space.specs.get(self.param_select.value)
        if spec is not None and spec.choices is not None:
            self.feedback.value = ("<span style='color:#cf222e'>a parameter with choices has no range;"
                                   " fix it instead</span>")
            return
        self._do("space", param=self.param_select.value, low=self.low.value, high=self.high.value,
                 log=self.log_scale.value)

    def _queue_index(self) -> int:
        return self.queue_select.index if self.queue_select.index is not None else 0

    def _move(self, step: int) -> None:
        index = self._queue_index()
        target = min(max(index + step, 0), max(len(self.controller.queue) - 1, 0))
        self._do("reorder", index=index, to=target)
        if self.queue_select.options:
            self.queue_select.index = target

    def _load_param(self) -> None:
        spec = self.controller.space.specs.get(self.param_select.value)
        if spec is not None and spec.low is not None:
            self.low.value, self.high.value, self.log_scale.value = spec.low, spec.high, spec.log

    # -- rendering -------------------------------------------------------------------
    def refresh(self) -> None:
        view = study_view(self.controller)
        colour = {"running": "#0969da", "paused": "#9a6700", "stopped": "#cf222e"}.get(view.state, "#1a7f37")
        message = f" — {escape(view.message)}" if view.message else ""
        self.header.value = (f"<b>{escape(view.name)}</b> · {view.direction} {escape(view.metric)} · "
                             f"<span style='color:{colour}'>{view.state}</span>{message}")
        self.progress.max = max(1, view.budget or view.done + view.running or 1)
        self.progress.value = min(view.done, self.progress.max)
        best = "" if not view.best_params else f"<br>best params: <code>{escape(str(view.best_params))}</code>"
        self.progress_label.value = escape(view.progress_text()) + best
        self.history.value = history_svg(view)
        self.table.value = trials_table_html(view)
        self.queue_select.options = [f"{i + 1}. {q}" for i, q in enumerate(view.queue)]
        self.planned_html.value = ("" if not view.planned else
                                   "<b>Waiting for your approval:</b><br>" +
                                   "<br>".join(f"{i + 1}. <code>{escape(str(p))}</code>"
                                               for i, p in enumerate(view.planned)))
        self.reject_select.options = [str(i + 1) for i in range(len(view.planned))]
        rec = self.controller.recommendation
        has_rec = rec is not None and not rec.empty
        self.recommendation_html.value = ("" if not has_rec else
                                          "<b>Recommended from the knowledge table</b><pre>"
                                          f"{escape(repr(rec))}</pre>")
        self.apply_recommendation.layout.display = None if has_rec else "none"
        self.ignore_recommendation.layout.display = None if has_rec else "none"
        self.approve_button.disabled = not view.planned
        self.pause_button.disabled = view.state != "running"
        self.resume_button.disabled = view.state != "paused"
        self.stop_button.disabled = view.state in ("stopped", "finished")

    def _tick(self) -> None:
        while self.controller.active:
            time.sleep(REFRESH_S)
            try:
                self.refresh()  # elapsed time and ETA move on even when no trial finished
            except Exception:
                return
        self.refresh()

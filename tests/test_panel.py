"""The study panel, driven headless: widget clicks go through the dummy comm."""

from __future__ import annotations

import time

import pytest
from test_optimize import SLOW, _stop_studies, wait_for  # noqa: F401  (fixture reused)

from conftest import run_ok
from xpmagic.widgets import history_svg, study_view


@pytest.fixture
def panel(shell):
    result = run_ok(shell, f"%%experiment panel --optimize score --trials 400\n{SLOW}")
    return result.result


def test_pause_resume_stop_buttons(panel):
    controller = panel.controller
    panel.pause_button.click()
    assert controller.state == "paused" and panel.resume_button.disabled is False
    assert "paused" in panel.header.value
    panel.resume_button.click()
    assert controller.state == "running"
    panel.stop_button.click()
    assert controller.state == "stopped" and panel.stop_button.disabled
    assert [i["source"] for i in panel.controller._store().interactions(controller.study_id)] == ["panel"] * 3


def test_add_trials_button(panel):
    panel.add_count.value = 25
    panel.add_button.click()
    assert panel.controller.budget == 425 and "425" in panel.progress_label.value


def test_space_editor_and_fix(panel):
    panel.param_select.value = "x"
    panel.low.value, panel.high.value, panel.log_scale.value = 0.5, 2.0, True
    panel.apply_range.click()
    spec = panel.controller.space.specs["x"]
    assert (spec.low, spec.high, spec.log) == (0.5, 2.0, True)
    panel.fix_value.value = "1.5"
    panel.fix_button.click()
    assert panel.controller.space.fixed == {"x": 1.5}
    first = len(panel.controller.trials)
    wait_for(lambda: len(panel.controller.finished_trials()) > first + 1)
    assert all(t.params["x"] == 1.5 for t in panel.controller.trials[first + 1:] if t.state == "complete")


def test_bad_range_is_shown_in_the_panel_not_raised(panel):
    panel.low.value, panel.high.value = 3.0, 1.0
    panel.apply_range.click()
    assert "must be below" in panel.feedback.value


def test_enqueue_reorder_and_cancel(panel):
    panel.pause_button.click()
    for value in ("0.1", "0.2", "0.3"):
        panel.config_text.value = f"x={value}"
        panel.enqueue_button.click()
    assert len(panel.queue_select.options) == 3
    panel.queue_select.index = 2
    panel.up_button.click()
    assert [q["x"] for q in panel.controller.queue] == [0.1, 0.3, 0.2]
    panel.queue_select.index = 0
    panel.cancel_button.click()
    assert [q["x"] for q in panel.controller.queue] == [0.3, 0.2]
    panel.config_text.value = "nonsense"
    panel.enqueue_button.click()
    assert "name=value" in panel.feedback.value


def test_rating_and_lesson(panel):
    wait_for(lambda: panel.controller.finished_trials())
    panel.rate_trial.value = panel.controller.finished_trials()[0].number
    panel.rate_stars.value = 5
    panel.rate_button.click()
    assert panel.controller.finished_trials()[0].rating == 5
    assert panel.controller.study.user_attrs["ratings"] == {str(panel.rate_trial.value): 5}
    panel.lesson_text.value = "small x is bad"
    panel.lesson_button.click()
    assert panel.controller.lessons == ["small x is bad"]
    assert panel.controller.study.user_attrs["lessons"] == ["small x is bad"]


def test_approval_panel(shell):
    result = run_ok(shell, f"%%experiment gated --optimize score --trials 4 --approve\n{SLOW}")
    panel = result.result
    wait_for(lambda: panel.controller.planned)
    panel.refresh()
    assert "Waiting for your approval" in panel.planned_html.value and not panel.approve_button.disabled
    panel.reject_select.value = "1"
    panel.reject_button.click()
    assert len(panel.controller.planned) == 2
    panel.approve_button.click()
    wait_for(lambda: len(panel.controller.finished_trials()) >= 2)
    wait_for(lambda: len(panel.controller.planned) == 2)  # a rejected trial does not use the budget
    assert [t.state for t in panel.controller.trials].count("cancelled") == 1


def test_view_model_and_history_plot(panel):
    wait_for(lambda: len(panel.controller.finished_trials()) >= 3)
    view = study_view(panel.controller)
    assert view.done >= 3 and view.budget == 400 and view.eta_s is not None
    bests = [b for _, _, b in view.history]
    assert bests == sorted(bests)  # maximizing: best so far never gets worse
    svg = history_svg(view)
    assert svg.count("<circle") == len(view.history) and "polyline" in svg
    time.sleep(0.01)


def test_the_panel_says_why_trials_failed(shell):
    result = run_ok(shell, "%%experiment typo --optimize score --trials 2\n"
                           "x = xp.param('x', 0.0, low=0.0, high=1.0)\nxp.log(scor=x)\n")
    panel = result.result
    wait_for(lambda: len(panel.controller.finished_trials()) == 2 and panel.controller.state == "finished")
    panel.refresh()
    assert "trial 1 failed: XPError: the cell did not log &#x27;score&#x27; with xp.log (it logged: scor)" \
        in panel.table.value
    assert "%xp show" in panel.table.value
    studies = repr(shell.run_line_magic("xp", "studies"))
    assert "typo: finished, 2/2 trials, no trial has logged score yet" in studies

"""MLOps phases through the magics and the CLI, with a controlled clock."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

import xpmagic.clock
from conftest import run_ok
from xpmagic.phases import PHASES, Span, compute_matrices


class FakeClock:
    def __init__(self):
        self.moment = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

    def now(self):
        return self.moment

    def advance(self, minutes: float) -> None:
        self.moment += timedelta(minutes=minutes)


@pytest.fixture
def fake_clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(xpmagic.clock, "now", fake.now)
    return fake


def at(clock, shell, minutes_from_start, line):
    target = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc) + timedelta(minutes=minutes_from_start)
    clock.moment = target
    return shell.run_line_magic("xp", line)


def log_worked_example(shell, clock):
    """shared/phases.md's worked example, as a person would log it."""
    run_ok(shell, "%config XPMagics.idle_cutoff_minutes = 0")
    at(clock, shell, 0, "phase data-preparation")
    at(clock, shell, 0, "revisit data-acquisition --reason missing-data")
    at(clock, shell, 60, "revisit problem-definition --reason requirement-clarification")
    at(clock, shell, 90, "revisit --end")
    at(clock, shell, 690, "phase model-development")
    at(clock, shell, 690, "revisit data-preparation --reason data-quality")
    at(clock, shell, 810, "revisit data-preparation --reason feature-engineering")
    at(clock, shell, 870, "revisit problem-definition --reason requirement-clarification")
    at(clock, shell, 900, "revisit --end")
    # a run tagged with another phase is a revisit lasting the run
    shell.user_ns["fake_clock"] = clock
    run_ok(shell, "%%experiment fetch --phase data-acquisition --reason missing-data\n"
                  "fake_clock.advance(90)\n")
    at(clock, shell, 1890, "phase model-deployment")
    at(clock, shell, 1890, "revisit model-development --reason performance-gap")
    at(clock, shell, 1950, "revisit data-preparation --reason training-serving-skew")
    at(clock, shell, 1980, "revisit governance-and-compliance --reason compliance")
    at(clock, shell, 2010, "revisit --end")
    at(clock, shell, 2310, "phase --end")


def row(matrices, key):
    i = matrices.phases.index(key)
    return {k: round(v, 3) for k, v in zip(matrices.phases, matrices.overlap[i]) if v}


def test_worked_example_through_the_magics(shell, fake_clock):
    log_worked_example(shell, fake_clock)
    report = shell.run_line_magic("xp", "phases")
    m = report.matrices
    assert row(m, "model-development") == {"problem-definition": 0.025, "data-acquisition": 0.075,
                                           "data-preparation": 0.150, "model-development": 0.750}
    assert m.iteration_index["model-development"] == pytest.approx(0.25)
    assert row(m, "data-preparation") == {"problem-definition": 0.043, "data-acquisition": 0.087,
                                          "data-preparation": 0.870}
    assert row(m, "model-deployment") == {"data-preparation": 0.071, "model-development": 0.143,
                                          "model-deployment": 0.714, "governance": 0.071}
    assert max(m.most_revisited, key=m.most_revisited.get) == "data-preparation"
    assert m.most_revisited["data-preparation"] == 3
    md, dp = m.phases.index("model-development"), m.phases.index("data-preparation")
    assert m.count[md][dp] == 2 and m.time_minutes[md][dp] == pytest.approx(180)
    assert {"from": "model-development", "to": "data-preparation", "reason": "data-quality",
            "count": 1} in m.reasons
    assert "data preparation" in m.summary() and "most revisited" in m.summary()
    html = report._repr_html_()
    assert "0.750" in html and "<svg" in html and "data-quality" in html


def test_result_does_not_depend_on_logging_order():
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    focus = [Span("model-development", t0, t0 + timedelta(minutes=600))]
    revisits = [Span(to, t0 + timedelta(minutes=s), t0 + timedelta(minutes=s + d), "model-development", r)
                for to, s, d, r in [("data-preparation", 0, 50, "data-quality"),
                                    ("data-acquisition", 60, 20, "missing-data"),
                                    ("problem-definition", 100, 10, "other")]]
    expected = compute_matrices(focus, revisits).to_dict()
    for seed in range(5):
        shuffled = revisits[:]
        random.Random(seed).shuffle(shuffled)
        assert compute_matrices(focus, shuffled).to_dict() == expected


def test_rows_without_time_are_zeros_never_nan(shell, fake_clock):
    log_worked_example(shell, fake_clock)
    data = shell.run_line_magic("xp", "phases").to_dict()
    for key, overlap_row in zip(data["phases"], data["overlap"]):
        assert all(not math.isnan(v) for v in overlap_row)
        if key in ("monitoring", "management", "scalability", "problem-definition"):
            assert overlap_row == [0.0] * len(PHASES)
    json.dumps(data, allow_nan=False)


def test_count_shares_when_no_durations_exist():
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    focus = [Span("monitoring", t0, t0)]
    revisits = [Span("data-preparation", t0, t0, "monitoring", "data-quality"),
                Span("model-development", t0, t0, "monitoring", "performance-gap"),
                Span("model-development", t0, t0, "monitoring", "performance-gap")]
    m = compute_matrices(focus, revisits)
    i = m.phases.index("monitoring")
    assert m.based_on == "count"
    assert m.overlap[i][m.phases.index("model-development")] == pytest.approx(2 / 3)
    assert m.summary().endswith("Model development is the most revisited phase (2 revisits).")
    tied = compute_matrices(focus, revisits[:2])
    assert tied.summary().endswith(
        "Data preparation and model development are the most revisited phases (1 revisit each).")


def test_idle_gaps_are_not_counted(shell, fake_clock):
    run_ok(shell, "%config XPMagics.idle_cutoff_minutes = 30")
    at(fake_clock, shell, 0, "phase monitoring")
    fake_clock.advance(10)
    run_ok(shell, "x = 1")  # activity at minute 10
    fake_clock.advance(120)  # a long break: no activity
    run_ok(shell, "x = 2")  # activity at minute 130
    fake_clock.advance(10)
    run_ok(shell, "%xp phase --end")  # minute 140
    m = shell.run_line_magic("xp", "phases").matrices
    i = m.phases.index("monitoring")
    assert m.time_minutes[i][i] == pytest.approx(20)
    run_ok(shell, "%config XPMagics.idle_cutoff_minutes = 0")
    m = shell.run_line_magic("xp", "phases").matrices
    assert m.time_minutes[i][i] == pytest.approx(140)


def test_a_long_running_cell_is_activity(shell, fake_clock):
    run_ok(shell, "%config XPMagics.idle_cutoff_minutes = 30")
    at(fake_clock, shell, 0, "phase model-development")
    shell.user_ns["fake_clock"] = fake_clock
    run_ok(shell, "fake_clock.advance(240)")  # a four-hour training cell
    run_ok(shell, "%xp phase --end")
    m = shell.run_line_magic("xp", "phases").matrices
    i = m.phases.index("model-development")
    assert m.time_minutes[i][i] == pytest.approx(240)


@pytest.mark.parametrize("line, expected", [
    ("phase nowhere", "valid phases: problem-definition"),
    ("phase model", "'model' could be model-deployment or model-development; give more of the name"),
    ("revisit data-preparation --reason because", "valid reasons: requirement-clarification"),
    ("revisit data-preparation", "needs a phase and --reason"),
    ("revisit --end", "no revisit is open"),
    ("reasons --add ''", "is not a reason code"),  # it listed the reasons as if nothing was asked
    ("phases --experiment nowhere", "no experiment 'nowhere'"),  # it showed every experiment's report
])
def test_unknown_phases_and_reasons_are_one_line(shell, fake_clock, capsys, line, expected):
    run_ok(shell, "%xp phase model-development")
    result = shell.run_cell(f"%xp {line}")
    assert not result.success
    out = capsys.readouterr().out
    assert expected in out and "Traceback" not in out


def test_the_names_the_report_shows_are_accepted_and_other_reasons_read_as_such(shell, fake_clock):
    """The heatmap labels phases 'preparation', 'acquisition': typing one back was refused."""
    run_ok(shell, "%config XPMagics.idle_cutoff_minutes = 0")
    at(fake_clock, shell, 0, "phase preparation")
    at(fake_clock, shell, 50, "revisit acquisition --reason other")
    at(fake_clock, shell, 60, "revisit --end")
    report = shell.run_line_magic("xp", "phases")
    assert report.matrices.count[report.matrices.phases.index("data-preparation")][
        report.matrices.phases.index("data-acquisition")] == 1
    assert "to data acquisition, mostly for other reasons." in report.matrices.summary()


def test_the_start_of_a_phase_name_is_enough_when_it_names_one_phase(shell, fake_clock):
    """'%xp phase prep' or '--phase dev' were refused as unknown phases."""
    for typed, key in (("prep", "data-preparation"), ("dev", "model-development"), ("deploy", "model-deployment"),
                       ("monitor", "monitoring"), ("gov", "governance")):
        assert f"({key})" in str(shell.run_line_magic("xp", f"phase {typed}")), typed
    run_ok(shell, "%%experiment fit --phase dev\nx = 1\n")
    assert shell.user_ns["xp"].get(1).phase == "model-development"


def test_teams_can_add_reason_codes(shell, fake_clock):
    run_ok(shell, "%xp reasons --add vendor-delay --description 'waiting on a vendor'")
    run_ok(shell, "%xp phase model-deployment")
    assert "vendor-delay" in repr(shell.run_line_magic("xp", "revisit data-acquisition --reason vendor-delay"))
    assert "vendor-delay" in repr(shell.run_line_magic("xp", "reasons"))
    assert repr(shell.run_line_magic("xp", "reasons --add vendor-delay")) == (
        "reason 'vendor-delay' already exists: waiting on a vendor")  # the description is kept
    assert repr(shell.run_line_magic("xp", "reasons --add 'Legal Review!'")) == "reason 'legal-review' added"
    assert "legal-review" in repr(shell.run_line_magic("xp", "revisit governance --reason 'legal review'"))


def test_filters_by_experiment_and_date(shell, fake_clock):
    log_worked_example(shell, fake_clock)
    m = shell.run_line_magic("xp", "phases --experiment fetch").matrices
    assert sum(map(sum, m.count)) == 1
    m = shell.run_line_magic("xp", "phases --until 2026-03-02T20:30").matrices  # first 690 minutes
    assert m.time_minutes[m.phases.index("model-development")] == [0.0] * len(PHASES)
    assert m.time_minutes[m.phases.index("data-preparation")][m.phases.index("data-preparation")] == 600
    before = shell.run_line_magic("xp", "phases --until 2020-01-01")
    assert before.to_dict()["summary"] == "No phase was in focus in the period, user or experiment asked for."


def test_cli_json_csv_and_plots(shell, fake_clock, db_path, tmp_path):
    log_worked_example(shell, fake_clock)
    exe = shutil.which("xpmagic", path=os.path.dirname(sys.executable))
    result = subprocess.run([exe, "phases", "--db", str(db_path), "--json", "--idle-cutoff", "0",
                             "--csv", str(tmp_path / "csv"), "--plot", str(tmp_path / "phases.png")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("phases", "count", "time_minutes", "overlap", "iteration_index", "most_revisited", "reasons"):
        assert key in data
    assert data["iteration_index"]["model-development"] == pytest.approx(0.25)
    assert (tmp_path / "csv" / "overlap.csv").read_text().startswith("focus,problem-definition")
    assert (tmp_path / "phases.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "phases.svg"
    subprocess.run([exe, "phases", "--db", str(db_path), "--plot", str(svg)], check=True, timeout=120,
                   capture_output=True)
    assert "<svg" in svg.read_text()[:500]


def test_people_sharing_a_database_are_tracked_and_filtered_apart(tmp_path, fake_clock):
    from xpmagic.phasetrack import PhaseFilter, PhaseTracker, build_report
    from xpmagic.store import Store

    store = Store(tmp_path / "team.db")
    alice = PhaseTracker(lambda: store, lambda: 0)
    bob = PhaseTracker(lambda: store, lambda: 0)
    alice.user, bob.user = "alice", "bob"
    alice.set_focus("model-development")
    bob.set_focus("monitoring")
    fake_clock.advance(60)
    alice.revisit("data-preparation", "data-quality", None)
    fake_clock.advance(30)
    alice.end_focus()
    bob.end_focus()
    assert alice.focus() is None and bob.focus() is None
    both = build_report(store, PhaseFilter(), 0).matrices
    only_bob = build_report(store, PhaseFilter(user="bob"), 0).matrices
    md, mon = both.phases.index("model-development"), both.phases.index("monitoring")
    assert sum(both.time_minutes[md]) == pytest.approx(90) and sum(both.time_minutes[mon]) == pytest.approx(90)
    assert sum(only_bob.time_minutes[md]) == 0 and sum(only_bob.time_minutes[mon]) == pytest.approx(90)


def test_a_run_shows_its_phase(shell):
    run_ok(shell, "%%experiment clean --phase 'data prep' --note 'dropped duplicates'\nx = 1\n")
    shown = shell.run_line_magic("xp", "show last")
    assert "  phase data-preparation" in repr(shown) and "  note dropped duplicates" in repr(shown)
    assert "<code>data-preparation</code>" in shown._repr_html_()

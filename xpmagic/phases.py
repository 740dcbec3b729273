"""MLOps phases (shared/phases.md): phase and reason keys, and the count, time and overlap matrices."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import UsageError

PHASES: dict[str, str] = {
    "problem-definition": "Problem definition",
    "data-acquisition": "Data acquisition",
    "data-preparation": "Data preparation",
    "model-development": "Model development",
    "model-deployment": "Model deployment",
    "monitoring": "Monitoring",
    "management": "Management",
    "scalability": "Scalability",
    "governance": "Governance and compliance",
}

# How the report's tables and plots name the phases; each is accepted as the phase too.
SHORT_NAMES = {"problem-definition": "problem", "data-acquisition": "acquisition",
               "data-preparation": "preparation", "model-development": "development",
               "model-deployment": "deployment", "monitoring": "monitoring", "management": "management",
               "scalability": "scalability", "governance": "governance"}

_ALIASES = {short: key for key, short in SHORT_NAMES.items()} | {
    "data-prep": "data-preparation",
    "data-preprocessing": "data-preparation",
    "model-dev": "model-development",
    "data-collection": "data-acquisition",
    "governance-and-compliance": "governance",
    "compliance": "governance",
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")


def normalize_phase(text: str) -> str:
    """The phase key for a spelling such as 'data prep' or 'Model Development'."""
    slug = _slug(text)
    if slug in PHASES:
        return slug
    if slug in _ALIASES:
        return _ALIASES[slug]
    for key, label in PHASES.items():
        if slug == _slug(label):
            return key
    started = _phases_starting(slug)
    if len(started) == 1:
        return started[0]
    if started:
        raise UsageError(f"{text!r} could be {' or '.join(started)}; give more of the name")
    raise UsageError(f"unknown phase {text!r}; valid phases: {', '.join(PHASES)}")


def _phases_starting(slug: str) -> list[str]:
    """Phases a word of whose names starts with ``slug``: 'prep', 'dev', 'deploy', 'monitor'."""
    if len(slug) < 3:
        return []
    names = [(key, name) for key in PHASES for name in (key, SHORT_NAMES[key], _slug(PHASES[key]))]
    names += list((key, alias) for alias, key in _ALIASES.items())
    return sorted({key for key, name in names if any(word.startswith(slug) for word in [name, *name.split("-")])})


REASONS: dict[str, str] = {
    "requirement-clarification": "requirements were unclear",
    "missing-data": "data was missing",
    "data-quality": "data quality problems",
    "feature-engineering": "features had to change",
    "label-issue": "labels were wrong or missing",
    "performance-gap": "the model did not perform well enough",
    "training-serving-skew": "training and serving disagreed",
    "infrastructure": "infrastructure problems",
    "scalability": "it did not scale",
    "compliance": "compliance or governance demands",
    "stakeholder-feedback": "stakeholders asked for changes",
    "bug-fix": "a bug had to be fixed",
    "other": "another reason",
}


def reason_code(text: str) -> str:
    """The code a reason is stored and looked up by: 'Legal review!' -> 'legal-review'."""
    code = _slug(text)
    if not code:
        raise UsageError(f"{text!r} is not a reason code: use letters, digits and dashes, e.g. legal-review")
    return code


def normalize_reason(text: str, team_reasons: dict[str, str | None] | None = None) -> str:
    """The reason code for text; the starter set plus codes the team added."""
    slug = _slug(text)
    valid = {**REASONS, **(team_reasons or {})}
    if slug in valid:
        return slug
    raise UsageError(f"unknown reason {text!r}; valid reasons: {', '.join(valid)}"
                     " (add one with %xp reasons --add CODE)")


# -- the matrices of shared/phases.md -----------------------------------------------

@dataclass(frozen=True)
class Span:
    """A focus period (from_phase None) or a revisit, with its start and end."""

    phase: str
    start: datetime
    end: datetime
    from_phase: str | None = None
    reason: str | None = None


def _merge(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def active_minutes(start: datetime, end: datetime,
                   activity: list[tuple[datetime, datetime]] | None) -> float:
    """Minutes of [start, end]; with activity intervals, only the part inside them."""
    if end <= start:
        return 0.0
    if activity is None:
        return (end - start).total_seconds() / 60
    seconds = 0.0
    for a, b in activity:
        overlap = (min(b, end) - max(a, start)).total_seconds()
        if overlap > 0:
            seconds += overlap
    return seconds / 60


@dataclass
class PhaseMatrices:
    phases: list[str]
    count: list[list[int]]
    time_minutes: list[list[float]]
    overlap: list[list[float]]
    iteration_index: dict[str, float]
    most_revisited: dict[str, int]
    reasons: list[dict[str, Any]]
    based_on: str  # "time" or "count"

    def to_dict(self) -> dict[str, Any]:
        return {"phases": self.phases, "count": self.count, "time_minutes": self.time_minutes,
                "overlap": self.overlap, "iteration_index": self.iteration_index,
                "most_revisited": self.most_revisited, "reasons": self.reasons,
                "overlap_based_on": self.based_on}

    def summary(self, narrowed: bool = False) -> str:
        """One paragraph on where rework comes from (``narrowed``: filters chose part of the record)."""
        keys = self.phases
        rows = [(i, 1 - self.overlap[i][i] if any(self.overlap[i]) else 0.0) for i in range(len(keys))]
        worked = [(i, idx) for i, idx in rows if any(self.time_minutes[i]) or any(self.count[i])]
        if not worked:
            if narrowed:
                return "No phase was in focus in the period, user or experiment asked for."
            return "No phase has been in focus yet: set one with %xp phase KEY (xpmagic phase KEY in a terminal)."
        sentences = []
        for i, idx in sorted(worked, key=lambda r: -r[1])[:3]:
            others = [(j, self.overlap[i][j]) for j in range(len(keys)) if j != i and self.overlap[i][j] > 0]
            if not others:
                sentences.append(f"{PHASES[keys[i]]} had no rework.")
                continue
            j, share = max(others, key=lambda o: o[1])
            reasons = [r for r in self.reasons if r["from"] == keys[i] and r["to"] == keys[j]]
            top = max(reasons, key=lambda r: r["count"])["reason"] if reasons else None
            because = (f", mostly for {top.replace('-', ' ')}" if top not in (None, "other")
                       else ", mostly for other reasons" if top else "")
            sentences.append(
                f"{idx:.0%} of {PHASES[keys[i]].lower()}'s effort went to other phases; most of it "
                f"({share:.0%} of the phase's effort) to {PHASES[keys[j]].lower()}{because}.")
        count = max(self.most_revisited.values(), default=0)
        if count:
            tied = [PHASES[k] if not i else PHASES[k].lower()
                    for i, k in enumerate(k for k, n in self.most_revisited.items() if n == count)]
            revisits = f"{count} revisit{'s' if count != 1 else ''}"
            sentences.append(f"{tied[0]} is the most revisited phase ({revisits})." if len(tied) == 1 else
                             f"{', '.join(tied[:-1])} and {tied[-1]} are the most revisited phases "
                             f"({revisits} each).")
        return " ".join(sentences)


def compute_matrices(focus: list[Span], revisits: list[Span],
                     activity: list[tuple[datetime, datetime]] | None = None) -> PhaseMatrices:
    """Count, time and overlap matrices (rows: phase in focus; columns: phase worked on).

    Independent of the order in which spans were logged. ``activity`` (merged internally)
    restricts minutes to active work; None counts wall-clock minutes.
    """
    keys = list(PHASES)
    index = {k: i for i, k in enumerate(keys)}
    n = len(keys)
    active = None if activity is None else _merge(activity)
    count = [[0] * n for _ in range(n)]
    time = [[0.0] * n for _ in range(n)]
    reasons: dict[tuple[str, str, str], int] = {}
    for span in focus:
        i = index[span.phase]
        time[i][i] += active_minutes(span.start, span.end, active)
    for span in sorted(revisits, key=lambda s: (s.start, s.phase)):
        i, j = index[span.from_phase], index[span.phase]
        if i == j:
            continue
        minutes = active_minutes(span.start, span.end, active)
        count[i][j] += 1
        time[i][j] += minutes
        time[i][i] -= minutes  # focus minutes include the revisits made from the focus
        key = (span.from_phase, span.phase, span.reason or "other")
        reasons[key] = reasons.get(key, 0) + 1
    time = [[max(0.0, v) if r == c else v for c, v in enumerate(row)] for r, row in enumerate(time)]
    has_time = any(v > 0 for row in time for v in row)
    overlap = [[0.0] * n for _ in range(n)]
    for i in range(n):
        source = time[i] if has_time else count[i]
        total = sum(source)
        if total > 0:
            overlap[i] = [v / total for v in source]
    return PhaseMatrices(
        phases=keys, count=count, time_minutes=time, overlap=overlap,
        iteration_index={k: (1 - overlap[i][i]) if sum(overlap[i]) > 0 else 0.0
                         for i, k in enumerate(keys)},
        most_revisited={k: sum(count[i][index[k]] for i in range(n)) for k in keys},
        reasons=[{"from": f, "to": t, "reason": r, "count": c}
                 for (f, t, r), c in sorted(reasons.items())],
        based_on="time" if has_time else "count")

"""Phase tracking for one session: the focus, revisits, and when the person was active.

Activity is kept as intervals in memory: a cell start within the idle cut-off of the
last activity extends the interval, a longer gap starts a new one; a running cell is
activity however long it runs. Intervals are written to the store now and then, and
whenever phases are queried.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import clock, procinfo
from .errors import UsageError
from .phases import PHASES, Span, compute_matrices, normalize_phase, normalize_reason
from .store import Store

_FLUSH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class PhaseFilter:
    user: str | None = None
    experiment: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class PhaseTracker:
    def __init__(self, store: Callable[[], Store], idle_cutoff_minutes: Callable[[], float]):
        self._store = store
        self._cutoff = idle_cutoff_minutes
        self.session = uuid.uuid4().hex
        self.user = procinfo.user()
        self.tracking: bool | None = None  # unknown until the store is first asked
        self._interval: list[datetime] | None = None
        self._flushed_at = clock.now()

    # -- activity --------------------------------------------------------------------
    def cell_started(self, at: datetime) -> None:
        cutoff = timedelta(minutes=self._cutoff())
        if self._interval is not None and at - self._interval[1] <= cutoff:
            self._interval[1] = max(self._interval[1], at)
            return
        self._flush()
        self._interval = [at, at]

    def cell_ended(self, at: datetime) -> None:
        if self._interval is None:
            self._interval = [at, at]
        self._interval[1] = max(self._interval[1], at)
        if at - self._flushed_at > _FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if self._interval is None or not self.tracking:
            return
        start, end = self._interval
        self._store().save_activity(self.session, clock.iso(start), clock.iso(end), self.user)
        self._flushed_at = clock.now()

    def ensure_known(self) -> bool:
        """Whether this person has a focus set (asked of the store once per session)."""
        if self.tracking is None:
            self.tracking = "focus" in self._store().open_phase_events(self.user)
        return self.tracking

    # -- focus and revisits -------------------------------------------------------------
    def focus(self) -> str | None:
        event = self._store().open_phase_events(self.user).get("focus")
        return None if event is None else event["phase"]

    def set_focus(self, text: str) -> str:
        phase = normalize_phase(text)
        now = clock.now()
        self.tracking = True
        self.cell_started(now)
        self._store().set_focus(phase, user=self.user, host=procinfo.host(), session=self.session,
                                at=clock.iso(now))
        self._flush()
        return f"focus: {PHASES[phase]} ({phase})"

    def end_focus(self) -> str:
        now = clock.now()
        self._store().end_focus(user=self.user, at=clock.iso(now))
        self._flush()
        return "no phase in focus"

    def revisit(self, text: str, reason: str, note: str | None) -> str:
        store = self._store()
        focus = self.focus()
        if focus is None:
            raise UsageError("a revisit needs a phase in focus first: %xp phase KEY")
        phase = normalize_phase(text)
        if phase == focus:
            raise UsageError(f"{phase} is the phase in focus; a revisit goes to another phase")
        code = normalize_reason(reason, store.team_reasons())
        now = clock.now()
        self.cell_started(now)
        store.open_revisit(phase, focus, code, note, user=self.user, host=procinfo.host(),
                           session=self.session, at=clock.iso(now))
        self._flush()
        return f"revisiting {PHASES[phase]} from {PHASES[focus]} ({code})"

    def end_revisit(self) -> str:
        if not self._store().end_revisit(user=self.user, at=clock.iso()):
            raise UsageError("no revisit is open")
        self._flush()
        return "revisit ended"

    def run_finished(self, phase: str | None, started_at: str, ended_at: str, run_id: int,
                     experiment: str, reason: str | None = None) -> None:
        """An experiment cell tagged with another phase than the focus is a revisit."""
        if phase is None or not self.ensure_known():
            return
        focus = self.focus()
        if focus is None or focus == phase:
            return
        store = self._store()
        code = normalize_reason(reason, store.team_reasons()) if reason else "other"
        store.add_run_revisit(
            phase, focus, started_at=started_at, ended_at=ended_at, run_id=run_id,
            experiment=experiment, reason=code, user=self.user, host=procinfo.host(),
            session=self.session)

    # -- the report -----------------------------------------------------------------------
    def report(self, filters: PhaseFilter) -> Any:
        self._flush()
        current = [tuple(self._interval)] if self._interval is not None else []
        return build_report(self._store(), filters, self._cutoff(), current)


def build_report(store: Store, filters: PhaseFilter, idle_cutoff_minutes: float,
                 extra_activity: list | None = None) -> Any:
    """The phase report from the store; minutes count only active work when the cut-off is on."""
    from .display_phases import PhaseReport

    now = clock.now()
    any_user = filters.user is None
    focus, revisits = [], []
    for event in store.phase_events(filters.user, any_user=any_user):
        span = _clip(Span(event["phase"], clock.parse(event["started_at"]),
                          clock.parse(event["ended_at"]) if event["ended_at"] else now,
                          event["from_phase"], event["reason"]), filters)
        if span is None:
            continue
        if event["kind"] == "focus":
            focus.append(span)
        elif filters.experiment is None or event["experiment"] == filters.experiment:
            revisits.append(span)
    activity = None
    if idle_cutoff_minutes > 0:
        activity = [(clock.parse(a), clock.parse(b))
                    for a, b in store.activity(filters.user, any_user=any_user)]
        activity += list(extra_activity or [])
    return PhaseReport(compute_matrices(focus, revisits, activity), focus, revisits, filters)


def _clip(span: Span, filters: PhaseFilter) -> Span | None:
    start = max(span.start, filters.since) if filters.since else span.start
    end = min(span.end, filters.until) if filters.until else span.end
    if end < start:
        return None
    return Span(span.phase, start, end, span.from_phase, span.reason)

"""Store methods for MLOps phase tracking: focus periods, revisits, reasons, activity."""

from __future__ import annotations

from typing import Any

_EVENT_COLUMNS = ("id", "kind", "phase", "from_phase", "started_at", "ended_at", "reason", "note",
                  "run_id", "experiment", "user", "host", "session")


class PhasesMixin:
    """Mixed into Store: needs ``conn`` and ``_write``."""

    def _close_open(self, conn: Any, user: str | None, kinds: tuple[str, ...], at: str) -> None:
        conn.execute(
            f"UPDATE phase_events SET ended_at = ? WHERE ended_at IS NULL AND user IS ?"
            f" AND kind IN ({','.join('?' * len(kinds))})", (at, user, *kinds))

    def set_focus(self, phase: str, *, user: str | None, host: str, session: str, at: str) -> None:
        """A new focus closes the open focus and any open revisit of this person."""
        with self._write() as conn:
            self._close_open(conn, user, ("focus", "revisit"), at)
            conn.execute("INSERT INTO phase_events (kind, phase, started_at, user, host, session)"
                         " VALUES ('focus', ?, ?, ?, ?, ?)", (phase, at, user, host, session))

    def end_focus(self, *, user: str | None, at: str) -> None:
        with self._write() as conn:
            self._close_open(conn, user, ("focus", "revisit"), at)

    def open_revisit(self, phase: str, from_phase: str, reason: str, note: str | None, *,
                     user: str | None, host: str, session: str, at: str) -> None:
        with self._write() as conn:
            self._close_open(conn, user, ("revisit",), at)
            conn.execute(
                "INSERT INTO phase_events (kind, phase, from_phase, started_at, reason, note, user,"
                " host, session) VALUES ('revisit', ?, ?, ?, ?, ?, ?, ?, ?)",
                (phase, from_phase, at, reason, note, user, host, session))

    def end_revisit(self, *, user: str | None, at: str) -> bool:
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE phase_events SET ended_at = ? WHERE ended_at IS NULL AND user IS ?"
                " AND kind = 'revisit'", (at, user))
        return cursor.rowcount > 0

    def add_run_revisit(self, phase: str, from_phase: str, *, started_at: str, ended_at: str,
                        run_id: int, experiment: str, reason: str, user: str | None, host: str,
                        session: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO phase_events (kind, phase, from_phase, started_at, ended_at, reason,"
                " note, run_id, experiment, user, host, session)"
                " VALUES ('revisit', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (phase, from_phase, started_at, ended_at, reason, f"run {run_id}", run_id,
                 experiment, user, host, session))

    def open_phase_events(self, user: str | None) -> dict[str, dict[str, Any]]:
        """This person's open focus and open revisit, by kind."""
        cursor = self.conn.execute(
            f"SELECT {', '.join(_EVENT_COLUMNS)} FROM phase_events"
            " WHERE ended_at IS NULL AND user IS ? ORDER BY id", (user,))
        return {row[1]: dict(zip(_EVENT_COLUMNS, row)) for row in cursor.fetchall()}

    def phase_events(self, user: str | None = None, any_user: bool = True) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(_EVENT_COLUMNS)} FROM phase_events"
        args: tuple = ()
        if not any_user:
            sql += " WHERE user IS ?"
            args = (user,)
        return [dict(zip(_EVENT_COLUMNS, row)) for row in self.conn.execute(sql + " ORDER BY id", args)]

    def add_reason(self, code: str, description: str | None, at: str) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO phase_reasons (code, description, added_at)"
                         " VALUES (?, ?, ?)", (code, description, at))

    def team_reasons(self) -> dict[str, str | None]:
        return dict(self.conn.execute("SELECT code, description FROM phase_reasons ORDER BY code"))

    def save_activity(self, session: str, started_at: str, ended_at: str, user: str | None) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO activity (session, started_at, ended_at, user)"
                         " VALUES (?, ?, ?, ?)", (session, started_at, ended_at, user))

    def activity(self, user: str | None = None, any_user: bool = True) -> list[tuple[str, str]]:
        sql = "SELECT started_at, ended_at FROM activity"
        args: tuple = ()
        if not any_user:
            sql += " WHERE user IS ?"
            args = (user,)
        return self.conn.execute(sql + " ORDER BY started_at", args).fetchall()

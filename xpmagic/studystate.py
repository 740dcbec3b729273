"""A study's state as people should see it.

The database keeps the state the driving kernel last wrote. A kernel killed mid-study never
writes again, so its study would show 'running' forever: on this machine, where its pid can be
checked, such a study is shown as interrupted, with the way to go on.
"""

from __future__ import annotations

from typing import Any

from . import procinfo


def shown_state(record: dict[str, Any]) -> tuple[str, str | None]:
    """(state, message) of a study record (with its host, pid, pid_started and message)."""
    if record["state"] == "running" and driver_gone(record):
        return "interrupted", (f"its kernel (pid {record['pid']}) exited; run its cell again with --resume "
                               "to continue")
    return record["state"], record["message"]


def driver_gone(record: dict[str, Any]) -> bool:
    """Whether the process that drove the study, on this machine, has exited (elsewhere: unknown)."""
    if record["host"] != procinfo.host() or record["pid"] is None:
        return False
    return not procinfo.is_alive(record["pid"], record["pid_started"])

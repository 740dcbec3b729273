"""The runs as a terminal table (`xpmagic runs`): read from the records, no DataFrame.

pandas took half a second to import for a command people run all day, and printed NaN for
every metric a run did not log. Here a missing value is blank, a duration reads as one, and
in a terminal the columns wrap in blocks that fit its width, each block led by the run id
(as pandas wraps); piped, each run stays on one line for grep and awk.
"""

from __future__ import annotations

from typing import Any

from .clock import duration_text
from .queries import natural_order
from .records import Run

_TEXT_WIDTH = 30  # longer text values (a tag list, a path) are cut, ending in …
_GAP = "  "


def runs_table(runs: list[Run], width: int | None = None) -> str:
    """The table of runs, newest first as listed; wrapped to ``width`` columns if given."""
    columns = _columns(runs)
    cells = [[name for name, _ in columns]] + [[_cell(get(run)) for _, get in columns] for run in runs]
    numeric = [name == "duration" or all(_is_number(get(run)) for run in runs if get(run) is not None)
               for name, get in columns]  # right-aligned
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    blocks = _blocks(widths, width)
    lines: list[str] = []
    for block in blocks:
        if lines:
            lines.append("")
        chosen = [0] + [i for i in block if i != 0]
        for number, row in enumerate(cells):
            lines.append(_line(row, chosen, widths, numeric))
            if number == 0:
                lines.append(_GAP.join("-" * widths[i] for i in chosen))
    return "\n".join(lines)


def _columns(runs: list[Run]) -> list[tuple[str, Any]]:
    params = sorted({name for run in runs for name in run.params}, key=natural_order)
    metrics = sorted({name for run in runs for name in run.metrics}, key=natural_order)
    return ([("id", lambda run: run.id), ("experiment", lambda run: run.experiment),
             ("status", lambda run: run.status), ("started_at", lambda run: _whole_seconds(run.started_at)),
             ("duration", lambda run: None if run.duration_s is None else duration_text(run.duration_s))]
            + [(f"params.{name}", lambda run, n=name: run.params.get(n)) for name in params]
            + [(f"metrics.{name}", lambda run, n=name: run.metrics.get(n)) for name in metrics])


def _whole_seconds(started_at: str | None) -> str | None:
    """'2026-11-25T14:22:14.174+00:00' as '2026-11-25 14:22:14' (UTC, as recorded)."""
    return None if not started_at else started_at[:19].replace("T", " ")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value).replace("\n", " ")
    return text if len(text) <= _TEXT_WIDTH else text[:_TEXT_WIDTH - 1] + "…"


def _blocks(widths: list[int], width: int | None) -> list[list[int]]:
    """Column indexes in blocks that fit ``width`` with the id column in front of each."""
    if width is None:
        return [list(range(len(widths)))]
    blocks: list[list[int]] = []
    current: list[int] = []
    used = widths[0]
    for i in range(1, len(widths)):
        if current and used + len(_GAP) + widths[i] > width:
            blocks.append(current)
            current, used = [], widths[0]
        current.append(i)
        used += len(_GAP) + widths[i]
    return blocks + [current] if current else blocks or [[0]]


def _line(row: list[str], chosen: list[int], widths: list[int], numeric: list[bool]) -> str:
    return _GAP.join(row[i].rjust(widths[i]) if numeric[i] else row[i].ljust(widths[i]) for i in chosen).rstrip()

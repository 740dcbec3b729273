"""Which recording each run of a replayed notebook is compared with.

A notebook often runs one experiment from several cells (a baseline, then variations), so "the
latest run of the experiment" would compare every cell with whichever ran last. A replayed run
is compared with the latest recording of its own cell: the same code (the j-th of k cells with
one code with the j-th of that code's last k recordings). A cell edited since it was recorded
has no such recording: it is compared with the latest recording of its experiment that no other
cell was matched with, and its verdict says the code changed.
"""

from __future__ import annotations

from collections import Counter


def match_recordings(replays: list[tuple[int, str, str]], recorded: list[tuple[int, str, str]]) -> dict[int, int]:
    """Replayed id -> the id of the recording it is compared with. Both lists hold (id, experiment,
    code) in the order they ran (runs, or studies with the code of their cell); one with nothing
    to compare with is left out."""
    by_code: dict[str, list[int]] = {}
    for recorded_id, _, code in recorded:
        by_code.setdefault(_cell(code), []).append(recorded_id)
    cells = Counter(_cell(code) for _, _, code in replays)
    seen: Counter[str] = Counter()
    matched: dict[int, int] = {}
    for replay_id, _, replay_code in replays:
        code = _cell(replay_code)
        originals = by_code.get(code, [])[-cells[code]:]
        missing = cells[code] - len(originals)  # fewer recordings than cells: the last cells have them
        occurrence = seen[code]
        seen[code] += 1
        if occurrence >= missing:
            matched[replay_id] = originals[occurrence - missing]
    used = set(matched.values())
    for replay_id, experiment, _ in replays:
        if replay_id in matched:
            continue
        latest = next((recorded_id for recorded_id, recorded_experiment, _ in reversed(recorded)
                       if recorded_experiment == experiment and recorded_id not in used), None)
        if latest is not None:
            matched[replay_id] = latest
            used.add(latest)
    return matched


def _cell(code: str | None) -> str:
    return (code or "").strip()

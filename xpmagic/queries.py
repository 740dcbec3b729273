"""Read-side views of the store: run tables, run diffs and lineage trees.

Each function computes a plain info object first; ``display.py`` renders it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from .bindings import bindings_of, setup_code
from .fingerprint import booster_hashing_differs, digests_comparable, sampling_differs
from .records import Run
from .store import Store

_MISSING = object()


def run_summary_dict(run: Run) -> dict[str, Any]:
    """The JSON shape of a run in listings (``xpmagic runs --json``)."""
    return {
        "id": run.id, "uuid": run.uuid, "experiment": run.experiment, "status": run.status,
        "params": run.params, "metrics": run.metrics, "started_at": run.started_at,
        "ended_at": run.ended_at, "duration_s": run.duration_s, "seed": run.seed,
        "tags": run.tags, "notebook": run.notebook, "cell_id": run.cell_id,
    }


def run_detail_dict(run: Run) -> dict[str, Any]:
    """The JSON shape of one run in full (``xpmagic show --json``)."""
    data = run_summary_dict(run)
    data.update({
        "code": run.code, "code_hash": run.code_hash,
        "error": None if run.error is None else {
            "type": run.error.type, "message": run.error.message,
            "traceback": run.error.traceback},
        "stdout": run.stdout, "stderr": run.stderr, "result": run.result, "note": run.note,
        "phase": run.phase, "env": run.env, "git": run.git, "inputs": run.inputs,
        "outputs": run.outputs, "unhashed": run.unhashed, "settings": run.settings, "lineage": run.lineage,
        "imports": run.imports,
        "definitions": run.definitions, "local_code": run.local_code, "datasets": run.datasets,
        "artifacts": run.artifacts, "displays": run.displays, "param_specs": [s.to_dict() for s in run.param_specs],
        "host": run.host, "user": run.user, "fingerprint_scheme": run.fingerprint_scheme,
        "study": run.study, "trial_number": run.trial_number, "replay_of": run.replay_of,
    })
    return data


def natural_order(name: str) -> list:
    """Sort key that puts layer_2 before layer_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def runs_frame(store: Store, experiment: str | None = None, limit: int | None = None) -> Any:
    """One row per run; params as ``params.NAME`` and metrics as ``metrics.NAME`` columns."""
    import pandas

    runs = store.list_runs(experiment, limit)
    rows = []
    for run in runs:
        row = {"id": run.id, "experiment": run.experiment, "status": run.status,
               "started_at": run.started_at, "duration_s": run.duration_s}
        row.update({f"params.{k}": v for k, v in run.params.items()})
        row.update({f"metrics.{k}": v for k, v in run.metrics.items()})
        rows.append(row)
    columns = ["id", "experiment", "status", "started_at", "duration_s"]
    frame = pandas.DataFrame(rows, columns=columns + sorted(
        {k for row in rows for k in row} - set(columns), key=natural_order))
    # Times to filter and plot by (frame[frame.started_at > "2026-11-01"]), in UTC as recorded.
    frame["started_at"] = pandas.to_datetime(frame["started_at"], utc=True, format="ISO8601")
    return frame.set_index("id")


@dataclass
class Change:
    """One value that differs between two runs (``_MISSING`` shows as absent)."""

    name: str
    a: Any
    b: Any

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "a": _jsonable(self.a), "b": _jsonable(self.b)}

    @property
    def only_in_a(self) -> bool:
        return self.b is _MISSING

    @property
    def only_in_b(self) -> bool:
        return self.a is _MISSING


def _jsonable(value: Any) -> Any:
    return None if value is _MISSING else value


@dataclass
class RunDiff:
    a: Run
    b: Run
    code_diff: str
    params: list[Change] = field(default_factory=list)
    metrics: list[Change] = field(default_factory=list)
    datasets: list[Change] = field(default_factory=list)
    inputs: list[Change] = field(default_factory=list)
    settings: list[Change] = field(default_factory=list)  # "cv.n_splits": a configuration object's field
    local_code: list[Change] = field(default_factory=list)  # module -> sha256 of its source
    environment: list[Change] = field(default_factory=list)
    git: list[Change] = field(default_factory=list)
    displays: list[Change] = field(default_factory=list)  # "1 image/png": what the cell displayed (sha256)
    other: list[Change] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.code_diff or any(getattr(self, name) for name in DIFF_SECTIONS))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"a": self.a.id, "b": self.b.id, "code_diff": self.code_diff}
        data.update({name: [c.to_dict() for c in getattr(self, name)] for name in DIFF_SECTIONS})
        return data


DIFF_SECTIONS = ("params", "metrics", "datasets", "inputs", "settings", "local_code", "environment", "git", "displays",
                 "other")


def compare_mappings(a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
    names = sorted(set(a) | set(b))
    return [Change(n, a.get(n, _MISSING), b.get(n, _MISSING))
            for n in names if a.get(n, _MISSING) != b.get(n, _MISSING)]


def diff_runs(store: Store, a_id: int, b_id: int) -> RunDiff:
    a, b = store.get_run(a_id), store.get_run(b_id)
    code_diff = _unified(a.code, b.code, f"run {a.id}", f"run {b.id}")
    setup_a, setup_b = setup_code([bindings_of(a)]), setup_code([bindings_of(b)])
    if setup_a != setup_b:  # a helper edited in a plain cell: the same cell, other results
        what = "imports and definitions it read"
        code_diff = "\n".join(part for part in (code_diff, _unified(
            setup_a, setup_b, f"run {a.id} ({what})", f"run {b.id} ({what})")) if part)
    local_a, local_b = _local_versions(a), _local_versions(b)
    local_code = compare_mappings(local_a, local_b)
    paths = {m["module"]: m["path"] for m in (*a.local_code, *b.local_code)}
    for change in local_code:  # a helper edited in its own file: show the edit
        before, after = (store.code_source(v) if isinstance(v, str) else "" for v in (change.a, change.b))
        if before is not None and after is not None:
            where = paths[change.name]
            code_diff = "\n".join(part for part in (code_diff, _unified(
                before, after, f"run {a.id} ({where})", f"run {b.id} ({where})")) if part)
    return RunDiff(
        a=a, b=b, code_diff=code_diff,
        params=compare_mappings(a.params, b.params),
        metrics=compare_mappings(a.metrics, b.metrics),
        datasets=_data_changes(compare_mappings({d["name"]: d["fingerprint"] for d in a.datasets},
                                                {d["name"]: d["fingerprint"] for d in b.datasets}), a, b),
        inputs=_data_changes(compare_mappings(a.inputs, b.inputs), a, b),
        settings=_setting_changes(a, b),
        local_code=local_code,
        environment=_environment_changes(a.env, b.env),
        git=compare_mappings(a.git or {}, b.git or {}),
        displays=compare_mappings(*({f"{d['position']} {d['mime']}": d["sha256"][:12] for d in run.displays}
                                    for run in (a, b))),
        other=compare_mappings(*({"seed": run.seed, "experiment": run.experiment,
                                  "fingerprint scheme": run.fingerprint_scheme} for run in (a, b))),
    )


def _setting_changes(a: Run, b: Run) -> list[Change]:
    """The fields of configuration objects both runs had (`cv.n_splits: 5 -> 10`)."""
    changes = []
    for name in sorted(set(a.settings) & set(b.settings)):
        before, after = a.settings[name], b.settings[name]
        if before.get("type") != after.get("type"):
            changes.append(Change(f"{name} (class)", before.get("type"), after.get("type")))
        changes += [Change(f"{name}.{c.name}", c.a, c.b)
                    for c in compare_mappings(before.get("fields", {}), after.get("fields", {}))]
    return changes


def _data_changes(changes: list[Change], a: Run, b: Run) -> list[Change]:
    """Digests made another way (``other`` shows the fingerprint scheme changed) are no change
    of the data: only what one run has and the other lacks is."""
    if digests_comparable(a.fingerprint_scheme, b.fingerprint_scheme):
        return comparable_changes(changes, a, b)
    return [c for c in changes if c.only_in_a or c.only_in_b]


def comparable_changes(changes: list[Change], a: Run, b: Run) -> list[Change]:
    """Without a value a run's xpmagic could not hash (`None`: a pandas index before scheme 3),
    when the other run's could, or with a large value sampled another way (before scheme 6), or an
    XGBoost or LightGBM model hashed without its booster (before 7): that is no evidence the value changed."""
    if a.fingerprint_scheme == b.fingerprint_scheme:
        return changes
    resampled = set(a.sampled + b.sampled) if sampling_differs(a.fingerprint_scheme, b.fingerprint_scheme) else set()
    if booster_hashing_differs(a.fingerprint_scheme, b.fingerprint_scheme):
        resampled |= set(a.boosted + b.boosted)
    return [c for c in changes if c.a is not None and c.b is not None and c.name not in resampled]


def _local_versions(run: Run) -> dict[str, str]:
    return {m["module"]: m["sha256"] for m in run.local_code}


def _unified(a: str, b: str, a_name: str, b_name: str) -> str:
    # Lines without their endings: a cell's last line has none, and would run into the next line of the diff.
    return "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(), fromfile=a_name, tofile=b_name,
                                         lineterm=""))


def _environment_changes(a: dict | None, b: dict | None) -> list[Change]:
    a, b = a or {}, b or {}
    changes = compare_mappings({k: a.get(k) for k in ("python", "platform")},
                               {k: b.get(k) for k in ("python", "platform")})
    packages = compare_mappings(a.get("packages", {}), b.get("packages", {}))
    return changes + [Change(f"package {c.name}", c.a, c.b) for c in packages]


@dataclass
class LineageNode:
    run_id: int
    experiment: str
    status: str
    via: list[str] = field(default_factory=list)
    sources: list[LineageNode] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run_id, "experiment": self.experiment, "status": self.status,
                "via": self.via, "sources": [s.to_dict() for s in self.sources]}


def lineage_tree(store: Store, run_id: int, max_depth: int = 20) -> LineageNode:
    """The runs whose outputs this run read, recursively (each run expanded once)."""
    root_run = store.get_run(run_id)
    root = LineageNode(run_id, root_run.experiment, root_run.status)
    seen = {run_id}
    frontier = [(root, 0)]
    while frontier:
        node, depth = frontier.pop()
        if depth >= max_depth:
            continue
        by_source: dict[int, list[str]] = {}
        for source, variable in store.lineage_edges(node.run_id):
            by_source.setdefault(source, []).append(variable)
        for source, variables in sorted(by_source.items()):
            run = store.list_runs_by_ids([source])[0]
            child = LineageNode(source, run.experiment, run.status, variables)
            node.sources.append(child)
            if source not in seen:
                seen.add(source)
                frontier.append((child, depth + 1))
    return root

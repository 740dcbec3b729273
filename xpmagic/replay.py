"""Replay: rebuild notebooks from the records, run them in a fresh kernel, and explain.

For a run, the notebook holds the cells of the runs it read from (found through
lineage, in the order they ran) and then its own cell, each preceded by
``xp.next_run(params=..., replay_of=...)`` so it gets the recorded parameters and
is linked to its original. Each replayed run gets a verdict: reproduced (metrics
equal within the tolerance), differs (which metrics) or failed (cell and error),
and for anything not reproduced, what changed since the original.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import procinfo
from .artifactguard import ArtifactGuard
from .bindings import bindings_of, setup_code
from .errors import MissingDependency, UsageError, XPError
from .fingerprint import digests_comparable
from .queries import Change, comparable_changes, compare_mappings
from .recorder import split_cell
from .records import Run
from .redaction import REDACTED
from .replaymatch import match_recordings
from .store import Store
from .studyverdict import study_verdicts

CELL_TIMEOUT_S = 3600
_FINISH_STUDIES = f"""\
import sys as _xp_sys
for _xp_study in list(getattr(_xp_sys.modules.get("xpmagic.optimize"), "controllers", {{}}).values()):
    _xp_study.wait({CELL_TIMEOUT_S})
"""


@dataclass
class Verdict:
    run: int | None
    replay_run: int | None
    experiment: str
    verdict: str  # reproduced, differs, failed; "recorded" when there was nothing to compare with
    differences: list[dict[str, Any]] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- building notebooks ------------------------------------------------------------------

def upstream_runs(store: Store, run_id: int) -> list[Run]:
    """The run and every recorded run it (transitively) read from, in the order they ran."""
    seen: set[int] = set()
    frontier = [run_id]
    while frontier:
        current = frontier.pop()
        if current in seen:
            continue
        seen.add(current)
        frontier += store.lineage_sources(current)
    return [store.get_run(i) for i in sorted(seen)]




def renamed_inputs(store: Store, runs: list[Run]) -> dict[int, list[tuple[str, str]]]:
    """Per upstream run, the (name read, name written) pairs of values a later run read under
    another name than the one the upstream run wrote them as (lineage matches by fingerprint:
    `df = pd.read_csv(...)` in a plain cell reads what a recorded run wrote as `raw`)."""
    by_id = {run.id: run for run in runs}
    renamed: dict[int, list[tuple[str, str]]] = {}
    for reader in runs:
        for source_id, name in store.lineage_edges(reader.id):
            source, wanted = by_id.get(source_id), reader.inputs.get(name)
            if source is None or wanted is None or source.outputs.get(name) == wanted:
                continue
            written = next((n for n, digest in source.outputs.items() if digest == wanted), None)
            if written is not None:
                renamed.setdefault(source_id, []).append((name, written))
    return renamed


def alias_code(pairs: list[tuple[str, str]], source_id: int) -> str:
    return "\n".join(f"{read} = {written}  # read as {read!r}; run {source_id} wrote it as {written!r}"
                      for read, written in sorted(set(pairs)))


def magic_line(run: Run) -> str:
    """The %%experiment line that records a run like this one (optimization options dropped)."""
    parts = ["%%experiment", shlex.quote(run.experiment)]
    if run.seed is not None:
        parts += ["--seed", str(run.seed)]
    for tag in run.tags:
        if not tag.startswith(("study:", "trial:")):
            parts += ["--tag", shlex.quote(tag)]
    return " ".join(parts)


def notebook_format(feature: str = "replay") -> Any:
    """nbformat, from the `notebook` extra: a plain `pip install xpmagic` records without it."""
    try:
        import nbformat
    except ImportError:
        raise MissingDependency("nbformat", feature, extra="notebook") from None
    return nbformat


def rebuild_notebook(store: Store, run_id: int, *, parameters_cell: bool = False) -> Any:
    nbformat = notebook_format()
    new_code_cell, new_markdown_cell, new_notebook = (nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell,
                                                      nbformat.v4.new_notebook)

    runs = upstream_runs(store, run_id)
    target = runs[-1]
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["xpmagic"] = {"replay_of": run_id, "database": str(store.path)}
    upstream = ", ".join(f"run {r.id} ({r.experiment})" for r in runs[:-1]) or "no earlier run"
    nb.cells.append(new_markdown_cell(
        f"Rebuilt by xpmagic from run {target.id} of **{target.experiment}**, "
        f"with the recorded cells it read from: {upstream}."))
    nb.cells.append(new_code_cell("%load_ext xpmagic"))
    setup = setup_code([bindings_of(run) for run in runs])
    if setup:  # what the runs read from modules and the notebook's own definitions: plain cells
        nb.cells.append(new_code_cell(setup, metadata={"xpmagic": {"setup": True}}))
    if parameters_cell:
        lines = [f"{name} = {value!r}" for name, value in sorted(_replayable(target.params).items())]
        nb.cells.append(new_code_cell("\n".join(lines) or "# no parameters",
                                      metadata={"tags": ["parameters"]}))
    renamed = renamed_inputs(store, runs)
    for run in runs:
        if parameters_cell and run is target:
            params = "dict(" + ", ".join(f"{n}={n}" for n in sorted(_replayable(run.params))) + ")"
        else:
            params = repr(_replayable(run.params))
        nb.cells.append(new_code_cell(f"xp.next_run(params={params}, replay_of={run.id})",
                                      metadata={"xpmagic": {"setup_for": run.id}}))
        _, body = split_cell(run.code)
        nb.cells.append(new_code_cell(f"{magic_line(run)}\n{body}", metadata={"xpmagic": {"run": run.id}}))
        if run.id in renamed:
            nb.cells.append(new_code_cell(alias_code(renamed[run.id], run.id),
                                          metadata={"xpmagic": {"aliases_of": run.id}}))
    nbformat.validate(nb)
    return nb


# -- executing ---------------------------------------------------------------------------

@dataclass
class Execution:
    failure: dict[str, Any] | None  # cell index, error type and message of the first failing cell
    cells_run: int


def execute(nb: Any, cwd: str, db_path: Path, progress: Callable[[int, int], None] | None = None) -> Execution:
    """Run a notebook cell by cell in a fresh kernel that records into db_path."""
    try:
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
    except ImportError:
        raise MissingDependency("nbclient", "replay", extra="notebook") from None
    nbformat = notebook_format()

    env = {**os.environ, "XPMAGIC_DB": str(db_path)}
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S, allow_errors=False,
                            resources={"metadata": {"path": cwd}},
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    done = 0
    with client.setup_kernel(env=env):
        for index in code_cells:
            try:
                client.execute_cell(nb.cells[index], index)
            except CellExecutionError as exc:
                return Execution({"cell": index, "type": exc.ename, "message": exc.evalue}, done)
            done += 1
            if progress is not None:
                progress(done, len(code_cells))
        # A study the notebook left running in the background would be cut short by the kernel's
        # shutdown: let it finish (one waiting for a person's approval or resume returns at once).
        nb.cells.append(nbformat.v4.new_code_cell(_FINISH_STUDIES))
        try:
            client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
        finally:
            nb.cells.pop()
    return Execution(None, done)


# -- comparing ---------------------------------------------------------------------------

def values_match(a: float | None, b: float | None, tolerance: float) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def _replayable(params: dict[str, Any]) -> dict[str, Any]:
    """The recorded parameters a replay sets: a redacted secret is left to the cell's own default."""
    return {name: value for name, value in params.items() if value != REDACTED}


def _dataset_change(change: Change) -> str:
    if change.only_in_a:
        return (f"data set {change.name!r} was not recorded in the replay "
                "(the cell ended before its xp.dataset call, or no longer makes it)")
    if change.only_in_b:
        return f"data set {change.name!r} is recorded in the replay only"
    return f"data set {change.name!r} fingerprint changed: {change.a} -> {change.b}"


def explain(original: Run, replay: Run | None) -> list[str]:
    """What changed since the original run: the usual suspects, most likely first."""
    changes: list[str] = []
    unseeded = ("the original run set no seed: if it uses randomness, results can change "
                "(use %%experiment --seed N)")
    if replay is None:
        return changes + ([unseeded] if original.seed is None else [])
    if original.code_hash != replay.code_hash:
        changes.append("code changed")
    originals = {d["name"]: d["fingerprint"] for d in original.datasets}
    if same_fingerprints(original, replay):
        datasets = compare_mappings(originals, {d["name"]: d["fingerprint"] for d in replay.datasets})
        for change in comparable_changes(datasets, original, replay):
            changes.append(_dataset_change(change))
        for change in comparable_changes(compare_mappings(original.inputs, replay.inputs), original, replay):
            if change.name not in originals:
                changes.append(_input_change(change, original))
    else:
        changes.append(_older_fingerprints(original, replay))
    replayed = {m["module"]: m["sha256"] for m in replay.local_code}
    for module in original.local_code:  # only modules both loaded: a session's others are no cause
        if replayed.get(module["module"], module["sha256"]) != module["sha256"]:
            what = (f"script {module['path']}" if module["module"].startswith("%run ")
                    else f"local module {module['module']} ({module['path']})")
            changes.append(f"{what} changed since the original (xpmagic diff {original.id} {replay.id} shows how)")
    env_a, env_b = original.env or {}, replay.env or {}
    if env_a.get("python") != env_b.get("python"):
        changes.append(f"Python {env_a.get('python')} -> {env_b.get('python')}")
    for change in compare_mappings(env_a.get("packages", {}), env_b.get("packages", {})):
        # Only versions: which packages a session happened to import (pytest, ipykernel) is noise.
        if not (change.only_in_a or change.only_in_b):
            changes.append(f"package {change.name} {change.a} -> {change.b}")
    commit_a = (original.git or {}).get("commit")
    commit_b = (replay.git or {}).get("commit")
    if commit_a and commit_b and commit_a != commit_b:
        changes.append(f"git commit {commit_a[:10]} -> {commit_b[:10]}")
    if original.seed is None:
        changes.append(unseeded)
    return changes


def same_fingerprints(a: Run, b: Run) -> bool:
    """Whether the two runs' digests can be compared: made the same way (fingerprint.SCHEME)."""
    return digests_comparable(a.fingerprint_scheme, b.fingerprint_scheme)


def _older_fingerprints(original: Run, replay: Run) -> str:
    return (f"the original's data and values were fingerprinted another way (xpmagic's scheme "
            f"{original.fingerprint_scheme}, now {replay.fingerprint_scheme}): only metrics are compared")


def _input_change(change: Any, original: Run) -> str:
    if change.only_in_a:
        where = (f"replay the notebook instead: xpmagic replay {shlex.quote(original.notebook)}"
                 if original.notebook and original.notebook.endswith(".ipynb")
                 else "replay its notebook instead")
        return (f"input {change.name!r} was not defined in the replay: no recorded run it read from wrote it "
                f"(it came from a cell run without %%experiment); record that cell with %%experiment, or {where}")
    if change.only_in_b:
        return f"input {change.name!r} was read only in the replay"
    return f"input {change.name!r} changed: {change.a} -> {change.b}"


def verdict_for(original: Run, replay: Run | None, tolerance: float,
                failure: dict[str, Any] | None, holding_records: frozenset[str] = frozenset()) -> Verdict:
    """``holding_records``: artifact paths that hold the database (`xp.artifact('.')`), whose
    content changes with every run recorded."""
    if replay is None or replay.status != "ok":
        error = failure
        if replay is not None and replay.error is not None:
            error = {"cell": (failure or {}).get("cell"), "type": replay.error.type,
                     "message": replay.error.message}
        if error is None:
            error = {"cell": None, "type": "NotRun", "message": "an earlier cell failed"}
        changes = explain(original, replay)
        if original.status == "failed" and original.error is not None:
            before = f"{original.error.type}: {original.error.message}"
            if (original.error.type, original.error.message) == (error["type"], error["message"]):
                # What the run recorded was this failure (a cell showing an error on purpose): reproduced.
                return Verdict(original.id, None if replay is None else replay.id, original.experiment,
                               "reproduced", changes=[f"it failed as the original run did ({before})"])
            changes.insert(0, f"the original run failed too, with {before}")
        return Verdict(original.id, None if replay is None else replay.id, original.experiment,
                       "failed", error=error, changes=changes)
    differences = [
        {"metric": name, "old": value, "new": replay.metrics.get(name)}
        for name, value in original.metrics.items()
        if not values_match(value, replay.metrics.get(name), tolerance)]
    # A run whose results are values, not metrics, differs when those values do (when both
    # were fingerprinted alike: an older xpmagic hashed some values another way).
    differences += [
        {"output": c.name, "old": c.a, "new": c.b}
        for c in comparable_changes(compare_mappings(original.outputs, replay.outputs), original, replay)
        if isinstance(c.a, str) and isinstance(c.b, str) and same_fingerprints(original, replay)]
    artifacts, artifact_notes = artifact_differences(original, replay, holding_records)
    differences += artifacts
    artifact_notes += display_notes(original, replay)
    if not differences:
        return Verdict(original.id, replay.id, original.experiment, "reproduced",
                       changes=artifact_notes + ([] if same_fingerprints(original, replay)
                                                 else [_older_fingerprints(original, replay)]))
    return Verdict(original.id, replay.id, original.experiment, "differs", differences,
                   artifact_notes + explain(original, replay))


def display_notes(original: Run, replay: Run) -> list[str]:
    """What the cell displayed that looks otherwise in the replay: said, not counted as a
    difference, since a figure's pixels also follow fonts and backend settings, and a display
    of a time or a progress line differs in every run."""
    if not original.displays or not replay.displays:
        return []  # recorded before xpmagic kept displays, or nothing displayed
    before = {(d["position"], d["mime"]): d["sha256"] for d in original.displays}
    after = {(d["position"], d["mime"]): d["sha256"] for d in replay.displays}
    changed = [f"{position} ({mime})" for (position, mime), sha in sorted(before.items())
               if (position, mime) in after and after[(position, mime)] != sha]
    if not changed:
        return []
    return [f"display {', '.join(changed)} looks otherwise than the original's (xpmagic show {replay.id} lists it; "
            "a figure's pixels also follow fonts and backend settings)"]


# Formats that write their creation time into the file: other bytes are no other result.
_TIMESTAMPED = (".pdf", ".svg", ".eps", ".ps")


def artifact_differences(original: Run, replay: Run,
                         holding_records: frozenset[str] = frozenset()) -> tuple[list[dict[str, Any]], list[str]]:
    """Artifacts the replay wrote with other content (by SHA-256), and notes on those whose
    content cannot tell: a format that embeds the time it was written (a figure saved as PDF
    differs every time), a folder that holds the database."""
    replayed = {a["name"]: a for a in replay.artifacts}
    differences, notes = [], []
    for before in original.artifacts:
        after = replayed.get(before["name"])
        if after is None or after["sha256"] == before["sha256"]:
            continue
        if before["path"] in holding_records:
            notes.append(f"artifact {before['name']!r} holds the database, which every run changes: not compared")
            continue
        if before["path"].lower().endswith(_TIMESTAMPED):
            notes.append(f"artifact {before['name']!r} has other bytes, as a {Path(before['path']).suffix} file "
                         f"does each time it is written (it holds its creation time): compare it by eye: "
                         f"{after['path']}")
            continue
        difference = {"artifact": before["name"], "old": before["sha256"], "new": after["sha256"]}
        if after["path"] != before["path"]:  # kept aside (artifactguard.py): yours is where it was
            difference["replay_file"] = after["path"]
        differences.append(difference)
    return differences, notes


# -- the two kinds of target ---------------------------------------------------------------

def check_trust(store: Store, trust: bool) -> None:
    info = store.db_info()
    by, on = info.get("created_by"), info.get("created_on")
    if trust or (by == procinfo.user() and on == procinfo.host()):
        return
    raise UsageError(
        f"{store.path} was created by {by or 'an unknown user'} on {on or 'an unknown machine'}; "
        "replay runs the code stored in it. Read it first (xpmagic show RUN), then pass --trust")


def replay_run(store: Store, run_id: int, *, tolerance: float = 1e-9, trust: bool = False,
               progress: Callable[[int, int], None] | None = None) -> list[Verdict]:
    check_trust(store, trust)
    originals = upstream_runs(store, run_id)
    nb = rebuild_notebook(store, run_id)
    before = store.max_run_id()
    cwd = _working_folder(originals[-1])
    with ArtifactGuard((a["path"] for run in originals for a in run.artifacts), store.path.parent,
                       replay_databases(store.path)) as guard:
        execution = execute(nb, cwd, store.path, progress)
    point_at_kept_files(store, before, guard.kept)
    replays: dict[int, Run] = {}
    for new_id in store.run_ids():
        if new_id <= before:
            break
        run = store.get_run(new_id)
        if run.replay_of is not None:
            replays[run.replay_of] = run
    return [verdict_for(o, replays.get(o.id), tolerance, execution.failure, frozenset(guard.holding_records))
            for o in originals]


def replay_notebook(store: Store, path: str, *, tolerance: float = 1e-9, trust: bool = False,
                    progress: Callable[[int, int], None] | None = None) -> list[Verdict]:
    """Run a notebook top to bottom; compare each experiment run with the latest recording of its
    cell (replaymatch.py)."""
    nbformat = notebook_format()
    check_trust(store, trust)
    notebook_path = Path(path).resolve()
    if not notebook_path.is_file():
        raise UsageError(f"no notebook at {notebook_path}")
    try:
        nb = nbformat.read(str(notebook_path), as_version=4)
    except Exception as exc:
        raise UsageError(f"{notebook_path} is not a readable notebook: {exc}") from None
    if not any(cell.cell_type == "code" and any(line.lstrip().startswith("%%experiment")
                                                for line in cell.source.splitlines())
               for cell in nb.cells):
        raise UsageError(f"{notebook_path} has no %%experiment cells: nothing to replay and compare")
    before = store.max_run_id()
    studies_before = max((s["id"] for s in store.studies()), default=0)
    with ArtifactGuard(store.artifact_paths(_experiments_in(nb)), store.path.parent,
                       replay_databases(store.path)) as guard:
        execution = execute(nb, str(notebook_path.parent), store.path, progress)
    point_at_kept_files(store, before, guard.kept)
    verdicts = []
    replays = [run for run in (store.get_run(i) for i in sorted(i for i in store.run_ids() if i > before))
               if run.trial_number is None]
    originals = match_recordings([(r.id, r.experiment, r.code) for r in replays],
                                 store.recorded_cells(before, sorted({r.experiment for r in replays})))
    for replay in replays:
        new_id = replay.id
        original_id = originals.get(new_id)
        if original_id is None:
            verdicts.append(Verdict(None, new_id, replay.experiment,
                                    "failed" if replay.status != "ok" else "recorded",
                                    changes=["no earlier recording of this experiment to compare with"]))
            continue
        store.set_replay_of(new_id, original_id)
        verdicts.append(verdict_for(store.get_run(original_id), replay, tolerance, execution.failure,
                                    frozenset(guard.holding_records)))
    verdicts += study_verdicts(store, studies_before, tolerance,  # trials are compared study by study
                               frozenset(guard.holding_records))
    if execution.failure is not None and not any(v.verdict == "failed" for v in verdicts):
        verdicts.append(Verdict(None, None, "(notebook)", "failed", error=execution.failure))
    return verdicts


def replay_databases(db_path: Path) -> list[Path]:
    """The files a replay writes its records into: the database and its Optuna storage, with
    their journals."""
    from .optimize._storage import optuna_path

    files = [db_path, optuna_path(db_path)]
    return files + [f.with_name(f.name + suffix) for f in files for suffix in ("-wal", "-shm", "-journal")]


def point_at_kept_files(store: Store, after_run: int, kept: dict[str, str]) -> None:
    """The replay's runs record their artifacts where the replay's versions now are."""
    if kept:
        store.move_artifacts(after_run, kept)


def _experiments_in(nb: Any) -> list[str]:
    names = []
    for cell in nb.cells:
        first = cell.source.lstrip().split("\n", 1)[0] if cell.cell_type == "code" else ""
        if first.startswith("%%experiment"):
            try:
                words = shlex.split(first)
            except ValueError:
                continue
            names += [w for w in words[1:2] if not w.startswith("-")]
    return names


def _working_folder(run: Run) -> str:
    if run.notebook and os.path.isabs(run.notebook) and os.path.isdir(os.path.dirname(run.notebook)):
        return os.path.dirname(run.notebook)
    return os.getcwd()


def best_trial_of(store: Store, study: str) -> int:
    """The run of the best trial of a study (or of an experiment's latest study)."""
    record = store.study(study)
    run_id = store.best_trial_run(record["id"])
    if run_id is None:
        raise UsageError(f"study {record['name']!r} has no complete trial yet")
    return run_id


def resolve_target(store: Store, target: str, all_runs: bool = False,
                   best: bool = False) -> tuple[str, list[int]]:
    """('notebook', []) for a notebook path, else ('runs', run ids) for an id, experiment or study."""
    if best:
        return "runs", [best_trial_of(store, target)]
    if target.endswith(".ipynb"):
        return "notebook", []
    if target.isdigit():
        store.get_run(int(target))
        return "runs", [int(target)]
    runs = [r for r in store.list_runs(target) if r.trial_number is None]
    # The runs a person recorded, not earlier replays of them (replaying twice would replay the replay)
    ids = [r.id for r in runs if r.replay_of is None] or [r.id for r in runs]
    if not ids:
        raise UsageError(f"{target!r} is not a run id, an experiment with runs, or a .ipynb file")
    return "runs", sorted(ids) if all_runs else [ids[0]]


class ReplayReport:
    """The verdicts, as a table."""

    def __init__(self, verdicts: list[Verdict]):
        self.verdicts = verdicts

    @property
    def ok(self) -> bool:
        return bool(self.verdicts) and all(v.verdict == "reproduced" for v in self.verdicts)

    def to_dict(self) -> list[dict[str, Any]]:
        return [v.to_dict() for v in self.verdicts]

    def __repr__(self) -> str:
        lines = []
        for v in self.verdicts:
            head = f"run {v.run} -> {v.replay_run} ({v.experiment}): {v.verdict.upper()}"
            lines.append(head)
            for d in v.differences:
                lines.append(f"    {_difference_name(d)}: {_short(d['old'])} -> {_short(d['new'])}")
                if d.get("replay_file"):
                    lines.append(f"      (the replay's version: {d['replay_file']}; yours is unchanged)")
            if v.error:
                lines.append(f"    {_failed_where(v.error)}{v.error['type']}: {v.error['message']}")
            for change in v.changes:
                lines.append(f"    {_change_label(v)}: {change}")
        total = len(self.verdicts)
        good = sum(v.verdict == "reproduced" for v in self.verdicts)
        lines.append(f"{good}/{total} reproduced")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        colour = {"reproduced": "#1a7f37", "differs": "#9a6700", "failed": "#cf222e", "recorded": "#57606a"}
        rows = []
        for v in self.verdicts:
            detail = "<br>".join(
                [f"{escape(_difference_name(d))}: {_short(d['old'])} → {_short(d['new'])}"
                 + (f" (the replay's version: {escape(d['replay_file'])}; yours is unchanged)"
                    if d.get("replay_file") else "")
                 for d in v.differences]
                + ([f"{_failed_where(v.error)}{escape(v.error['type'])}: {escape(str(v.error['message']))}"]
                   if v.error else [])
                + [f"{_change_label(v)}: {escape(c)}" for c in v.changes])
            rows.append(f"<tr><td>{v.run}</td><td>{v.replay_run}</td><td>{escape(v.experiment)}</td>"
                        f"<td style='color:{colour[v.verdict]}'><b>{v.verdict}</b></td><td>{detail}</td></tr>")
        return ("<table><tr><th>run</th><th>replay</th><th>experiment</th><th>verdict</th><th>why</th></tr>"
                + "".join(rows) + "</table>")


def _change_label(verdict: Verdict) -> str:
    """What changed, for a run that did not reproduce; a note (a display that looks otherwise, a
    failure reproduced) for one that did."""
    return "note" if verdict.verdict == "reproduced" else "changed"


def _failed_where(error: dict[str, Any]) -> str:
    """'cell 7: ' where the notebook stopped; nothing for a cell allowed to raise, which did not stop it."""
    return "" if error.get("cell") is None else f"cell {error['cell']}: "


def _short(value: Any) -> Any:
    """A SHA-256 is long: its start tells two files apart."""
    return value[:16] if isinstance(value, str) and len(value) == 64 else value


def _difference_name(difference: dict[str, Any]) -> str:
    if "artifact" in difference:
        return f"artifact {difference['artifact']}"
    return difference.get("metric") or f"output {difference['output']}"


def replay_target(store: Store, target: str, *, tolerance: float, trust: bool, all_runs: bool = False,
                  best: bool = False, progress: Callable[[int, int], None] | None = None) -> ReplayReport:
    """Replay a notebook, a run, an experiment's latest run(s), or (best=True) a study's best trial
    as a single recorded run: the optimization options are dropped and the trial's params fixed."""
    kind, ids = resolve_target(store, target, all_runs, best)
    try:
        if kind == "notebook":
            return ReplayReport(replay_notebook(store, target, tolerance=tolerance, trust=trust,
                                                progress=progress))
        verdicts: list[Verdict] = []
        for run_id in ids:
            verdicts += replay_run(store, run_id, tolerance=tolerance, trust=trust, progress=progress)
        return ReplayReport(verdicts)
    except XPError:
        raise
    except RuntimeError as exc:  # a kernel that would not start
        raise XPError(f"replay could not run a kernel: {exc}") from None

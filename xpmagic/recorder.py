"""Runs one ``%%experiment`` cell as a recorded run.

The cell's first line is rewritten (see ``magics.experiment_transformer``) into
a call to ``Recorder.begin``, so the body runs as ordinary cell code: its
exception reaches the user exactly as without the magic, with the line numbers
of the cell as shown. ``post_run_cell`` then ends the run. Nested ``run_cell``
calls fire the cell events again, so runs are tied to the nesting depth.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from . import clock
from .api import XPHandle, describe_other_xp
from .bindings import Bindings, bindings_for
from .capture import NameUse, TeeStream, cell_name_use, routed_streams
from .clock import duration_text
from .displaycapture import DisplayTap
from .environment import EnvironmentTracker
from .errors import DatabaseLocked, UsageError, XPError
from .fingerprint import Fingerprint, fingerprint, is_recordable, is_weak_for_lineage
from .gitstate import GitStateWriter
from .knowledge import constructed_model_family, model_family_of, rows_for_run
from .localcode import LocalCodeTracker, LocalModule, autoreload_of, scripts_run_by
from .phases import normalize_reason
from .phasetrack import PhaseTracker
from .records import ErrorInfo, NewRun, RunOutcome, RunStatus, VariableRecord
from .run import ActiveRun
from .seeding import seed_everything
from .store import Store, utc_now

MAGIC_PREFIX = "%%experiment"
_MAX_RESULT_REPR = 2_000
_INTERNAL_NAMES = frozenset({"xp", "In", "Out", "get_ipython", "exit", "quit", "open"})


@dataclass(frozen=True)
class ExperimentArgs:
    """The parsed arguments of one ``%%experiment`` line."""

    name: str
    seed: int | None = None
    tags: tuple[str, ...] = ()
    note: str | None = None
    phase: str | None = None
    output_var: str | None = None
    optimize: Any = None  # an optimize.StudyConfig when the cell is an optimization
    reason: str | None = None  # why a --phase run revisits that phase


@dataclass(frozen=True)
class CaptureSettings:
    max_output_chars: int = 100_000
    max_display_bytes: int = 5_000_000
    capture_variables: bool = True
    capture_output: bool = True
    sample_bytes: int = 8 * 1024 * 1024
    record_git: bool = True
    show_summary: bool = True
    idle_cutoff_minutes: float = 30.0


@dataclass
class _CellRun:
    """Book-keeping of the run the current cell is executing."""

    run: ActiveRun
    args: ExperimentArgs
    depth: int
    started: float
    settings: CaptureSettings
    store: Store
    names: NameUse
    inputs: dict[str, Fingerprint] = field(default_factory=dict)
    lineage: list[tuple[int, str]] = field(default_factory=list)
    bindings: Bindings = field(default_factory=Bindings)
    stdout: TeeStream | None = None
    stderr: TeeStream | None = None
    displays: DisplayTap | None = None
    failed_at: float | None = None
    started_at: str = ""
    git_state: dict[str, Any] | None = None
    scripts: list[LocalModule] = field(default_factory=list)  # what its %run lines run, read as it starts
    stop_seeding: Callable[[], None] = lambda: None  # --seed: seeding a library the cell imports (seeding.py)


def code_hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def split_cell(raw_cell: str) -> tuple[str, str]:
    """(magic line arguments, body) of a ``%%experiment`` cell; cell magics stacked above
    it (``%%time``) are not part of the body."""
    rest = raw_cell.lstrip()
    while True:
        first, _, body = rest.partition("\n")
        if first.startswith(MAGIC_PREFIX) or not first.startswith("%%") or not body:
            return first[len(MAGIC_PREFIX):].strip(), body
        rest = body


def python_of(body: str) -> str:
    """The Python a body runs: a cell magic stacked below ``%%experiment`` runs the rest."""
    if body.startswith("%%"):
        return body.partition("\n")[2]
    return body


class Recorder:
    """Owns the cell hooks and the run in progress of one IPython shell."""

    def __init__(self, shell: Any, store: Callable[[], Store],
                 settings: Callable[[], CaptureSettings],
                 display: Callable[[Any], None], knowledge: Callable[[], Store] | None = None):
        self.shell = shell
        self._store = store
        self._knowledge = knowledge or store
        self._settings = settings
        self._display = display
        self.handle: XPHandle | None = None  # the session's `xp` (set when the extension loads)
        self.environment = EnvironmentTracker()
        self.local_code = LocalCodeTracker(autoreload_of(shell))
        self.phases = PhaseTracker(store, lambda: self._settings().idle_cutoff_minutes)
        self.git = GitStateWriter(self._attach_git)
        self.foreground: ActiveRun | None = None
        self._depth = 0
        self._raw_cells: list[str] = []
        self._cell_ids: list[str | None] = []
        self._cell: _CellRun | None = None
        self._produced: dict[str, tuple[str, int]] = {}
        # Values no run had written when last looked up. A run of this session that writes one
        # updates _produced; another process writing the same content later is not seen.
        self._no_producer: set[str] = set()
        self.last_run_id: int | None = None
        # Set by xp.next_run (replay): parameter values and the original of the next run.
        self.next_run: dict[str, Any] = {}
        # Writes of finished runs another program's lock kept out of the database, oldest first.
        self._unwritten: list[Callable[[], None]] = []

    # -- IPython events -------------------------------------------------------
    def register(self) -> None:
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        self.environment.warm_up_in_background()

    def unregister(self) -> None:
        for event, callback in (("pre_run_cell", self.pre_run_cell),
                                ("post_run_cell", self.post_run_cell)):
            try:
                self.shell.events.unregister(event, callback)
            except ValueError:
                pass
        self.git.close()

    def pre_run_cell(self, info: Any) -> None:
        self._depth += 1
        self.phases.cell_started(clock.now())
        self._raw_cells.append(info.raw_cell or "")
        self._cell_ids.append(getattr(info, "cell_id", None))

    def post_run_cell(self, result: Any) -> None:
        try:
            cell = self._cell
            if cell is not None and cell.depth == self._depth:
                self._end(cell, result)
            elif result.error_before_exec is not None and self._raw_cells:
                self._record_unstarted_failure(self._raw_cells[-1], result.error_before_exec)
        except XPError as exc:
            print(exc.one_line(), file=sys.stderr)
        finally:
            self.phases.cell_ended(clock.now())
            self._depth = max(0, self._depth - 1)
            if self._raw_cells:
                self._raw_cells.pop()
                self._cell_ids.pop()

    # -- beginning a run -------------------------------------------------------
    def begin(self, args: ExperimentArgs, body: str | None = None) -> ActiveRun:
        if self._cell is not None:
            raise UsageError("%%experiment cells cannot be nested; finish the outer run first")
        if self._depth == 0:
            raise UsageError("%%experiment must run as a notebook or IPython cell")
        raw = self._raw_cells[-1]
        if body is None:
            _, body = split_cell(raw)
        self._check_handle(body)
        self.write_unwritten()  # a run waiting for another program's lock goes first, or this one does not run
        store = self._store()
        settings = self._settings()
        if args.reason:
            normalize_reason(args.reason, store.team_reasons())  # before the body runs
        env_id = store.environment_id(self.environment.snapshot())
        started_at = utc_now()
        pending, self.next_run = self.next_run, {}
        run_id, run_uuid = store.start_run(NewRun(
            experiment=args.name, code=raw, code_hash=code_hash(body), started_at=started_at,
            seed=args.seed, tags=list(args.tags), note=args.note, phase=args.phase,
            notebook=self.notebook_path(), cell_id=self._cell_ids[-1], environment_id=env_id,
            replay_of=pending.get("replay_of"),
        ))
        run = ActiveRun(run_id, args.name, write_chunk=store.write_metric_chunks,
                        overrides=pending.get("params"), sample_bytes=settings.sample_bytes)
        run.uuid = run_uuid
        names = (cell_name_use(python_of(body), self.shell.transform_cell) if settings.capture_variables
                 else NameUse(frozenset(), frozenset()))
        cell = _CellRun(run, args, self._depth, time.perf_counter(), settings, store, names,
                        started_at=started_at)
        if settings.capture_variables:
            self._fingerprint_inputs(cell)
        if "%run" in body or "run_line_magic" in body:
            cell.scripts = scripts_run_by(self.shell.transform_cell(body), self.working_folder())
        if settings.capture_output:
            # Routed per thread: a background trial's prints never land in this run.
            out, err = routed_streams()
            cell.stdout = TeeStream(out.wrapped, settings.max_output_chars)
            cell.stderr = TeeStream(err.wrapped, settings.max_output_chars)
            out.route(cell.stdout)
            err.route(cell.stderr)
            if getattr(self.shell, "display_pub", None) is not None:
                cell.displays = DisplayTap(self.shell, settings.max_display_bytes)
        if settings.record_git:
            folder = self.working_folder()
            known = self.git.known_state(folder)  # an empty dict: known to be in no repository
            if known is None:
                self.git.request(run_id, folder, store)  # the run's database, even if the session switches
            cell.git_state = known or None
        self._stop_clock_before_tracebacks(cell)
        if args.seed is not None:  # last: a library it waits for is seeded only by a run that started
            cell.stop_seeding = seed_everything(args.seed)
        self._cell = cell
        self.foreground = run
        return run

    def _check_handle(self, body: str) -> None:
        """An experiment cell calling `xp.` after %reset (or `del xp`) gets the handle back; after
        `import numpy as xp` it would fail with numpy's AttributeError, so that is named."""
        if "xp." not in body or self.handle is None:
            return
        namespace = self.shell.user_ns
        if "xp" not in namespace:
            namespace["xp"] = self.handle
        elif not isinstance(namespace["xp"], XPHandle):
            print(f"xpmagic: `xp` is {describe_other_xp(namespace['xp'])} in this notebook, not xpmagic's handle: "
                  "bind yours to another name, then %reload_ext xpmagic", file=sys.stderr)

    def _stop_clock_before_tracebacks(self, cell: _CellRun) -> None:
        """Rendering a traceback can take longer than the cell; a run's duration must not
        include it. The wrapper lives on the shell instance only while the run is open."""
        original = self.shell.showtraceback

        def showtraceback(*args: Any, **kwargs: Any) -> Any:
            if cell.failed_at is None:
                cell.failed_at = time.perf_counter()
            return original(*args, **kwargs)

        self.shell.showtraceback = showtraceback

    def _fingerprint_inputs(self, cell: _CellRun) -> None:
        cell.inputs, cell.lineage, cell.bindings = self._inputs(cell.names.loaded, cell.settings.sample_bytes,
                                                                cell.store, cell.run.id)

    def inputs_of(self, body: str) -> tuple[list[VariableRecord], list[tuple[int, str]], Bindings]:
        """The variables (with fingerprints), lineage and bindings of a cell body that reads the
        namespace now: every trial of an optimization reads these."""
        settings = self._settings()
        if not settings.capture_variables:
            return [], [], Bindings()
        store = self._store()
        loaded = cell_name_use(python_of(body), self.shell.transform_cell).loaded
        inputs, lineage, bindings = self._inputs(loaded, settings.sample_bytes, store, store.max_run_id() + 1)
        return _input_records(inputs), lineage, bindings

    def _inputs(self, loaded: frozenset[str], sample_bytes: int, store: Store,
                before_run: int) -> tuple[dict[str, Fingerprint], list[tuple[int, str]], Bindings]:
        """Fingerprints of the recordable names a cell reads, the runs that wrote them, and the
        code that binds the modules, classes and functions it reads (bindings.py)."""
        namespace = self.shell.user_ns
        inputs: dict[str, Fingerprint] = {}
        lineage: list[tuple[int, str]] = []
        read = [name for name in loaded
                if name not in _INTERNAL_NAMES and not name.startswith("_") and name in namespace]
        bindings = bindings_for(read, namespace)
        for name in read + [n for n in bindings.data_read if n not in _INTERNAL_NAMES and not n.startswith("_")]:
            value = namespace[name]
            if not is_recordable(value):
                continue
            print_ = fingerprint(value, sample_bytes)
            inputs[name] = print_
            source = self._producer_of(store, name, print_, before_run)
            if source is not None:
                lineage.append((source, name))
        return inputs, lineage, bindings

    def _producer_of(self, store: Store, name: str, print_: Fingerprint, before_run: int) -> int | None:
        if print_.digest is None:
            return None
        produced = self._produced.get(name)
        if produced is not None and produced[0] == print_.digest:
            return produced[1]
        if print_.digest in self._no_producer:
            return None  # looked up in this session already: no run wrote this value
        by_name = name if is_weak_for_lineage(print_) else None
        source = store.find_producer(print_.digest, by_name, before_run)
        if source is None:
            self._no_producer.add(print_.digest)
        return source

    # -- ending a run ------------------------------------------------------------
    def _end(self, cell: _CellRun, result: Any) -> None:
        duration = (cell.failed_at or time.perf_counter()) - cell.started
        self.shell.__dict__.pop("showtraceback", None)
        cell.stop_seeding()
        self._cell = None
        self.foreground = None
        stdout, stderr = self._restore_streams(cell)
        displays = cell.displays.close() if cell.displays is not None else []
        error = result.error_in_exec
        status = RunStatus.OK
        if error is not None:
            status = RunStatus.INTERRUPTED if isinstance(error, KeyboardInterrupt) else RunStatus.FAILED
        try:
            outcome = self._outcome(cell, result, status, duration, stdout, stderr)
        except Exception as exc:  # a bug of ours must not leave the run 'running': keep what is certain
            print(f"xpmagic: run {cell.run.id} is recorded without its details ({type(exc).__name__}: {exc}); "
                  "please report this", file=sys.stderr)
            outcome = RunOutcome(status=status, ended_at=utc_now(), duration_s=duration, stdout=stdout,
                                 stderr=stderr, error=error_info(error))
        outcome.displays = displays  # captured apart from the details: kept even when those failed
        metrics = outcome.metrics
        self._write_or_keep(partial(cell.store.finish_run, cell.run.id, outcome), f"run {cell.run.id}")
        self.last_run_id = cell.run.id
        self._write_or_keep(partial(self.phases.run_finished, cell.args.phase, cell.started_at, outcome.ended_at,
                                    cell.run.id, cell.args.name, cell.args.reason), f"run {cell.run.id}'s phase")
        if status is RunStatus.OK and any(d.meta for d in outcome.datasets):
            self._write_or_keep(self._knowledge_write(cell, outcome, duration),
                                f"what run {cell.run.id} taught (its knowledge rows)")
        read = {var.fingerprint for var in outcome.variables if var.direction == "in"}
        for var in outcome.variables:  # a value it read and wrote back, or copied, is not its product
            if var.direction == "out" and var.fingerprint is not None and var.fingerprint not in read:
                self._produced[var.name] = (var.fingerprint, cell.run.id)
                self._no_producer.discard(var.fingerprint)
        if cell.settings.show_summary:
            self._display(RunSummary(cell.run.id, cell.args.name, status.value, duration,
                                     {m.name: m.last for m in metrics}, outcome.error))
        if cell.args.output_var:
            self.shell.user_ns[cell.args.output_var] = cell.store.get_run(cell.run.id)

    def _write_or_keep(self, write: Callable[[], None], what: str) -> None:
        """Write now; if another program holds the database's lock past the busy timeout, keep the
        write in memory for the next experiment cell rather than lose it."""
        if self._unwritten:  # an earlier write is waiting: keep the order
            self._unwritten.append(write)
            return
        try:
            write()
        except DatabaseLocked as exc:
            self._unwritten.append(write)
            print(f"xpmagic: {what} is kept in memory, not written yet: {exc}; it is written before your next "
                  "experiment cell runs", file=sys.stderr)

    def write_unwritten_at_exit(self) -> None:
        try:
            self.write_unwritten()
        except XPError as exc:
            print(f"xpmagic: {len(self._unwritten)} finished run(s) could not be written: {exc}", file=sys.stderr)

    def write_unwritten(self) -> None:
        """Write what a lock kept out (raises DatabaseLocked while the lock is still held)."""
        while self._unwritten:
            self._unwritten[0]()
            self._unwritten.pop(0)

    def _outcome(self, cell: _CellRun, result: Any, status: RunStatus, duration: float, stdout: str,
                 stderr: str) -> RunOutcome:
        metrics, chunks = cell.run.final_metrics()
        outcome = RunOutcome(
            status=status, ended_at=utc_now(), duration_s=duration, stdout=stdout,
            stderr=stderr, result=_result_repr(result.result), error=error_info(result.error_in_exec),
            params=list(cell.run.params.values()), lineage=cell.lineage,
            imports=cell.bindings.imports, definitions=cell.bindings.definitions,
            datasets=list(cell.run.datasets.values()),
            artifacts=list(cell.run.artifacts.values()), metrics=metrics, metric_chunks=chunks,
            environment_id=cell.store.environment_id(self.environment.snapshot()),
            local_code_id=self._local_code_id(cell), git_state=cell.git_state,
        )
        if cell.settings.capture_variables:
            outcome.variables = self._variables(cell)
        return outcome

    def _local_code_id(self, cell: _CellRun) -> int | None:
        """Best effort: the person's modules are context, and reading them must never cost the run."""
        try:
            modules = self.local_code.loaded(self.working_folder())
        except Exception as exc:
            print(f"xpmagic: run {cell.run.id} records no local modules ({type(exc).__name__}: {exc})", file=sys.stderr)
            modules = []
        return cell.store.local_code_id(modules + cell.scripts)

    def _knowledge_write(self, cell: _CellRun, outcome: RunOutcome, duration: float) -> Callable[[], None]:
        """The knowledge rows of a finished run, read from the session now, written when called."""
        namespace = self.shell.user_ns
        family = (model_family_of([namespace[n] for n in sorted(cell.names.stored) if n in namespace])
                  or constructed_model_family(self.shell.transform_cell(python_of(split_cell(self._raw_cells[-1])[1])),
                                              namespace))  # transformed: `%run train.py` builds it in the script
        rows = rows_for_run(
            run_uuid=cell.run.uuid, experiment=cell.args.name, datasets=outcome.datasets,
            params=cell.run.values(), metrics={m.name: m.last for m in outcome.metrics},
            cost_s=duration, model_family=family, origin=str(cell.store.path))
        knowledge = self._knowledge()

        def write() -> None:
            for dataset in outcome.datasets:
                if dataset.meta:
                    knowledge.save_task(dataset.fingerprint, dataset.name, dataset.meta, outcome.ended_at)
            knowledge.add_knowledge(rows)

        return write

    @staticmethod
    def _restore_streams(cell: _CellRun) -> tuple[str, str]:
        if cell.stdout is None or cell.stderr is None:
            return "", ""
        for stream in routed_streams():
            stream.unroute()
        return cell.stdout.getvalue(), cell.stderr.getvalue()

    def _variables(self, cell: _CellRun) -> list[VariableRecord]:
        records = _input_records(cell.inputs)
        namespace = self.shell.user_ns
        for name in cell.names.stored | cell.inputs.keys():
            if name in _INTERNAL_NAMES or name.startswith("_") or name not in namespace:
                continue
            value = namespace[name]
            if not is_recordable(value):
                continue
            before = cell.inputs.get(name)
            if name not in cell.names.stored and before is not None and before.kind == "scalar":
                continue  # read only, and immutable: it cannot have changed
            after = fingerprint(value, cell.settings.sample_bytes)
            if name not in cell.names.stored and before is not None and before.digest == after.digest:
                continue  # read and left unchanged
            records.append(VariableRecord("out", name, after.digest, after.kind, after.summary))
        return records

    def _record_unstarted_failure(self, raw_cell: str, error: BaseException) -> None:
        """A syntax error stops the cell before it starts: record it as a failed run."""
        if not raw_cell.lstrip().startswith(MAGIC_PREFIX + " "):
            return
        from .magics import parse_experiment_line  # the magic owns the argument syntax

        line, body = split_cell(raw_cell)
        try:
            args = parse_experiment_line(line)
        except XPError:
            return
        store = self._store()
        now = utc_now()
        run_id, _ = store.start_run(NewRun(
            experiment=args.name, code=raw_cell, code_hash=code_hash(body), started_at=now,
            seed=args.seed, tags=list(args.tags), note=args.note, phase=args.phase,
            notebook=self.notebook_path(), cell_id=self._cell_ids[-1],
        ))
        store.finish_run(run_id, RunOutcome(status=RunStatus.FAILED, ended_at=now,
                                             duration_s=0.0, error=error_info(error)))
        self.last_run_id = run_id

    # -- context ---------------------------------------------------------------
    def current_raw_cell(self) -> str | None:
        """The cell being executed, as the person typed it."""
        return self._raw_cells[-1] if self._raw_cells else None

    def notebook_path(self) -> str | None:
        ns = self.shell.user_ns
        return (os.environ.get("JPY_SESSION_NAME") or ns.get("__session__")
                or ns.get("__vsc_ipynb_file__"))

    def working_folder(self) -> str:
        notebook = self.notebook_path()
        if notebook and os.path.isabs(notebook):
            return os.path.dirname(notebook)
        return os.getcwd()

    @staticmethod
    def _attach_git(store: Store, run_ids: list[int], state: dict[str, Any]) -> None:
        store.set_git_state(run_ids, state)


def _input_records(inputs: dict[str, Fingerprint]) -> list[VariableRecord]:
    return [VariableRecord("in", name, fp.digest, fp.kind, fp.summary) for name, fp in inputs.items()]


def _result_repr(value: Any) -> str | None:
    if value is None:
        return None
    try:
        text = repr(value)
    except Exception as exc:
        text = f"<unrepresentable {type(value).__name__}: {exc}>"
    return text[:_MAX_RESULT_REPR]


def error_info(error: BaseException | None) -> ErrorInfo | None:
    if error is None:
        return None
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return ErrorInfo(type(error).__name__, str(error), text)


SUMMARY_METRICS = 6  # on the line after a cell; %xp show RUN has them all


@dataclass(frozen=True)
class RunSummary:
    """The one line shown under an experiment cell."""

    run_id: int
    experiment: str
    status: str
    duration_s: float
    metrics: dict[str, float | None]
    error: ErrorInfo | None = None

    def _metric_text(self) -> str:
        """The first few metrics: the line stays one line (%xp show RUN has them all)."""
        shown = [f"{_short_name(k)}={_fmt(v)}" for k, v in list(self.metrics.items())[:SUMMARY_METRICS]]
        more = len(self.metrics) - SUMMARY_METRICS
        return ", ".join(shown) + (f" and {more} more (%xp show {self.run_id})" if more > 0 else "")

    def __repr__(self) -> str:
        parts = [f"run {self.run_id}", self.experiment, self.status, duration_text(self.duration_s)]
        if self.metrics:
            parts.append(self._metric_text())
        if self.error is not None:
            parts.append(f"{self.error.type}: {self.error.message}"[:120])
        return "xpmagic: " + " · ".join(parts)

    def mimebundle(self) -> dict[str, str]:
        """Both renderings at once: displaying a raw bundle skips IPython's formatter lookup."""
        return {"text/plain": repr(self), "text/html": self._repr_html_()}

    def _repr_html_(self) -> str:
        from html import escape

        colour = {"ok": "#1a7f37", "failed": "#cf222e", "interrupted": "#9a6700"}.get(
            self.status, "#57606a")
        metrics = f" · {escape(self._metric_text())}" if self.metrics else ""
        return (
            '<div class="xpmagic-run-summary" style="font-family:var(--jp-code-font-family,'
            f'monospace);font-size:12px">run <b>{self.run_id}</b> · {escape(self.experiment)} · '
            f'<span style="color:{colour}">{self.status}</span> · '
            f"{duration_text(self.duration_s)}{metrics}</div>"
        )


def _short_name(name: str, most: int = 40) -> str:
    return name if len(name) <= most else name[:most - 1] + "…"


def _fmt(value: float | None) -> str:
    return "nan" if value is None else f"{value:.6g}"



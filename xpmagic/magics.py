"""The magics: ``%%experiment`` and ``%xp``. Each parses, delegates and displays."""

from __future__ import annotations

import linecache
import os
import shlex
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.inputtransformer2 import cell_magic as rewrite_cell_magic
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display
from traitlets import Bool, Float, Int, TraitError, Unicode, observe, validate

from .errors import UsageError, XPError, file_error
from .localcode import scripts_run_by
from .phases import normalize_phase
from .recorder import MAGIC_PREFIX, CaptureSettings, ExperimentArgs, Recorder
from .store import Store, file_identity

DB_ENV = "XPMAGIC_DB"
DEFAULT_DB = "xpmagic.db"
MIN_SAMPLE_BYTES = 4096


def resolve_db_path(configured: str = "") -> Path:
    """The database file: the configured path, else $XPMAGIC_DB, else ./xpmagic.db."""
    chosen = configured or os.environ.get(DB_ENV) or DEFAULT_DB
    return Path(chosen).expanduser().resolve()


@magics_class
class XPMagics(Magics):
    """xpmagic settings; change them with ``%config XPMagics.NAME = value``."""

    db_path = Unicode("", help="Database file. Default: $XPMAGIC_DB, else ./xpmagic.db").tag(config=True)
    max_output_chars = Int(100_000, help="Characters of stdout/stderr kept per run").tag(config=True)
    capture_variables = Bool(True, help="Fingerprint the variables a cell reads and writes").tag(config=True)
    capture_output = Bool(True, help="Keep a copy of what a run prints and displays").tag(config=True)
    max_display_bytes = Int(
        5_000_000, help="Bytes of what a run displays (figures, HTML) kept per run; past them, only their sha256"
    ).tag(config=True)
    fingerprint_sample_bytes = Int(
        8 * 1024 * 1024, help="Arrays and frames larger than this are fingerprinted from a sample"
    ).tag(config=True)
    record_git = Bool(True, help="Record the git state of the notebook's folder").tag(config=True)
    show_summary = Bool(True, help="Show the one-line run summary under each cell").tag(config=True)
    knowledge_path = Unicode(
        "", help="Knowledge table file (a team share). Default: $XPMAGIC_KNOWLEDGE, else the database"
    ).tag(config=True)
    knowledge_url = Unicode(
        "", help="A team's knowledge table on PostgreSQL (postgresql://user@host/db); rows are also "
                 "kept in the database. Default: $XPMAGIC_KNOWLEDGE when it is such a URL"
    ).tag(config=True)
    optuna_storage = Unicode(
        "", help="Default Optuna storage of --optimize studies (e.g. postgresql://user@host/db); "
                 "default: a file beside the database"
    ).tag(config=True)
    idle_cutoff_minutes = Float(
        30.0, help="Phase time counts only active work: gaps longer than this are left out (0: off)"
    ).tag(config=True)

    def __init__(self, shell: Any):
        super().__init__(shell)
        self._store: Store | None = None
        self._store_key: tuple[str, str | None] | None = None
        self._store_file: tuple[int, int] | None = None  # the file the open store was opened on
        self._settings: CaptureSettings | None = None
        self._knowledge: Any = None
        self._knowledge_key: tuple | None = None
        self._knowledge_file: tuple[int, int] | None = None
        self.recorder = Recorder(shell, self.store, self.settings, _display_summary, self.knowledge)

    # -- configuration ---------------------------------------------------------
    @validate("max_output_chars", "max_display_bytes", "idle_cutoff_minutes")
    def _not_negative(self, proposal: Any) -> Any:
        if proposal["value"] < 0:
            raise TraitError(f"XPMagics.{proposal['trait'].name} must be 0 or more, got {proposal['value']}")
        return proposal["value"]

    @validate("fingerprint_sample_bytes")
    def _sample_size(self, proposal: Any) -> Any:
        # a tiny sample makes different arrays of one shape look alike, and lineage would link them
        if proposal["value"] < MIN_SAMPLE_BYTES:
            raise TraitError(f"XPMagics.fingerprint_sample_bytes must be at least {MIN_SAMPLE_BYTES:,}, "
                             f"got {proposal['value']:,}")
        return proposal["value"]

    @observe("max_output_chars", "max_display_bytes", "capture_variables", "capture_output",
             "fingerprint_sample_bytes", "record_git", "show_summary", "idle_cutoff_minutes")
    def _settings_changed(self, change: Any) -> None:
        self._settings = None

    def settings(self) -> CaptureSettings:
        if self._settings is None:
            self._settings = CaptureSettings(
                max_output_chars=self.max_output_chars, max_display_bytes=self.max_display_bytes,
                capture_variables=self.capture_variables,
                capture_output=self.capture_output, sample_bytes=self.fingerprint_sample_bytes,
                record_git=self.record_git, show_summary=self.show_summary,
                idle_cutoff_minutes=self.idle_cutoff_minutes)
        return self._settings

    def store(self) -> Store:
        """The open store, reopened when the configured path changes, or when the file at the
        path is no longer the one open: runs written to a deleted file would vanish with it."""
        key = (self.db_path, os.environ.get(DB_ENV))
        if self._store is not None and key == self._store_key:
            if file_identity(self._store.path) == self._store_file:
                return self._store
            print(f"xpmagic: {self._store.path} was deleted or replaced after this session opened it; "
                  "recording goes on in the file now at that path", file=sys.stderr)
            # Not closed: a run in progress still ends on it (it is closed when nothing holds it).
            self._reopen(self._store.path, close_old=False)
            return self._store
        path = resolve_db_path(self.db_path)
        if self._store is None or self._store.path != path:
            self._reopen(path)
        self._store_key = key
        return self._store

    def _reopen(self, path: Path, close_old: bool = True) -> None:
        if self._store is not None:
            if self._knowledge is self._store:
                self._knowledge = None  # it was this store: open it again with the new one
            if close_old:
                self._store.close()
            self._store = None
        self._store = Store(path)
        self._store_file = file_identity(path)

    def knowledge(self) -> Any:
        """Where knowledge rows go: the database itself, a shared file, or a team's server."""
        from .teamknowledge import knowledge_location, open_knowledge

        store = self.store()
        key = (store.path, knowledge_location(self.knowledge_url or self.knowledge_path))
        if self._knowledge is None or self._knowledge_key != key or self._knowledge_file_replaced(store):
            if self._knowledge is not None and self._knowledge is not store:
                self._knowledge.close()
            self._knowledge = open_knowledge(store, self.knowledge_url or self.knowledge_path)
            self._knowledge_key = key
            self._knowledge_file = file_identity(self._knowledge.path) if isinstance(self._knowledge, Store) else None
        return self._knowledge

    def _knowledge_file_replaced(self, store: Store) -> bool:
        """A separate knowledge file (a team share) deleted or replaced since it was opened."""
        knowledge = self._knowledge
        return (isinstance(knowledge, Store) and knowledge is not store
                and file_identity(knowledge.path) != self._knowledge_file)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- %%experiment ------------------------------------------------------------
    @magic_arguments()
    @argument("name", help="Experiment name; every run of the cell is recorded under it")
    @argument("--seed", type=int, default=None, help="Seed random, numpy (and torch) and record it")
    @argument("--tag", action="append", default=[], help="A tag for the run (repeatable)")
    @argument("--note", default=None, help="A note kept with the run")
    @argument("--phase", default=None, help="MLOps phase of this work, e.g. model-development")
    @argument("--reason", default=None,
              help="Why this run revisits another phase than the focus (a reason code; default other)")
    @argument("-o", "--output", default=None, help="Store the run record in this variable")
    @argument("--optimize", metavar="METRIC", default=None,
              help="Run the cell as an Optuna objective in the background, optimizing METRIC")
    @argument("--maximize", action="store_const", const="maximize", dest="direction",
              help="Maximize METRIC (default, unless its name says loss or error)")
    @argument("--minimize", action="store_const", const="minimize", dest="direction")
    @argument("--trials", type=int, default=20, help="Trial budget (default 20)")
    @argument("--timeout", type=float, default=None, help="Start no trial after S seconds")
    @argument("--sampler", default="tpe", choices=["tpe", "random", "grid", "cmaes", "qmc"])
    @argument("--jobs", default="1", metavar="N|dask://HOST:PORT",
              help="Trials run at a time, or the Dask cluster that runs them ('dask': the notebook's Client)")
    @argument("--storage", default=None, metavar="URL",
              help="Optuna storage, e.g. postgresql://user@host/db (default: a file beside the database)")
    @argument("--approve", nargs="?", type=int, const=3, default=None, metavar="BATCH",
              help="Nothing runs until you approve the planned trials, BATCH at a time (default 3)")
    @argument("--constraint", action="append", default=[], help="Hard constraint, e.g. 'latency_ms < 50'")
    @argument("--resume", action="store_true", help="Continue this experiment's latest study")
    @argument("--no-recommend", action="store_true",
              help="Do not warm-start from the knowledge table")
    @argument("--narrow", action="store_true",
              help="Also search only the recommended narrowed space (widened when a recommended trial lies outside)")
    @no_var_expand  # begin_cell expands it, as IPython does for any magic: not twice
    @cell_magic
    def experiment(self, line: str, cell: str) -> None:
        """Run the cell as a recorded run of experiment NAME.

        Records code, params (xp.param), metrics (xp.log), data (xp.dataset),
        files (xp.artifact), stdout/stderr, errors, environment, git state,
        the variables the cell read and wrote, and lineage.
        """
        # Normally the input transformer rewrites experiment cells before they
        # get here; this path serves direct run_cell_magic calls.
        self.shell.run_cell(f"{MAGIC_PREFIX} {line}\n{cell}", store_history=False)

    def begin(self, line: str) -> Any:
        return self.recorder.begin(parse_experiment_line(line))

    def optimize(self, args: ExperimentArgs, body: str) -> Any:
        from dataclasses import replace

        from .environment import redact_url
        from .optimize import launch
        from .widgets import study_display

        recorder = self.recorder
        store = self.store()
        if body.lstrip().startswith("%%"):
            magic = body.lstrip().split(None, 1)[0]
            raise UsageError(f"--optimize runs the cell's body as each trial, and {magic} would run it in the "
                             "notebook's namespace, not the trial's: remove it (each trial's duration is recorded; "
                             "a line magic such as `%time y = f(x)` works)")
        body = self.shell.transform_cell(body)  # `%time y = f(x)`, `%run train.py`: trials run Python
        scripts = scripts_run_by(body, recorder.working_folder())
        config = args.optimize
        if config.storage is None and self.optuna_storage:
            config = replace(config, storage=self.optuna_storage)
        study_store, study_knowledge = self._connections_for_a_study(store)
        variables, lineage, bindings = recorder.inputs_of(body)
        controller = launch(
            store=store, store_factory=lambda: study_store, experiment=args.name, body=body,
            code=redact_url(recorder.current_raw_cell() or body),  # a --storage password is never recorded
            config=config, namespace=self.shell.user_ns, notebook=recorder.notebook_path(),
            environment_id=store.environment_id(recorder.environment.snapshot()),
            local_code_id=store.local_code_id(recorder.local_code.loaded(recorder.working_folder()) + scripts),
            max_output_chars=self.max_output_chars, knowledge=lambda: study_knowledge,
            variables=variables, lineage=lineage, bindings=bindings)
        return study_display(controller)

    def _connections_for_a_study(self, store: Store) -> tuple[Store, Any]:
        """A study's threads get connections of their own: closing or switching the session's
        database (%unload_ext, %config XPMagics.db_path) must neither pull a connection from under
        a running query (SQLite crashes the process) nor move the study to another file."""
        from .teamknowledge import knowledge_location, open_knowledge

        location = knowledge_location(self.knowledge_url or self.knowledge_path) or ""
        return study_connections(store.path, location, lambda study_store: open_knowledge(study_store, location))

    # -- %xp ----------------------------------------------------------------------
    @line_magic
    def xp(self, line: str) -> Any:
        """Query and steer recorded runs.

        %xp db                 which database file is in use
        %xp runs [NAME]        runs as a DataFrame (params.*, metrics.* columns)
        %xp show RUN           one run in full (RUN: an id or 'last')
        %xp diff A B           what changed between two runs
        %xp lineage RUN        the earlier runs whose outputs RUN read
        %xp studies            optimization studies and their state
        %xp pause|resume|stop STUDY
        %xp budget STUDY +N    add N trials (N alone sets the total)
        %xp space STUDY PARAM LOW HIGH [--log]
        %xp enqueue STUDY key=value ...
        %xp approve STUDY [N]  approve planned trials (--approve studies)
        %xp phase [KEY|--end]  set, show or end the MLOps phase in focus
        %xp revisit KEY --reason CODE [--note TEXT] | %xp revisit --end
        %xp reasons [--add CODE [--description TEXT]]
        %xp phases [--experiment NAME] [--user U] [--since DATE] [--until DATE]
        %xp replay TARGET [--all|--best] [--tolerance T] [--trust]   re-run in a fresh kernel, with a verdict
        %xp knowledge [--experiment NAME] | export FILE | import FILE | merge DB
        %xp recommend NAME     recommendations for NAME's next optimization, with reasons
        """
        from . import cli

        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%xp: cannot parse {line!r}: {exc}") from None
        options = cli.parse_args(argv, prog="%xp", in_notebook=True)
        if options is None:
            return None  # help was printed
        try:
            if options.command in cli.PHASE_COMMANDS:
                return cli.phase_command(options, self.store(), self.recorder.phases)
            return cli.notebook_command(options, self.store(), self.knowledge(), in_notebook=True)
        except OSError as exc:  # a file the person named (export, import, csv, plot)
            raise file_error(exc) from None


# Shared by every study of this process on the same files (a study's connections are never
# closed: it may outlive the session that started it), so a long session does not run out of
# file descriptors: each pair holds about six.
_STUDY_CONNECTIONS: dict[tuple[Path, str], tuple[tuple, Store, Any]] = {}
_STUDY_CONNECTIONS_LOCK = threading.Lock()


def study_connections(path: Path, knowledge_location: str, open_knowledge: Any) -> tuple[Store, Any]:
    """The connections studies on this database and knowledge location use, opened once; again
    if either file was replaced (deleted and created anew) since."""
    key = (path, knowledge_location)
    with _STUDY_CONNECTIONS_LOCK:
        cached = _STUDY_CONNECTIONS.get(key)
        if cached is not None and None not in cached[0] and cached[0] == _files_identity(key):
            return cached[1], cached[2]
        study_store = Store(path)
        pair = (study_store, open_knowledge(study_store))
        _STUDY_CONNECTIONS[key] = (_files_identity(key), *pair)
        return pair


def _files_identity(key: tuple[Path, str]) -> tuple:
    """Which files a database path and a knowledge file path (not a URL) name now."""
    path, knowledge = key
    files = [path] + ([Path(knowledge).expanduser()] if knowledge and "://" not in knowledge else [])
    return tuple(file_identity(file) for file in files)


def _display_summary(summary: Any) -> None:
    display(summary.mimebundle(), raw=True)


@lru_cache(maxsize=256)
def parse_experiment_line(line: str) -> ExperimentArgs:
    """Parse ``%%experiment`` arguments (cached: the same cell runs many times)."""
    try:
        parsed = XPMagics.experiment.parser.parse_args(shlex.split(line))
    except ValueError as exc:
        raise UsageError(f"%%experiment: cannot parse {line!r}: {exc}") from None
    except IPythonUsageError as exc:
        raise UsageError(f"%%experiment: {exc}; see %%experiment? for the options") from None
    name = parsed.name.strip().strip("'\"")
    if not name:
        raise UsageError("%%experiment needs an experiment name: %%experiment NAME")
    output = parsed.output
    if output is not None and not output.isidentifier():
        raise UsageError(f"%%experiment -o: {output!r} is not a valid variable name")
    if output == "xp":
        raise UsageError("%%experiment -o xp would replace the xp handle the cells record with; choose another name")
    phase = normalize_phase(parsed.phase) if parsed.phase else None
    if parsed.reason and not phase:
        raise UsageError("%%experiment --reason goes with --phase: the reason this run revisits that phase")
    optimize = _study_config(parsed) if parsed.optimize else None
    return ExperimentArgs(name=name, seed=parsed.seed, tags=tuple(parsed.tag),
                          note=parsed.note, phase=phase, output_var=output, optimize=optimize,
                          reason=parsed.reason)


_MINIMIZE_HINTS = ("loss", "error", "rmse", "mse", "mae", "latency", "time", "cost", "regret")


def _study_config(parsed: Any) -> Any:
    from .optimize import StudyConfig
    from .optimize._constraints import Constraint

    metric = parsed.optimize
    direction = parsed.direction or (
        "minimize" if any(h in metric.lower() for h in _MINIMIZE_HINTS) else "maximize")
    if parsed.trials is not None and parsed.trials < 1:
        raise UsageError("--trials must be at least 1")
    jobs, cluster = _jobs(parsed.jobs)
    if parsed.approve is not None and parsed.approve < 1:
        raise UsageError("--approve BATCH must be at least 1 (the number of trials planned at a time)")
    if parsed.timeout is not None and parsed.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    for text in parsed.constraint:
        Constraint(text)  # validates now, with a clear message
    if parsed.narrow and parsed.no_recommend:
        raise UsageError("--narrow searches the recommended space; it cannot go with --no-recommend")
    return StudyConfig(metric=metric, direction=direction, trials=parsed.trials,
                       timeout_s=parsed.timeout, sampler=parsed.sampler, seed=parsed.seed,
                       jobs=jobs, cluster=cluster, storage=parsed.storage, approve=parsed.approve is not None,
                       approve_batch=parsed.approve or 3,
                       constraints=tuple(parsed.constraint), resume=parsed.resume,
                       recommend=not parsed.no_recommend, narrow=parsed.narrow)


def _jobs(text: str) -> tuple[int, str | None]:
    """--jobs N, or --jobs dask://HOST:PORT / dask: (threads here, cluster address)."""
    from .optimize._dask import is_cluster_address

    if is_cluster_address(text):
        return 1, text
    try:
        jobs = int(text)
    except ValueError:
        raise UsageError(f"--jobs takes a number or dask://HOST:PORT, got {text!r}") from None
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    return jobs, None


def experiment_transformer(lines: list[str]) -> list[str]:
    """Rewrite a ``%%experiment`` cell's first line into a call that begins the run.

    The body stays as it is, so it runs as ordinary cell code with the cell's own
    line numbers in tracebacks; ``post_run_cell`` ends the run.
    """
    if not lines:
        return lines
    first = lines[0]
    head = first.rstrip("\n")
    if head != MAGIC_PREFIX and not head.startswith((MAGIC_PREFIX + " ", MAGIC_PREFIX + "\t", MAGIC_PREFIX + "?")):
        return lines
    if head.rstrip().endswith("?"):
        return [head.rstrip() + "\n"]  # %%experiment? asks for help: the body does not run, unrecorded
    arguments = head[len(MAGIC_PREFIX):].strip()
    if _asks_for_help(arguments):
        return [f"{MAGIC_PREFIX}?\n"]  # as %%experiment? does: the options, and the body does not run
    if _is_optimization(arguments):
        # The body is the objective: it runs in background trials, not in this cell.
        body = "".join(lines[1:])
        return [f"__import__('xpmagic.magics').magics.begin_optimization("
                f"get_ipython(), {arguments!r}, {body!r})\n"]
    call = f"__import__('xpmagic.magics').magics.begin_cell(get_ipython(), {arguments!r})\n"
    body = lines[1:]
    if body and body[0].startswith("%%"):
        body = rewrite_cell_magic(body)  # %%time below %%experiment: IPython's own rewrite of a cell magic
    return [call, *body]


@lru_cache(maxsize=256)  # pure, and IPython transforms every cell it runs
def _asks_for_help(arguments: str) -> bool:
    try:
        return bool({"-h", "--help"} & set(shlex.split(arguments)))
    except ValueError:
        return False  # begin_cell reports the unbalanced quote


@lru_cache(maxsize=256)
def _is_optimization(arguments: str) -> bool:
    try:
        if any(word == "--optimize" or word.startswith("--optimize=") for word in shlex.split(arguments)):
            return True  # even when another option is still a {variable} to expand
        return parse_experiment_line(arguments).optimize is not None
    except (XPError, ValueError):
        return False  # begin_cell will report the bad arguments in one line


def expanded(shell: Any, line: str) -> str:
    """The line with {expressions} and $names of the notebook's namespace filled in, as IPython
    does for every magic's line (the input transformer that runs this cell bypasses it).
    Called from the cell's own frame, two levels up."""
    if "{" not in line and "$" not in line:
        return line  # nothing to fill in: no copy of the namespace (var_expand makes one)
    return shell.var_expand(line, depth=2)


def begin_cell(shell: Any, line: str) -> None:
    """Called by the rewritten first line of an experiment cell."""
    _show_magic_line_in_tracebacks(sys._getframe(1).f_code.co_filename, line)
    magics = shell.magics_manager.registry.get("XPMagics")
    if magics is None:
        raise UsageError("xpmagic is not loaded: run %load_ext xpmagic first")
    magics.begin(expanded(shell, line))


def begin_optimization(shell: Any, line: str, body: str) -> Any:
    """Called by the rewritten optimization cell: start the study, return its panel."""
    magics = shell.magics_manager.registry.get("XPMagics")
    if magics is None:
        raise UsageError("xpmagic is not loaded: run %load_ext xpmagic first")
    return magics.optimize(parse_experiment_line(expanded(shell, line)), body)


def _show_magic_line_in_tracebacks(filename: str, line: str) -> None:
    """Tracebacks quote the cell from linecache, which IPython fills with the
    transformed code; put the user's own first line back (same line count)."""
    entry = linecache.cache.get(filename)
    if entry is not None and len(entry) == 4 and entry[2]:
        lines = list(entry[2])
        lines[0] = f"{MAGIC_PREFIX} {line}".rstrip() + "\n"
        linecache.cache[filename] = (entry[0], entry[1], lines, entry[3])

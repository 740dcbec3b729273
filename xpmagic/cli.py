"""The ``xpmagic`` command, and the argument syntax shared with ``%xp``.

Errors are one line on stderr and exit status 2 (bad input) or 1 (failure).
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import sys
from typing import Any

from .errors import DatabaseCorrupt, DatabaseNotFound, UsageError, XPError, file_error
from .store import Store


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so %xp can show one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        where = "" if self.prog == "xpmagic" else f"{self.prog}: "  # one_line() already says "xpmagic: "
        raise UsageError(f"{where}{message} (see {self.prog.split()[0]} --help)")


def _converted(text: str, convert: Any, kind: str) -> Any:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None


MAX_ID = 2**63 - 1  # SQLite's largest integer


def run_ref(text: str) -> int | str:
    if text == "last":
        return text
    value = _converted(text, int, "a run id (a number, or 'last')")
    if not 0 < value <= MAX_ID:
        raise argparse.ArgumentTypeError(f"run ids are positive numbers up to {MAX_ID}, got {text[:30]}")
    return value


def _at_least_one(text: str) -> int:
    value = _converted(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _not_negative(text: str) -> float:
    value = _converted(text, float, "a number")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def build_parser(prog: str = "xpmagic", in_notebook: bool = False) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="Query and export xpmagic experiment records.")
    if not in_notebook:
        from . import __version__

        parser.add_argument("--version", action="version", version=f"xpmagic {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if not in_notebook:
            sub.add_argument("--db", default=None,
                             help="database file (default: $XPMAGIC_DB, else ./xpmagic.db)")
            sub.add_argument("--json", action="store_true", help="print JSON")
        return sub

    command("db", "which database is in use, its schema version and size")
    runs = command("runs", "list runs, newest first")
    runs.add_argument("experiment", nargs="?", default=None, help="only this experiment")
    runs.add_argument("--experiment", dest="experiment_opt", default=None, help=argparse.SUPPRESS)
    runs.add_argument("--limit", type=_at_least_one, default=None, help="at most this many runs")
    show = command("show", "one run in full")
    show.add_argument("run", type=run_ref, help="run id, or 'last'")
    diff = command("diff", "what changed between two runs")
    diff.add_argument("a", type=run_ref)
    diff.add_argument("b", type=run_ref)
    lineage = command("lineage", "earlier runs whose outputs a run read")
    lineage.add_argument("run", type=run_ref)
    command("studies", "optimization studies: state, trials, best value and params, Optuna storage")
    for verb in ("pause", "resume", "stop"):
        sub = command(verb, f"{verb} a running optimization study (takes effect within a second)")
        sub.add_argument("study", help="study or experiment name")
    budget = command("budget", "change a study's trial budget: +N adds, N sets the total")
    budget.add_argument("study")
    budget.add_argument("trials", help="+N to add N trials, or N for a total of N")
    space = command("space", "change a parameter's range for trials not yet started")
    space.add_argument("study")
    space.add_argument("param")
    space.add_argument("low", type=float)
    space.add_argument("high", type=float)
    space.add_argument("--log", action="store_true", help="sample on a log scale")
    enqueue = command("enqueue", "queue a configuration to run next: NAME key=value ...")
    enqueue.add_argument("study")
    enqueue.add_argument("values", nargs="+", metavar="key=value")
    approve = command("approve", "approve the planned trials of a study run with --approve")
    approve.add_argument("study")
    approve.add_argument("count", nargs="?", type=int, default=None)
    phase = command("phase", "show, set or end the MLOps phase in focus")
    phase.add_argument("phase", nargs="*", help="phase key or name, e.g. model-development or 'data prep'")
    phase.add_argument("--end", action="store_true", help="end the focus")
    revisit = command("revisit", "work on another phase than the focus, with a reason")
    revisit.add_argument("phase", nargs="*", help="the phase revisited")
    revisit.add_argument("--reason", default=None, help="reason code, e.g. data-quality")
    revisit.add_argument("--note", default=None)
    revisit.add_argument("--end", action="store_true", help="end the open revisit")
    reasons = command("reasons", "list revisit reason codes, or add a team's own")
    reasons.add_argument("--add", default=None, metavar="CODE")
    reasons.add_argument("--description", default=None)
    phases = command("phases", "phase matrices: count, time, overlap, iteration index, reasons")
    phases.add_argument("--experiment", default=None, help="only revisits from this experiment's runs")
    phases.add_argument("--user", default=None, help="only this person's work")
    phases.add_argument("--since", default=None, help="from this date/time (ISO 8601)")
    phases.add_argument("--until", default=None, help="until this date/time (ISO 8601)")
    if not in_notebook:
        phases.add_argument("--csv", default=None, metavar="DIR", help="write every matrix as CSV")
        phases.add_argument("--plot", default=None, metavar="FILE", help="write a PNG or SVG figure")
        phases.add_argument("--idle-cutoff", type=float, default=30.0, metavar="MINUTES",
                            help="leave out gaps without activity longer than this (0: off)")
    knowledge = command("knowledge", "the knowledge table: show, export, import or merge it")
    knowledge.add_argument("action", nargs="?", default="show", choices=["show", "export", "import", "merge"])
    knowledge.add_argument("path", nargs="?", default=None,
                           help="export/import: a .json, .csv or .parquet file; merge: another database")
    knowledge.add_argument("--experiment", default=None, help="show the past tasks most similar to its data")
    recommend = command("recommend", "recommendations for an experiment's next optimization")
    recommend.add_argument("experiment_name", nargs="?", default=None, metavar="EXPERIMENT")
    recommend.add_argument("--experiment", default=None)
    replay = command("replay", "re-execute runs or a notebook in a fresh kernel and give a verdict")
    replay.add_argument("target", help="a run id, an experiment (its latest run), or a notebook .ipynb")
    replay.add_argument("--all", action="store_true", help="every run of the experiment")
    replay.add_argument("--best", action="store_true",
                        help="TARGET is a study or experiment: re-run its best trial as a single recorded run")
    replay.add_argument("--tolerance", type=_not_negative, default=1e-9, help="relative and absolute (default 1e-9)")
    replay.add_argument("--trust", action="store_true",
                        help="run code from a database another user or machine created")
    if not in_notebook:
        export_nb = command("export-notebook", "a standalone notebook that re-runs a run (papermill-ready)")
        export_nb.add_argument("run", type=run_ref)
        export_nb.add_argument("-o", "--output", required=True, help="the .ipynb file to write")
    if not in_notebook:
        worker = command("worker", "join a running study and evaluate its trials (on any machine that "
                                   "reaches its Optuna storage)")
        worker.add_argument("study", help="the study (or its experiment)")
        worker.add_argument("--storage", default=None, metavar="URL",
                            help="the study's Optuna storage, if the recorded URL needs a password "
                                 "(default: the recorded URL, with PGPASSWORD or ~/.pgpass)")
        worker.add_argument("--max-idle", type=float, default=60.0, metavar="S",
                            help="leave after S seconds with nothing to do (paused, or budget taken)")
    if not in_notebook:
        push = command("push", "publish knowledge rows to a team's PostgreSQL knowledge table (idempotent)")
        push.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host:port/db")
        push.add_argument("--experiment", default=None, help="only this experiment's rows")
        push.add_argument("--run", type=int, action="append", default=[], help="only this run's rows (repeatable)")
    if not in_notebook:
        export = command("export", "write runs to MLflow, W3C PROV-JSON, CSV or JSON")
        export.add_argument("--to", required=True, choices=["mlflow", "prov", "csv", "json"])
        export.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (--to mlflow)")
        export.add_argument("--experiment", default=None, help="only this experiment")
        export.add_argument("-o", "--output", default=None, help="file to write (default: stdout)")
    return parser


def parse_args(argv: list[str], prog: str = "xpmagic", in_notebook: bool = False) -> argparse.Namespace | None:
    """Parsed options, or None when --help was asked for (and printed)."""
    parser = build_parser(prog, in_notebook)
    if in_notebook and not argv:
        raise UsageError(f"{prog} needs a command: {_command_names(parser)} (see {prog} --help)")
    if not argv:  # a bare `xpmagic` in a terminal: what it can do
        parser.print_help()
        return None
    if argv[0] == "help":  # `xpmagic help show`, `%xp help`: as --help
        argv = argv[1:2] + ["--help"]
    try:
        return parser.parse_args(argv)
    except SystemExit:  # argparse printed the help
        return None


def _command_names(parser: argparse.ArgumentParser) -> str:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return ", ".join(action.choices)
    return ""


def resolve_run(store: Store, ref: int | str) -> int:
    if ref == "last":
        ids = store.run_ids(limit=1)
        if not ids:
            raise UsageError(f"no runs in {store.path} yet; run an %%experiment cell first")
        return ids[0]
    return int(ref)


def notebook_command(options: argparse.Namespace, store: Store, knowledge_store: Store | None = None,
                     in_notebook: bool = False) -> Any:
    """Run a %xp command and return what the notebook should display."""
    from . import display, queries

    name = options.command
    if name == "db":
        return DatabaseInfo(store)
    if name == "runs":
        experiment = options.experiment or options.experiment_opt
        _require_experiment(store, experiment)
        return queries.runs_frame(store, experiment, options.limit)
    if name == "show":
        return display.RunView(store.get_run(resolve_run(store, options.run)), store.display_data)
    if name == "diff":
        return display.DiffView(queries.diff_runs(
            store, resolve_run(store, options.a), resolve_run(store, options.b)))
    if name == "lineage":
        return display.LineageView(queries.lineage_tree(store, resolve_run(store, options.run)))
    if name == "studies":
        return StudiesInfo(store)
    if name == "knowledge":
        return knowledge_command(options, store, knowledge_store or store)
    if name == "recommend":
        from .recommend import for_experiment

        experiment = options.experiment or options.experiment_name
        if not experiment:
            raise UsageError("recommend needs an experiment: recommend NAME")
        return for_experiment(store, knowledge_store or store, experiment)
    if name == "replay":
        from .replay import replay_target

        progress = _ProgressBar(in_notebook)
        try:
            return replay_target(store, options.target, tolerance=options.tolerance, trust=options.trust,
                                 all_runs=options.all, best=options.best, progress=progress)
        finally:
            progress.close()  # a replay that stopped at a failing cell leaves its bar short of the end
    if name in STEERING:
        return steer(store, options, source="magic")
    raise UsageError(f"unknown command {name!r}")


def knowledge_command(options: argparse.Namespace, store: Store, knowledge: Store) -> Any:
    from . import knowledge as kb

    action, path = options.action, options.path
    if action in ("export", "import", "merge") and not path:
        raise UsageError(f"knowledge {action} needs a file (or, for merge, a database)")
    if action == "export":
        rows = kb.export_rows(knowledge)
        kb.write_rows(rows, path)
        return Message(f"exported {len(rows)} knowledge rows to {path}")
    if action == "import":
        rows = kb.read_rows(path)
        added = knowledge.add_knowledge(rows)
        return Message(f"imported {added} new knowledge rows from {path} into {knowledge.path} "
                       f"({len(rows) - added} already known)")
    if action == "merge":
        try:
            other = Store(path, create=False)
        except DatabaseNotFound:
            raise UsageError(f"knowledge merge: no xpmagic database at {path}, so nothing to merge from; "
                             "name the database whose knowledge you want") from None
        except DatabaseCorrupt as exc:  # its own hint (XPMAGIC_DB) is about the session's database
            what = str(exc).split(";")[0]
            raise UsageError(f"knowledge merge: {what}; name the xpmagic database whose "
                             "knowledge you want (to read a .json, .csv or .parquet file, use knowledge import)"
                             ) from None
        try:
            added = kb.merge(knowledge, other)
        finally:
            other.close()
        return Message(f"merged {added} new knowledge rows from {path} into {knowledge.path}")
    return KnowledgeView(store, knowledge, options.experiment)


class KnowledgeView:
    """The knowledge table, and for an experiment the most similar past tasks and why."""

    def __init__(self, store: Store, knowledge: Store, experiment: str | None):
        from .knowledge import table_text

        self.rows = knowledge.knowledge_rows()
        self._text = table_text(self.rows)
        self.similar: list[dict[str, Any]] = []
        if experiment:
            from .recommend import for_experiment

            self.similar = for_experiment(store, knowledge, experiment).similar_tasks

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "similar_tasks": self.similar}

    def __repr__(self) -> str:
        shown = " (the newest 50 below; --json for all)" if len(self.rows) > 50 else ""
        text = f"{len(self.rows)} knowledge rows{shown}\n{self._text}"
        if self.similar:
            text += "most similar past tasks (meta-feature distance; values: this task vs that one):\n" + "\n".join(
                f"  {t['name'] or t['task'][:8]}: distance {t['distance']}, best score {t['best_score']:.4g}; "
                f"{t['why']}" for t in self.similar)
        return text


PHASE_COMMANDS = ("phase", "revisit", "reasons", "phases")


def phase_command(options: argparse.Namespace, store: Store, tracker: Any,
                  idle_cutoff: float | None = None) -> Any:
    """Phase commands; ``tracker`` is the session's PhaseTracker."""
    from .phases import PHASES, REASONS
    from .phasetrack import PhaseFilter, build_report

    name = options.command
    if name == "phase":
        if options.end:
            return Message(tracker.end_focus())
        if options.phase:
            return Message(tracker.set_focus(" ".join(options.phase)))
        focus = tracker.focus()
        if focus is None:
            return Message("no phase in focus; set one with %xp phase KEY (xpmagic phase KEY in a terminal)")
        return Message(f"focus: {PHASES[focus]} ({focus})")
    if name == "revisit":
        if options.end:
            return Message(tracker.end_revisit())
        if not options.phase or not options.reason:
            raise UsageError("revisit needs a phase and --reason CODE, e.g. "
                             "revisit data-preparation --reason data-quality (or --end)")
        return Message(tracker.revisit(" ".join(options.phase), options.reason, options.note))
    if name == "reasons":
        if options.add is not None:
            return Message(_add_reason(store, options.add, options.description))
        return Message("\n".join(f"{code}: {text or ''}" for code, text in
                                 {**REASONS, **store.team_reasons()}.items()))
    _require_experiment(store, options.experiment)
    filters = PhaseFilter(user=options.user, experiment=options.experiment,
                          since=_moment(options.since), until=_moment(options.until))
    if idle_cutoff is None:
        return tracker.report(filters)
    return build_report(store, filters, idle_cutoff)


def _add_reason(store: Store, text: str, description: str | None) -> str:
    """A team's own reason code, spelt as codes are looked up ('Legal review' -> legal-review)."""
    from . import clock
    from .phases import REASONS, reason_code

    code = reason_code(text)
    known = {**REASONS, **store.team_reasons()}
    if code in known and (description is None or code in REASONS):
        return f"reason {code!r} already exists" + (f": {known[code]}" if known[code] else "")
    store.add_reason(code, description, clock.iso())
    return f"reason {code!r} {'updated' if code in known else 'added'}"


def _moment(text: str | None) -> Any:
    from . import clock

    if text is None:
        return None
    try:
        return clock.parse(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a date or time like 2026-11-23 or 2026-11-23T14:00") from None


class PushResult:
    def __init__(self, summary: dict[str, Any]):
        self.summary = summary

    def to_dict(self) -> dict[str, Any]:
        return self.summary

    def __repr__(self) -> str:
        s = self.summary
        return f"pushed {s['rows']} knowledge rows to {s['to']}: {s['new']} new, {s['already_there']} already there"


class Message:
    def __init__(self, text: str):
        self.text = text

    def to_dict(self) -> dict[str, str]:
        return {"message": self.text}

    def __repr__(self) -> str:
        return self.text


class _ProgressBar:
    """Cell-by-cell progress: a widget bar in a notebook, a text bar on stderr in a terminal
    (tqdm when it is installed)."""

    def __init__(self, in_notebook: bool = False):
        self.in_notebook = in_notebook
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        try:
            from tqdm import tqdm
            from tqdm.auto import tqdm as notebook_tqdm
        except ImportError:
            print(f"replay: cell {done}/{total}", file=sys.stderr)
            return
        if self.bar is None or self.bar.total != total or done < self.bar.n:
            self.close()
            self.bar = (notebook_tqdm(total=total, desc="replay", unit="cell") if self.in_notebook
                        else tqdm(total=total, desc="replay", unit="cell", file=sys.stderr))
        self.bar.update(done - self.bar.n)
        if done == total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


STEERING = ("pause", "resume", "stop", "budget", "space", "enqueue", "approve")


def steer(store: Store, options: argparse.Namespace, source: str) -> SteeringResult:
    """Send one steering command to a study; the study's own process applies it."""
    from .optimize import send

    name = options.command
    payload: dict[str, Any] = {}
    if name == "budget":
        text = options.trials.strip()
        try:
            number = int(text.lstrip("+"))
        except ValueError:
            raise UsageError(f"budget: {text!r} is not +N or N") from None
        payload = {"add": number} if text.startswith("+") else {"total": number}
    elif name == "space":
        payload = {"param": options.param, "low": options.low, "high": options.high, "log": options.log}
    elif name == "enqueue":
        payload = {"params": _parse_assignments(options.values)}
    elif name == "approve":
        payload = {"count": options.count}
    return SteeringResult(options.study, name, send(store, options.study, name, payload, source))


def _parse_assignments(values: list[str]) -> dict[str, Any]:
    import ast

    params: dict[str, Any] = {}
    for item in values:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UsageError(f"enqueue: write each value as key=value, got {item!r}")
        try:
            params[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            params[key] = text
    return params


class SteeringResult:
    def __init__(self, study: str, action: str, result: str):
        self.study, self.action, self.result = study, action, result

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "action": self.action, "result": self.result}

    def __repr__(self) -> str:
        return f"{self.study}: {self.result}"


class StudiesInfo:
    def __init__(self, store: Store):
        from .studystate import shown_state

        self.studies = [self._study(s, *shown_state(s)) for s in store.studies()]

    @staticmethod
    def _study(s: dict[str, Any], state: str, message: str | None) -> dict[str, Any]:
        return {"name": s["name"], "experiment_id": s["experiment_id"], "state": state,
                "n_trials": s["n_done"], "budget": s["budget"], "metric": s["metric"],
                "direction": s["direction"], "best_value": s["best_value"],
                "best_params": s["best_params"], "sampler": s["sampler"], "storage": s["storage"],
                "optuna_study": s["optuna_name"], "message": message, "updated_at": s["updated_at"]}

    def to_dict(self) -> list[dict[str, Any]]:
        return self.studies

    def __repr__(self) -> str:
        if not self.studies:
            return "no studies yet; start one with %%experiment NAME --optimize METRIC"
        return "\n".join(_study_line(s) for s in self.studies)


def _study_line(study: dict[str, Any]) -> str:
    best = (f"best {study['metric']} {study['best_value']:.6g} {study['best_params'] or ''}".rstrip()
            if study["best_value"] is not None else f"no trial has logged {study['metric']} yet")
    line = f"{study['name']}: {study['state']}, {study['n_trials']}/{study['budget'] or '∞'} trials, {best}"
    return line + (f" ({study['message']})" if study["message"] else "")


class DatabaseInfo:
    def __init__(self, store: Store):
        self.path = str(store.path)
        self.schema = store.schema_version()
        self.runs = store.run_count()
        self.size = store.path.stat().st_size

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "schema": self.schema, "runs": self.runs, "bytes": self.size}

    def __repr__(self) -> str:
        return f"{self.path} (schema {self.schema}, {self.runs} runs, {self.size / 1024:.0f} KiB)"


def _require_experiment(store: Store, experiment: str | None) -> None:
    """A misspelt experiment name says so, instead of listing no runs."""
    if experiment is None:
        return
    names = [e["name"] for e in store.experiments()]
    if experiment not in names:
        close = difflib.get_close_matches(experiment, names, n=3)
        if close:
            raise UsageError(f"no experiment {experiment!r} in {store.path}; did you mean "
                             + " or ".join(repr(name) for name in close) + "?")
        known = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none yet"
        raise UsageError(f"no experiment {experiment!r} in {store.path}; experiments: {known}")


def _knowledge_store(store: Store) -> Any:
    from .teamknowledge import open_knowledge

    return open_knowledge(store)


def _open_store(options: argparse.Namespace) -> Store:
    from .magics import resolve_db_path

    # Replaying a notebook may be the first thing recorded, and importing or merging knowledge
    # may start a knowledge file (a team share); everything else only reads.
    creates = ((options.command == "replay" and options.target.endswith(".ipynb"))
               or (options.command == "knowledge" and options.action in ("import", "merge")))
    return Store(resolve_db_path(options.db or ""), create=creates)


def _runs_text(store: Store, runs: list) -> str:
    """The runs as a table (runstable.py), wrapped to the terminal's width in a terminal
    (piped to a file or grep, one line per run)."""
    if not runs:
        return f"no runs yet in {store.path}; record one with an %%experiment NAME cell"
    from .runstable import runs_table

    return runs_table(runs, shutil.get_terminal_size().columns if sys.stdout.isatty() else None)


def _print_json(data: Any) -> None:
    from .jsontext import strict_json

    sys.stdout.write(strict_json(data, indent=2, default=str) + "\n")


def command_line(options: argparse.Namespace) -> int | None:
    from . import queries

    if options.command == "worker":
        return _worker(options)

    store = _open_store(options)
    try:
        if options.command == "export-notebook":
            from .replay import notebook_format, rebuild_notebook

            nbformat = notebook_format("export-notebook")
            nb = rebuild_notebook(store, resolve_run(store, options.run), parameters_cell=True)
            nbformat.write(nb, options.output)
            print(f"wrote {options.output}", file=sys.stderr)
            return 0
        if options.command == "export":
            from .export import export

            _require_experiment(store, options.experiment)
            export(store, options.to, experiment=options.experiment,
                   tracking_uri=options.tracking_uri, output=options.output)
            return 0
        if options.command == "push":
            from .teamknowledge import push

            _require_experiment(store, options.experiment)
            result = PushResult(push(store, options.to, experiment=options.experiment, run_ids=options.run))
        elif options.command in STEERING:
            result = steer(store, options, source="cli")
        elif options.command in PHASE_COMMANDS:
            from .phasetrack import PhaseTracker

            tracker = PhaseTracker(lambda: store, lambda: options.__dict__.get("idle_cutoff", 30.0))
            tracker.tracking = True
            cutoff = options.idle_cutoff if options.command == "phases" else None
            result = phase_command(options, store, tracker, idle_cutoff=cutoff)
            if options.command == "phases":
                if options.csv:
                    print("\n".join(f"wrote {p}" for p in result.write_csv(options.csv)), file=sys.stderr)
                if options.plot:
                    result.plot(options.plot)
                    print(f"wrote {options.plot}", file=sys.stderr)
        elif options.command == "runs":  # from the records: no DataFrame, so no pandas (0.3 s)
            experiment = options.experiment or options.experiment_opt
            _require_experiment(store, experiment)
            result = store.list_runs(experiment, options.limit)
        else:
            result = notebook_command(options, store, _knowledge_store(store))
        if not options.json:
            print(_runs_text(store, result) if options.command == "runs" else repr(result))
            return _exit_status(options, result)
        if options.command == "runs":
            _print_json([queries.run_summary_dict(run) for run in result])
        elif options.command == "show":
            _print_json(queries.run_detail_dict(result.run))
        elif options.command == "diff":
            _print_json(result.diff.to_dict())
        elif options.command == "lineage":
            _print_json(result.root.to_dict())
        else:
            _print_json(result.to_dict())
        return _exit_status(options, result)
    finally:
        store.close()


def _worker(options: argparse.Namespace) -> int:
    from .magics import resolve_db_path
    from .optimize._worker import run_worker

    db = str(resolve_db_path(options.db or ""))
    done = run_worker(db, options.study, storage=options.storage, max_idle_s=options.max_idle,
                      progress=lambda text: print(f"xpmagic worker: {text}", file=sys.stderr, flush=True))
    if options.json:
        _print_json({"study": options.study, "trials": done})
    else:
        print(f"ran {done} trials of {options.study}")
    return 0


def _exit_status(options: argparse.Namespace, result: Any) -> int:
    """Replay exits 0 only when everything reproduced, so it can gate a pipeline."""
    if options.command == "replay":
        return 0 if result.ok else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        options = parse_args(sys.argv[1:] if argv is None else argv)
        if options is not None:
            return command_line(options) or 0
    except UsageError as exc:
        print(exc.one_line(), file=sys.stderr)
        return 2
    except XPError as exc:
        print(exc.one_line(), file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except OSError as exc:
        print(file_error(exc).one_line(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

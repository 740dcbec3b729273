"""The ``xp`` handle that ``%load_ext xpmagic`` puts in the namespace."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .errors import NotInRun, UsageError
from .records import Run

if TYPE_CHECKING:
    from .recorder import Recorder
    from .run import ActiveRun
    from .store import Store

# A background trial sets this in its own thread; the foreground cell's run is
# the fallback, so threads the user starts inside a cell still log to its run.
current_run: ContextVar[ActiveRun | None] = ContextVar("xpmagic_current_run", default=None)


def describe_other_xp(value: Any) -> str:
    """What a non-handle value bound to ``xp`` is, for a warning ("numpy (a module)"): array
    code often names its namespace ``xp``."""
    kind = type(value).__name__
    name = getattr(value, "__name__", None)
    return f"{name} (a {kind})" if isinstance(name, str) else f"a {kind}"


class XPHandle:
    """Record parameters, metrics, data and files of the run in progress.

    Inside an ``%%experiment`` cell::

        C = xp.param("C", 1.0, low=1e-3, high=1e3, log=True)
        xp.dataset(X, y)
        xp.log(accuracy=0.93)
        xp.log("loss", 0.2, step=3)
        xp.artifact("model.pkl")
    """

    def __init__(self, recorder: Recorder, store: Any):
        self._recorder = recorder
        self._store_factory = store
        self._told_late: set[tuple[int, int]] = set()  # (thread, run) told their values came late

    def _run(self, what: str) -> ActiveRun:
        run = current_run.get() or self._recorder.foreground
        if run is None:
            raise NotInRun(f"{what} records into a run: call it inside an %%experiment cell")
        return run

    def _late(self, what: str) -> bool:
        """A thread a cell started that records after the cell's run ended: say so once, and let
        the thread go on (raising would end the person's training with our error). From the
        cell's own thread, or before any run, it is a plain mistake: NotInRun."""
        ended = self._recorder.last_run_id
        if threading.current_thread() is threading.main_thread() or ended is None:
            return False
        key = (threading.get_ident(), ended)
        if key not in self._told_late:
            self._told_late.add(key)
            print(f"xpmagic: {what} from thread {threading.current_thread().name!r} after run {ended} ended is not "
                  "recorded; a run ends with its cell: join the threads that record (t.join()) before it ends",
                  file=sys.stderr)
        return True

    @property
    def run_id(self) -> int | None:
        """Id of the run in progress, or None outside an experiment cell."""
        run = current_run.get() or self._recorder.foreground
        return None if run is None else run.id

    def param(self, name: str, default: Any, *, low: float | None = None,
              high: float | None = None, log: bool = False, step: float | None = None,
              choices: list | tuple | None = None) -> Any:
        """Declare a parameter and return its value (the default, unless a trial or replay sets it).

        Outside an experiment cell it validates the declaration and returns the default.
        """
        run = current_run.get() or self._recorder.foreground
        if run is None:
            from .run import make_param_spec

            return make_param_spec(name, default, low=low, high=high, log=log, step=step,
                                   choices=choices).value
        return run.param(name, default, low=low, high=high, log=log, step=step, choices=choices)

    def log(self, *name_value: Any, step: int | None = None, **metrics: Any) -> None:
        """Log metrics: ``xp.log(acc=0.9, loss=0.2)``, ``xp.log({"acc": 0.9})`` (a dict, as for
        MLflow's ``log_metrics``; nested ones, such as ``classification_report(output_dict=True)``,
        by dotted names: ``"macro avg.f1-score"``), or one series point ``xp.log("loss", 0.2, step=3)``.

        Without ``step`` a series counts 0, 1, 2, ... A metric called "step" is logged as
        ``xp.log("step", value)``.
        """
        run = current_run.get() or self._recorder.foreground
        if run is None:
            if self._late("xp.log"):
                return
            self._run("xp.log")
        if len(name_value) == 1 and isinstance(name_value[0], Mapping):
            metrics = {**flat_metrics(name_value[0]), **metrics}
            name_value = ()
        if name_value:
            if len(name_value) != 2:
                raise UsageError('xp.log takes a name and a value, e.g. xp.log("loss", 0.2, step=3),'
                                 ' keywords, e.g. xp.log(acc=0.9), or a dict, e.g. xp.log({"acc": 0.9})')
            run.log_value(name_value[0], name_value[1], step)
        for key, number in metrics.items():
            run.log_value(key, number, step)

    def dataset(self, X: Any, y: Any = None, name: str | None = None) -> None:
        """Record the data this run used: content fingerprint, shape and dtypes."""
        if self.run_id is None and self._late("xp.dataset"):
            return
        run = self._run("xp.dataset")
        run.dataset(X, y, name or self._name_of(X))

    def artifact(self, path: str | os.PathLike, name: str | None = None) -> None:
        """Record a file this run produced: its sha256, size and path."""
        if self.run_id is None and self._late("xp.artifact"):
            return
        self._run("xp.artifact").artifact(path, name)

    def next_run(self, params: dict[str, Any] | None = None, replay_of: int | None = None) -> None:
        """Give the next %%experiment run these parameter values (and link it to the run it
        replays). Rebuilt and exported notebooks use this; xp.param returns these values."""
        self._recorder.next_run = {"params": dict(params or {}), "replay_of": replay_of}

    def get(self, run_id: int) -> Run:
        """A recorded run, in full."""
        return self._store().get_run(int(run_id))

    def runs(self, experiment: str | None = None) -> Any:
        """All runs (or one experiment's) as a pandas DataFrame."""
        from .queries import runs_frame

        return runs_frame(self._store(), experiment)

    def study(self, name: str) -> Any:
        """Steer an optimization study (in this kernel or another process) by name."""
        from .optimize import StudyHandle

        return StudyHandle(self._store(), name)

    @property
    def db(self) -> str:
        return str(self._store().path)

    def _store(self) -> Store:
        return self._store_factory()

    def _name_of(self, value: Any) -> str | None:
        for key, candidate in self._recorder.shell.user_ns.items():
            if candidate is value and not key.startswith("_"):
                return key
        return None

    def __repr__(self) -> str:
        run_id = self.run_id
        state = f"run {run_id} in progress" if run_id is not None else "no run in progress"
        return f"<xpmagic handle: {state}; help(xp) for what it records>"


def flat_metrics(mapping: Mapping, prefix: str = "") -> dict[str, Any]:
    """{"0": {"precision": 0.9}, "accuracy": 0.8} -> {"0.precision": 0.9, "accuracy": 0.8}."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_metrics(value, f"{name}."))
        else:
            flat[name] = value
    return flat

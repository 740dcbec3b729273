"""``xpmagic worker NAME --db PATH``: join a running study from another process or machine.

The worker rebuilds the objective from the records alone, as replay does: it runs the
recorded cells whose outputs the study reads (found through lineage) in an in-process
IPython shell, then evaluates the study's cell body for trial after trial. Each trial is
recorded in PATH as a run of the study, with this worker's host and process. Steering comes
from the study's kernel through the Optuna storage (pause, resume, stop, budget, space).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from .. import procinfo
from ..bindings import Bindings
from ..environment import EnvironmentTracker
from ..errors import UsageError, XPError
from ..localcode import LocalCodeTracker, scripts_run_by
from ..recorder import split_cell
from ..store import Store
from ..teamknowledge import open_knowledge
from . import _remote as remote
from ._controller import BINDINGS_ATTR, STARTUP_ATTR, StudyConfig, StudyController, make_sampler
from ._space import SearchSpace
from ._storage import open_storage

IDLE_POLL_S = 0.5


def _rebuild_namespace(store: Store, input_runs: list[int], bindings: Bindings,
                       progress: Callable[[str], None]) -> dict[str, Any]:
    """Run the recorded cells the study reads from, oldest first, in a shell of our own,
    after the imports and definitions they and the study's cell need."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from ..bindings import bindings_of, setup_code
    from ..replay import _working_folder, alias_code, magic_line, renamed_inputs, upstream_runs

    runs: dict[int, Any] = {}
    for run_id in input_runs:
        for run in upstream_runs(store, run_id):
            runs[run.id] = run
    shell = InteractiveShell.instance()
    scratch = tempfile.mkdtemp(prefix="xpmagic-worker-")
    shell.run_line_magic("load_ext", "xpmagic")
    # The rebuilding runs are scaffolding, not results: they are recorded in a scratch file.
    shell.run_line_magic("config", f"XPMagics.db_path = {os.path.join(scratch, 'rebuild.db')!r}")
    shell.run_line_magic("config", "XPMagics.show_summary = False")
    setup = setup_code([*(bindings_of(runs[i]) for i in sorted(runs)), bindings])
    # As a kernel has it: the notebook's folder is where `import helpers` finds the person's modules.
    if "" not in sys.path:
        sys.path.insert(0, "")
    if runs:
        os.chdir(_working_folder(runs[max(runs)]))
    if setup:
        progress("importing and defining what the study's cells read")
        with capture_output():  # our one line says what failed; the shell's traceback would bury it
            result = shell.run_cell(setup, store_history=False)
        if not result.success:
            error = result.error_in_exec or result.error_before_exec
            raise XPError(f"the study's imports and definitions failed here: {type(error).__name__}: {error}; "
                          "install the packages it uses on this machine, and start the worker in the notebook's "
                          "folder if it imports modules of its own")
    renamed = renamed_inputs(store, [runs[i] for i in sorted(runs)])
    for run in (runs[i] for i in sorted(runs)):
        progress(f"rebuilding inputs: run {run.id} ({run.experiment})")
        os.chdir(_working_folder(run))
        shell.user_ns["xp"].next_run(params=run.params)
        _, body = split_cell(run.code)
        with capture_output():
            result = shell.run_cell(f"{magic_line(run)}\n{body}", store_history=False)
        if not result.success:
            error = result.error_in_exec or result.error_before_exec
            raise XPError(f"rebuilding the study's inputs failed at run {run.id} ({run.experiment}): "
                          f"{type(error).__name__}: {error}")
        if run.id in renamed:
            shell.run_cell(alias_code(renamed[run.id], run.id), store_history=False)
    return shell.user_ns


def _check_inputs(body: str, namespace: dict[str, Any]) -> None:
    """Every name the body reads before assigning it must exist, or every trial would fail."""
    import builtins

    from ..capture import cell_name_use

    missing = sorted(name for name in cell_name_use(body, lambda text: text).loaded
                     if name not in namespace and not hasattr(builtins, name))
    if missing:
        raise XPError(f"the study's cell reads {', '.join(missing)}, which no recorded cell produced: "
                      "record the cell that makes it with %%experiment, then start the study again")


class Worker:
    def __init__(self, db_path: str, study_name: str, *, storage: str | None = None,
                 max_idle_s: float = 60.0, progress: Callable[[str], None] = print):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.store = Store(db_path, create=False)
        self.record = self.store.study(study_name)
        self.id = f"{procinfo.host()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.max_idle_s = max_idle_s
        self.progress = progress
        self.trials_run = 0
        self._stop = threading.Event()
        storage_url = storage or self.record["storage"]
        # Unseeded: a worker must not propose the configurations the kernel's seeded sampler does.
        self.study = optuna.load_study(study_name=self.record["optuna_name"], storage=open_storage(storage_url))
        self.study.sampler = make_sampler(self.record["sampler"], None, SearchSpace.from_dict(self.record["space"]),
                                          self.study.user_attrs.get(STARTUP_ATTR))

    def _space(self) -> SearchSpace:
        published = remote.read_control(self.study).get("space")
        return SearchSpace.from_dict(published or self.record["space"])

    def _controller(self) -> StudyController:
        record = self.record
        _, body = split_cell(record["code"])
        inputs = self.study.user_attrs.get("xpmagic_inputs", [])
        bindings = Bindings(**self.study.user_attrs.get(BINDINGS_ATTR, {}))
        namespace = _rebuild_namespace(self.store, inputs, bindings, self.progress)
        body = namespace["get_ipython"]().transform_cell(body)  # IPython syntax (%time), as in the kernel
        _check_inputs(body, namespace)
        config = StudyConfig(metric=record["metric"], direction=record["direction"], trials=record["budget"],
                             sampler=record["sampler"], constraints=tuple(record["constraints"] or ()))
        environment = self.store.environment_id(EnvironmentTracker().snapshot())
        # The person's modules and scripts as this machine has them: the worker's trials ran those.
        folder = os.getcwd()
        local_code_id = self.store.local_code_id(LocalCodeTracker().loaded(folder) + scripts_run_by(body, folder))
        knowledge = open_knowledge(self.store)  # $XPMAGIC_KNOWLEDGE applies to a worker's trials too
        return StudyController(
            name=record["name"], experiment=record["experiment"], body=body, code=record["code"],
            config=config, store=lambda: self.store, namespace=namespace, study=self.study,
            study_id=record["id"], space=self._space(), notebook=None, environment_id=environment,
            max_output_chars=100_000, local_code_id=local_code_id, follower=True, knowledge=lambda: knowledge,
            lineage=[(run_id, "") for run_id in inputs],
            bindings=bindings)

    def _heartbeat(self) -> None:
        while not self._stop.wait(remote.HEARTBEAT_S):
            try:
                remote.beat(self.study, self.id)
            except Exception:
                pass  # the storage may be busy; the next beat will do

    def run(self) -> int:
        """Evaluate trials until the study stops or finishes (or nothing is left to do)."""
        remote.beat(self.study, self.id)
        threading.Thread(target=self._heartbeat, name="xpmagic-worker-heartbeat", daemon=True).start()
        controller = self._controller()
        self.progress(f"worker {self.id} joined study {self.record['name']}")
        idle_since = time.monotonic()
        try:
            while True:
                control = remote.read_control(self.study)
                state = control.get("state", "running")
                if state in ("stopped", "finished"):
                    self.progress(f"study {self.record['name']} is {state}")
                    break
                budget = control.get("budget", self.record["budget"])
                full = budget is not None and remote.counted(self.study.get_trials(deepcopy=False)) >= budget
                if state == "paused" or full:
                    if time.monotonic() - idle_since > self.max_idle_s:
                        self.progress(f"nothing to do for {self.max_idle_s:.0f} s: leaving")
                        break
                    time.sleep(IDLE_POLL_S)
                    continue
                if control.get("space"):
                    controller.space = SearchSpace.from_dict(control["space"])
                trial = self.study.ask(controller.space.distributions())
                if remote.over_budget(self.study, trial, budget):
                    remote.cancel(self.study, trial)  # another process took the last place first
                    continue
                trial.set_user_attr(remote.WORKER_ATTR, self.id)
                params = {**controller.space.fixed, **controller.space.from_optuna(trial.params)}
                controller._run_trial(trial, params)
                self.trials_run += 1
                idle_since = time.monotonic()
                info = controller.trials[-1]
                self.progress(f"trial {trial.number}: {info.state}"
                              + (f", {self.record['metric']} = {info.value:.6g}" if info.value is not None else ""))
        finally:
            self._stop.set()
        return self.trials_run


def run_worker(db_path: str, study_name: str, *, storage: str | None = None, max_idle_s: float = 60.0,
               progress: Callable[[str], None] = print) -> int:
    if not os.path.exists(db_path):
        raise UsageError(f"no xpmagic database at {db_path}: the worker records its trials there")
    return Worker(db_path, study_name, storage=storage, max_idle_s=max_idle_s, progress=progress).run()

"""A controllable optimization: Optuna trials in background threads, steered by a person.

Workers ask Optuna for a configuration, run the cell body as a recorded run in a
copy of the user's namespace, and tell Optuna the metric. Every steering action
(pause, resume, stop, budget, space edits, queue, approval, ratings) goes through
``apply`` and is recorded as an interaction. Requests from other processes arrive
as rows in ``study_controls`` and are polled several times a second.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..bindings import Bindings
from ..capture import cell_name_use
from ..errors import UsageError, XPError, first_line
from ..knowledge import constructed_model_family, rows_for_run
from ..recorder import code_hash
from ..records import ErrorInfo, NewRun, ParamSpec, RunOutcome, RunStatus, VariableRecord
from ..run import ActiveRun
from ..store import Store, utc_now
from . import _remote as remote
from ._constraints import Constraint
from ._evaluate import Evaluation, evaluate_here
from ._space import SearchSpace, distribution, from_optuna, is_searchable, optuna_choice

POLL_S = 0.2
PERSIST_EVERY_S = 0.5
SOURCES = ("panel", "magic", "python", "cli", "other-process", "system")


@dataclass(frozen=True)
class StudyConfig:
    metric: str
    direction: str = "maximize"
    trials: int | None = 20
    timeout_s: float | None = None
    sampler: str = "tpe"
    seed: int | None = None
    jobs: int = 1
    approve: bool = False
    approve_batch: int = 3
    constraints: tuple[str, ...] = ()
    resume: bool = False
    max_failures: int = 5
    recommend: bool = True
    narrow: bool = False  # also take the recommended narrowed space from the start (--narrow)
    storage: str | None = None   # an Optuna storage URL; None: the SQLite file beside the database
    cluster: str | None = None   # dask://HOST:PORT (or "dask": the notebook's Client) for the trials


@dataclass
class TrialInfo:
    """What the panel and the history show about one trial."""

    number: int
    params: dict[str, Any]
    state: str = "running"          # running, complete, failed, infeasible, cancelled
    value: float | None = None
    run_id: int | None = None
    started: float = field(default_factory=time.time)
    duration_s: float | None = None
    error: str | None = None
    rating: int | None = None


STARTUP_ATTR = "xpmagic_startup_trials"  # study user attribute: TPE's startup after warm starts
BINDINGS_ATTR = "xpmagic_bindings"  # study user attribute: imports and definitions a worker needs


def make_sampler(name: str, seed: int | None, space: SearchSpace, startup: int | None = None) -> Any:
    """``startup``: trials before TPE models the results (Optuna's default 10); after
    knowledge-driven warm starts it is their number, so TPE learns from them at once."""
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, **({"n_startup_trials": startup} if startup else {}))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed)
    if name == "grid":
        grid = {}
        for pname, spec in space.searchable().items():
            if spec.choices is not None:
                grid[space.optuna_name(pname)] = [optuna_choice(choice) for choice in spec.choices]
            elif spec.step:
                count = int(round((spec.high - spec.low) / spec.step)) + 1
                grid[space.optuna_name(pname)] = [spec.low + i * spec.step for i in range(count)]
            else:
                raise UsageError(f"--sampler grid needs choices or a step for {pname!r}")
        return optuna.samplers.GridSampler(grid, seed=seed)
    raise UsageError(f"unknown sampler {name!r}; use tpe, random, grid, cmaes or qmc")


class StudyController:
    """Runs and steers one study; thread-safe."""

    def __init__(self, *, name: str, experiment: str, body: str, code: str, config: StudyConfig,
                 store: Callable[[], Store], namespace: dict[str, Any], study: Any, study_id: int,
                 space: SearchSpace, notebook: str | None, environment_id: int | None,
                 max_output_chars: int, local_code_id: int | None = None, done_before: list[TrialInfo] | None = None,
                 on_change: Callable[[], None] | None = None,
                 knowledge: Callable[[], Store] | None = None,
                 lineage: list[tuple[int, str]] | None = None, bindings: Bindings | None = None,
                 variables: list[VariableRecord] | None = None, cluster: Any = None, follower: bool = False):
        self.name = name
        self.follower = follower  # an `xpmagic worker`: runs trials, leaves steering to the study's kernel
        self._published: dict[str, Any] | None = None
        self._remote_workers: set[str] = set()
        self._remote_running = 0
        self._synced_at = 0.0
        self._cluster = cluster  # a DaskCluster when --jobs dask://..., else trials run in threads here
        self.lineage = list(lineage or [])  # the runs whose outputs every trial reads
        self.bindings = bindings or Bindings()  # the code binding the modules, classes and functions it reads
        self.variables = list(variables or [])  # the notebook's variables every trial reads, fingerprinted once
        self.experiment = experiment
        self.config = config
        self.study = study
        self.study_id = study_id
        self.space = space
        self.budget = config.trials
        self.state = "running"
        self.message: str | None = None
        self.trials: list[TrialInfo] = list(done_before or [])
        self.queue: list[dict[str, Any]] = []
        self.planned: list[tuple[Any, dict[str, Any]]] = []  # (optuna trial, params) awaiting approval
        self.ready: list[tuple[Any, dict[str, Any]]] = []
        self.lessons: list[str] = []
        self.recommendation: Any = None
        self.started_at = time.time()
        self._body = body
        self._compiled = compile(body, f"<xpmagic study {name}>", "exec")
        self._code = code
        self._code_hash = code_hash(body)
        self._store = store
        self._knowledge = knowledge or store
        self._stored_names = sorted(cell_name_use(body, lambda text: text).stored)
        self._namespace = namespace
        # The model family of trials that leave no estimator in a variable (SVC(...) inline).
        self._constructed_family = constructed_model_family(body, namespace)
        self._notebook = notebook
        self._environment_id = environment_id
        self._local_code_id = local_code_id  # the person's own modules, as loaded when the study started
        self._max_output = max_output_chars
        self._constraints = [Constraint(c) for c in config.constraints]
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._running = 0
        self._persisted_at = 0.0
        self._consecutive_failures = 0
        self._threads: list[threading.Thread] = []
        self._listeners: list[Callable[[], None]] = [on_change] if on_change else []
        self._deadline = None if config.timeout_s is None else self.started_at + config.timeout_s

    # -- lifecycle ---------------------------------------------------------------
    def use_recommendation(self, recommendation: Any) -> None:
        """Warm-start configurations go first in the queue (they count as trials). The narrowed
        space is offered, and taken only with --narrow or Apply: benchmarks/transfer.py measured
        it no better at 10 or 25 trials and worse at 50 (SVC). Ignore undoes both."""
        self.recommendation = recommendation
        if recommendation is None or recommendation.empty:
            return
        self._space_before_recommendation = self.space.to_dict()
        if self.budget is not None:  # a warm start beyond the budget would never run
            del recommendation.warm_start[self.budget:], recommendation.warm_start_reasons[self.budget:]
        self.queue = [dict(c) for c in recommendation.warm_start] + self.queue
        narrowed = self.config.narrow and bool(recommendation.space)
        if narrowed:
            self._narrow_to(recommendation)
        self._startup_after(len(recommendation.warm_start))
        self._record("recommendation-used", "system", self._space_before_recommendation,
                     recommendation.to_dict(), None)
        offer = "" if narrowed or not recommendation.space else "; Apply also narrows the space"
        self.message = (f"warm-started with {len(recommendation.warm_start)} recommended configurations"
                        f"{' and a narrowed space' if narrowed else ''}{offer}; Ignore undoes it")

    def _startup_after(self, warm_starts: int) -> None:
        """TPE starts modelling right after the warm starts instead of sampling at random
        until its default 10 trials (transfer.py simulates exactly this). 0: Optuna's default."""
        if self.config.sampler != "tpe":
            return
        self.study.sampler = make_sampler("tpe", self.config.seed, self.space, startup=warm_starts or None)
        self.study.set_user_attr(STARTUP_ATTR, warm_starts or None)  # a resumed study or a worker reads it

    def _narrow_to(self, recommendation: Any) -> None:
        for name, bounds in recommendation.space.items():
            if name in self.space.specs:
                self.space.edit(name, low=bounds["low"], high=bounds["high"], log=bounds.get("log"))

    def start(self) -> None:
        for index in range(max(1, self.config.jobs)):
            thread = threading.Thread(target=self._worker, name=f"xpmagic-{self.name}-{index}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        poller = threading.Thread(target=self._poll_controls, name=f"xpmagic-{self.name}-control",
                                  daemon=True)
        poller.start()
        self._threads.append(poller)

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the study has stopped or finished and no trial runs (True), or until it
        can go on only with the person: paused, or its planned trials await approval (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not (self.state in ("stopped", "finished") and self._running == 0):
                if self.waiting_for_person() is not None:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining if remaining is not None else 0.5)
        return True

    def waiting_for_person(self) -> str | None:
        """What the study waits for the person to do, or None while it can go on by itself."""
        if self._running or self._remote_running:
            return None
        if self.state == "paused":
            return "it is paused: resume it (s.resume(), %xp resume, or the panel)"
        if self.state == "running" and self.config.approve and self.planned and not self.ready:
            n = len(self.planned)
            return (f"{n} planned trial{'s' if n != 1 else ''} await{'' if n != 1 else 's'} your approval "
                    "(s.approve(), %xp approve, or the panel)")
        return None

    @property
    def active(self) -> bool:
        return not (self.state in ("stopped", "finished") and self._running == 0)

    # -- counting ----------------------------------------------------------------
    def finished_trials(self) -> list[TrialInfo]:
        return [t for t in self.trials if t.state != "running"]

    def _committed(self) -> int:
        """Trials done, running, approved or planned: what counts against the budget."""
        counted = [t for t in self.trials if t.state != "cancelled"]
        return len(counted) + len(self.ready) + len(self.planned)

    def _budget_left(self) -> bool:
        if self._deadline is not None and time.time() >= self._deadline:
            return False
        if self.budget is None:
            return True
        committed = self._committed()
        if self._remote_workers:  # workers elsewhere ask too: the storage knows every trial
            committed = max(committed, remote.counted(self.study.get_trials(deepcopy=False))
                            + len(self.ready) + len(self.planned))
        return committed < self.budget

    def best(self) -> TrialInfo | None:
        feasible = [t for t in self.trials if t.state == "complete" and t.value is not None]
        if not feasible:
            return None
        pick = max if self.config.direction == "maximize" else min
        return pick(feasible, key=lambda t: t.value)

    # -- the worker loop ---------------------------------------------------------
    def _worker(self) -> None:
        while True:
            with self._changed:
                job = self._next_job_or_pause()
                while job is None:
                    if self._maybe_finish():
                        return
                    self._changed.wait(POLL_S)
                    job = self._next_job_or_pause()
                self._running += 1
            trial, params = job
            try:
                self._run_trial(trial, params)
            except Exception as exc:  # our own failure: surface it, never kill the kernel
                self.message = f"internal error: {type(exc).__name__}: {exc}"
            finally:
                with self._changed:
                    self._running -= 1
                    self._changed.notify_all()
                self._notify()

    def _next_job_or_pause(self) -> tuple[Any, dict[str, Any]] | None:
        """With the lock held. A failure to get the next trial (most often a storage whose server
        is gone) pauses the study with the reason instead of killing the thread; resume once fixed."""
        try:
            return self._next_job()
        except Exception as exc:
            if self.state == "running":
                self._set_state("paused", "system", message=(
                    f"paused: asking Optuna for the next trial failed: {type(exc).__name__}: {first_line(exc)}"))
            return None

    def _next_job(self) -> tuple[Any, dict[str, Any]] | None:
        """Called with the lock held."""
        if self.state != "running":
            return None
        if self.ready:
            return self.ready.pop(0)
        if not self._budget_left():
            return None
        if self.config.approve:
            if not self.planned:
                self._plan_batch()
            return None
        job = self._ask()
        if self._remote_workers and remote.over_budget(self.study, job[0], self.budget):
            self.trials.pop()
            self._cancel_trial(job[0])  # a worker took the last place first
            return None
        return job

    def _ask(self) -> tuple[Any, dict[str, Any]]:
        if self.queue:
            config = self.queue.pop(0)
            if self.recommendation is not None and config in self.recommendation.warm_start:
                self._widen_for(config)
            self.study.enqueue_trial(self.space.clip(config), skip_if_exists=False)
        trial = self.study.ask(self.space.distributions())
        params = {**self.space.fixed, **self.space.from_optuna(trial.params)}
        self.trials.append(TrialInfo(trial.number, params))
        return trial, params

    def _plan_batch(self) -> None:
        size = self.config.approve_batch
        if self.budget is not None:
            size = min(size, self.budget - self._committed())
        for _ in range(max(0, size)):
            trial, params = self._ask()
            self.trials.pop()  # planned, not started: shown in `planned`, not in the table
            self.planned.append((trial, params))
        if self.planned:
            self._notify()

    def _maybe_finish(self) -> bool:
        """With the lock held: end the worker when nothing more will run."""
        if self.state in ("stopped", "finished"):
            return True
        if self.state == "running" and not self.ready and not self.planned and not self._budget_left():
            if self._running == 0 and self._remote_running == 0 and self._remote_workers:
                self._look_at_remote_trials()  # a worker may have taken a trial since the last look
            if self._running == 0 and self._remote_running == 0:
                self._set_state("finished", "system", message="budget reached"
                                if self._deadline is None or time.time() < self._deadline
                                else "timeout reached")
            return self._running == 0 and self._remote_running == 0
        return False

    # -- one trial -----------------------------------------------------------------
    def _run_trial(self, trial: Any, params: dict[str, Any]) -> None:
        import optuna

        info = next(t for t in self.trials if t.number == trial.number) if any(
            t.number == trial.number for t in self.trials) else None
        if info is None:
            info = TrialInfo(trial.number, params)
            with self._lock:
                self.trials.append(info)
        info.started = time.time()
        store = self._store()
        run_id, run_uuid = store.start_run(NewRun(
            experiment=self.experiment, code=self._code, code_hash=self._code_hash,
            # No seed: the study's --seed seeds its sampler; the trial's own code runs unseeded (seeding
            # the process's random and numpy from a background thread would reseed the notebook's too).
            started_at=utc_now(), seed=None, tags=[f"study:{self.name}", f"trial:{trial.number}"],
            notebook=self._notebook, environment_id=self._environment_id,
            study_id=self.study_id, trial_number=trial.number))
        info.run_id = run_id
        if self._cluster is not None:
            result = self._cluster.evaluate(self, params)
        else:
            result = evaluate_here(self._compiled, self._namespace, self._active_run(run_id, trial, params, store),
                                   self._stored_names, self._max_output)
        value = result.last.get(self.config.metric)
        error = result.error
        if error is None and (value is None or not math.isfinite(value)):
            error = ErrorInfo("XPError", _missing_metric(self.config.metric, value, result.last), "")
        violations = [c.violation({**result.values, **result.last}) for c in self._constraints]
        state = "failed" if error is not None else "infeasible" if any(v > 0 for v in violations) else "complete"
        if state == "complete" and any(d.meta for d in result.datasets):
            self._add_knowledge(result, run_uuid, trial.number)
        store.finish_run(run_id, RunOutcome(
            status=RunStatus.FAILED if error else RunStatus.OK, ended_at=utc_now(),
            duration_s=result.duration_s, stdout=result.stdout, stderr=result.stderr, error=error,
            params=result.params, metrics=result.metrics, metric_chunks=result.chunks,
            datasets=result.datasets, artifacts=result.artifacts, trial_state=state, lineage=self.lineage,
            variables=self.variables, imports=self.bindings.imports, definitions=self.bindings.definitions,
            host=result.host, local_code_id=self._local_code_id))
        with self._lock:
            if violations:
                self.study._storage.set_trial_system_attr(trial._trial_id, "constraints", violations)
            if state == "failed":
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(trial, value)
            info.state, info.value, info.duration_s = state, value, result.duration_s
            info.params = {**params, **result.values}
            info.error = None if error is None else f"{error.type}: {error.message}"
            self._after_trial(state)
            if state == "complete":
                self._adapt_warm_starts()

    def _active_run(self, run_id: int, trial: Any, params: dict[str, Any], store: Store) -> ActiveRun:
        def suggest(spec: ParamSpec) -> Any:
            if not is_searchable(spec):
                return spec.value
            return from_optuna(spec, trial._suggest(self.space.optuna_name(spec.name), distribution(spec)))

        return ActiveRun(run_id, self.experiment, write_chunk=store.write_metric_chunks,
                         overrides=params, suggest=suggest)

    def _add_knowledge(self, result: Evaluation, run_uuid: str, number: int) -> None:
        rows = rows_for_run(
            run_uuid=run_uuid, experiment=self.experiment, datasets=result.datasets,
            params=result.values, metrics={self.config.metric: result.last.get(self.config.metric)},
            cost_s=result.duration_s, model_family=result.model_family or self._constructed_family,
            origin=str(self._store().path),
            directions={self.config.metric: self.config.direction}, study=self.name,
            trial_number=number, sampler=self.config.sampler)
        knowledge = self._knowledge()
        for dataset in result.datasets:
            if dataset.meta:
                knowledge.save_task(dataset.fingerprint, dataset.name, dataset.meta, utc_now())
        knowledge.add_knowledge(rows)

    def _after_trial(self, state: str) -> None:
        self._consecutive_failures = self._consecutive_failures + 1 if state == "failed" else 0
        if self._consecutive_failures >= self.config.max_failures and self.state == "running" \
                and not self.follower:
            last = self.trials[-1].error if self.trials else ""
            self._set_state("paused", "system", message=(
                f"paused after {self._consecutive_failures} failed trials in a row (last: {last});"
                " fix the cause, then resume"))
        now = time.monotonic()
        if now - self._persisted_at > PERSIST_EVERY_S or not self._budget_left():
            self._persist()  # throttled: other processes read the study row, trials are in runs

    # -- steering --------------------------------------------------------------------
    def apply(self, action: str, payload: dict[str, Any] | None = None, source: str = "python") -> str:
        """Carry out one steering action; returns a short description of the result."""
        payload = payload or {}
        handler = getattr(self, f"_do_{action.replace('-', '_')}", None)
        if handler is None:
            raise UsageError(f"unknown study action {action!r}")
        with self._changed:
            before, after, trial_number, result = handler(**payload)
            self._record(action, source, before, after, trial_number)
            self._changed.notify_all()
        self._persist()
        self._notify()
        return result

    def _do_pause(self) -> tuple:
        if self.state != "running":
            raise UsageError(f"study {self.name!r} is {self.state}, not running")
        self.state, self.message = "paused", "paused by the person"
        return "running", "paused", None, "paused: running trials finish, no new ones start"

    def _do_resume(self) -> tuple:
        if self.state != "paused":
            raise UsageError(f"study {self.name!r} is {self.state}, not paused")
        self.state, self.message = "running", None
        self._consecutive_failures = 0
        return "paused", "running", None, "resumed"

    def _do_stop(self) -> tuple:
        if self.state in ("stopped", "finished"):
            raise UsageError(f"study {self.name!r} is already {self.state}")
        before = self.state
        self.state, self.message = "stopped", "stopped by the person"
        for trial, _ in self.planned + self.ready:
            self._cancel_trial(trial)
        self.planned, self.ready = [], []
        return before, "stopped", None, "stopped: running trials finish, no new ones start"

    def _do_budget(self, add: int | None = None, total: int | None = None) -> tuple:
        before = self.budget
        if add is not None:
            self.budget = (self.budget or len(self.trials)) + int(add)
        elif total is not None:
            self.budget = int(total)
        if self.budget is not None and self.budget < len(self.finished_trials()):
            self.budget = before
            raise UsageError(f"the budget cannot go below the {len(self.finished_trials())} trials already run")
        if self.state == "finished" and self._budget_left():
            self.state, self.message = "running", None
            self._restart_workers()
        return before, self.budget, None, f"budget is now {self.budget} trials"

    def _do_space(self, param: str, low: float | None = None, high: float | None = None,
                  log: bool | None = None, choices: list | None = None) -> tuple:
        before = self.space.specs[param].to_dict() if param in self.space.specs else None
        self.space.edit(param, low=low, high=high, log=log, choices=choices)
        moved = self._fit_queue_to_space()
        self._replan()
        message = f"{param} now {_describe(self.space.specs[param])}"
        if moved:
            message += "; " + "; ".join(moved) + " (s.cancel(N) removes a queued configuration)"
        return before, self.space.specs[param].to_dict(), None, message

    def _fit_queue_to_space(self) -> list[str]:
        """Configurations the person queued that a space edit left outside move inside at once, and
        say so: the queue shows what will run. (A recommended one widens the space instead.)"""
        moved = []
        for number, config in enumerate(self.queue, 1):
            if self.recommendation is not None and config in self.recommendation.warm_start:
                continue
            fitted = self.space.clip(config)
            changes = [f"{name}={value!r} -> " + (repr(fitted[name]) if name in fitted else "left to the sampler")
                       for name, value in config.items() if name not in fitted or fitted[name] != value]
            if changes:
                self.queue[number - 1] = fitted
                moved.append(f"queued #{number} now runs with {', '.join(changes)}")
        return moved

    def _do_fix(self, param: str, value: Any) -> tuple:
        before = self.space.fixed.get(param)
        self.space.fix(param, value)
        self._replan()
        return before, value, None, f"{param} fixed to {value!r}"

    def _do_unfix(self, param: str) -> tuple:
        before = self.space.fixed.get(param)
        self.space.unfix(param)
        self._replan()
        return before, None, None, f"{param} is searched again"

    def _do_enqueue(self, params: dict[str, Any]) -> tuple:
        unknown = set(params) - set(self.space.specs)
        if unknown:
            raise UsageError(f"unknown parameters {sorted(unknown)}; parameters: {', '.join(self.space.specs)}")
        if not params:
            raise UsageError("enqueue needs the values to try, e.g. enqueue(C=1.0); "
                             f"parameters: {', '.join(self.space.specs)}")
        self.space.check_queued(params)
        entry = dict(params)
        self.queue.append(entry)
        self._replan()  # with --approve, the queue's head becomes a planned trial at once
        position = next((i for i, queued in enumerate(self.queue) if queued is entry), None)
        where = (f"queued as #{position + 1}" if position is not None
                 else "planned: it awaits your approval with the other planned trials")
        return None, dict(params), None, where

    def _do_cancel(self, index: int) -> tuple:
        if not 0 <= index < len(self.queue):
            raise UsageError(f"no queued configuration #{index + 1}; the queue has {len(self.queue)}")
        removed = self.queue.pop(index)
        return removed, None, None, "removed from the queue"

    def _do_reorder(self, index: int, to: int) -> tuple:
        if not self.queue:
            raise UsageError("the queue is empty: enqueue a configuration first")
        if not (0 <= index < len(self.queue) and 0 <= to < len(self.queue)):
            raise UsageError(f"queue positions run from 1 to {len(self.queue)}")
        before = list(self.queue)
        self.queue.insert(to, self.queue.pop(index))
        return before, list(self.queue), None, "queue reordered"

    def _do_approve(self, count: int | None = None) -> tuple:
        if not self.planned:
            raise UsageError("nothing is waiting for approval")
        count = len(self.planned) if count is None else int(count)
        if count < 1:
            raise UsageError(f"approve at least 1 of the {len(self.planned)} planned trials, "
                             "or reject the ones you do not want")
        approved, self.planned = self.planned[:count], self.planned[count:]
        for trial, params in approved:
            self.trials.append(TrialInfo(trial.number, params))
        self.ready += approved
        return None, [p for _, p in approved], None, \
            f"approved {len(approved)} trial{'s' if len(approved) != 1 else ''}"

    def _do_reject(self, index: int) -> tuple:
        if not 0 <= index < len(self.planned):
            planned = f"planned trials are #1 to #{len(self.planned)}" if self.planned else "nothing is planned"
            raise UsageError(f"no planned trial #{index + 1}; {planned}")
        trial, params = self.planned.pop(index)
        self._cancel_trial(trial)
        return params, None, trial.number, "rejected"

    def _do_apply_recommendation(self) -> tuple:
        """Accept the recommendation (again, after an Ignore): warm starts and narrowed space."""
        rec = self.recommendation
        if rec is None or rec.empty:
            raise UsageError("there is no recommendation for this study")
        before = self.space.to_dict()
        missing = [dict(c) for c in rec.warm_start if c not in self.queue
                   and not any(t.params == c for t in self.trials)]
        self.queue = missing + self.queue
        self._narrow_to(rec)
        self._startup_after(len(rec.warm_start))
        self._replan()
        return before, self.space.to_dict(), None, (
            f"applied: {len(missing)} warm starts queued, narrowed {', '.join(rec.space) or 'nothing'}")

    def _do_ignore_recommendation(self) -> tuple:
        """Undo the recommendation: drop queued warm starts, restore the cell's search space."""
        rec = self.recommendation
        if rec is None or rec.empty:
            raise UsageError("there is no recommendation for this study")
        before = {"queue": list(self.queue), "space": self.space.to_dict()}
        self.queue = [q for q in self.queue if q not in rec.warm_start]
        original = getattr(self, "_space_before_recommendation", None)
        if original is not None:
            self.space = SearchSpace.from_dict(original)
        self._startup_after(0)
        self.message = None
        self._replan()
        return before, {"queue": list(self.queue), "space": self.space.to_dict()}, None, (
            f"ignored: {len(before['queue']) - len(self.queue)} warm starts removed, search space restored")

    def _do_rate(self, trial: int, rating: int) -> tuple:
        if not 1 <= int(rating) <= 5:
            raise UsageError("a rating is 1 to 5 stars")
        info = next((t for t in self.trials if t.number == int(trial)), None)
        if info is None:
            raise UsageError(f"no trial {trial} in study {self.name!r}")
        before, info.rating = info.rating, int(rating)
        # On the study, not the trial: Optuna freezes a finished trial's attributes, and
        # finished trials are the ones people rate.
        ratings = {**self.study.user_attrs.get("ratings", {}), str(info.number): int(rating)}
        self.study.set_user_attr("ratings", ratings)
        self._knowledge().rate_knowledge(self.name, info.number, int(rating))
        return before, int(rating), info.number, f"trial {trial} rated {rating}/5"

    def _do_lesson(self, text: str) -> tuple:
        text = str(text).strip()
        if not text:
            raise UsageError("a lesson needs some text")
        self.lessons.append(text)
        self.study.set_user_attr("lessons", self.lessons)
        self._knowledge().note_knowledge(self.name, "\n".join(self.lessons))
        return None, text, None, "lesson saved"

    def _trial_id(self, number: int) -> int:
        return next(t._trial_id for t in self.study.get_trials(deepcopy=False) if t.number == number)

    def _cancel_trial(self, trial: Any) -> None:
        import optuna

        trial.set_user_attr("xpmagic_cancelled", True)
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        self.trials.append(TrialInfo(trial.number, self.space.from_optuna(trial.params), state="cancelled"))

    def _widen_for(self, config: dict[str, Any]) -> None:
        """A recommended trial outside the narrowed space widens it instead of being clipped:
        when this task's results pointed to other past tasks, their good region is where it is
        (transfer.py measured widening better than clipping)."""
        before = self.space.to_dict()
        widened = self.space.widen_to(config)
        if widened:
            self._record("space", "system", before, self.space.to_dict(), None)
            self.message = f"widened {', '.join(widened)} to take in a recommended trial"

    def _adapt_warm_starts(self) -> None:
        """With the lock held: the recommended trials still queued are chosen again from this
        study's results so far (guide.py re-weighs past tasks by how they ranked them)."""
        rec = self.recommendation
        guide = getattr(rec, "guide", None)
        pending = [i for i, q in enumerate(self.queue) if rec is not None and q in rec.warm_start]
        observed = [(t.params, t.value) for t in self.trials if t.state == "complete" and t.value is not None]
        if guide is None or not pending or len(observed) < 2:
            return
        others = [q for i, q in enumerate(self.queue) if i not in pending]

        def taken(config: dict[str, Any]) -> bool:
            return config in others or any(all(t.params.get(k) == v for k, v in config.items()) for t in self.trials)

        for index, pick in zip(pending, guide.plan(observed, len(pending), exclude=taken)):
            old = self.queue[index]
            slot = rec.warm_start.index(old)
            rec.warm_start_reasons[slot] = pick.reason  # the same configuration may be chosen for a new reason
            if pick.config == old:
                continue
            self.queue[index] = dict(pick.config)
            rec.warm_start[slot] = dict(pick.config)
            self._record("recommendation-adapted", "system", old, pick.config, None)

    def _replan(self) -> None:
        """Planned (unapproved) trials were sampled from the old space or queue: sample again."""
        if not self.planned:
            return
        for trial, _ in self.planned:
            self._cancel_trial(trial)
        self.planned = []
        if self.state == "running" and self._budget_left():
            self._plan_batch()

    def _restart_workers(self) -> None:
        """A finished study given more budget: start the threads that had ended."""
        self._threads = [t for t in self._threads if t.is_alive()]
        workers = [t for t in self._threads if not t.name.endswith("-control")]
        for index in range(len(workers), max(1, self.config.jobs)):
            thread = threading.Thread(target=self._worker, name=f"xpmagic-{self.name}-{index}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        if not any(t.name.endswith("-control") for t in self._threads):
            poller = threading.Thread(target=self._poll_controls, name=f"xpmagic-{self.name}-control",
                                      daemon=True)
            poller.start()
            self._threads.append(poller)

    # -- bookkeeping -----------------------------------------------------------------
    def _set_state(self, state: str, source: str, message: str | None = None) -> None:
        before = self.state
        self.state, self.message = state, message
        self._record(state, source, before, state, None)
        self._changed.notify_all()
        self._persist()

    def _record(self, action: str, source: str, before: Any, after: Any, trial: int | None) -> None:
        self._store().record_interaction(self.study_id, action, source, before, after, utc_now(), trial)

    def _persist(self) -> None:
        if self.follower:
            return  # the study's own kernel owns its record and its steering state
        self._persisted_at = time.monotonic()
        self._published = remote.publish(self.study, {
            "state": self.state, "budget": self.budget, "space": self.space.to_dict(),
            "deadline": self._deadline}, self._published)
        best = self.best()
        self._store().update_study(
            self.study_id, utc_now(), state=self.state, message=self.message,
            n_done=len([t for t in self.trials if t.state not in ("running", "cancelled")]),
            budget=self.budget, space=self.space.to_dict(),
            best_value=None if best is None else best.value,
            best_params=None if best is None else self.space.from_optuna(best.params))

    def _notify(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                pass

    def _poll_controls(self) -> None:
        while self.active:
            try:
                store = self._store()
                for control_id, action, payload, source in store.pending_controls(self.study_id):
                    try:
                        result = self.apply(action, payload, source=source)
                    except XPError as exc:
                        result = f"refused: {exc}"
                    store.mark_control_applied(control_id, result, utc_now())
                if time.monotonic() - self._synced_at > remote.HEARTBEAT_S / 5:
                    self._sync_remote_trials()
            except Exception:
                pass  # the database may be busy; try again on the next tick
            time.sleep(POLL_S)

    def _look_at_remote_trials(self) -> None:
        try:
            self._sync_remote_trials()
        except Exception:
            pass  # the storage may be busy; the poll thread looks again

    def _sync_remote_trials(self) -> None:
        """Fold trials that `xpmagic worker` processes ran into this view (panel, best, budget)."""
        self._synced_at = time.monotonic()
        workers = remote.live_workers(self.study.user_attrs)
        if not workers and not self._remote_workers:
            return
        changed = False
        with self._changed:
            self._remote_workers |= workers
            known = {t.number: t for t in self.trials}
            running = 0
            for frozen in self.study.get_trials(deepcopy=False):
                worker = frozen.user_attrs.get(remote.WORKER_ATTR)
                if worker is None:
                    continue
                state = remote.trial_state(frozen)
                if state == "running" and worker not in workers:
                    state = "failed"  # its worker went silent
                running += state == "running"
                info = known.get(frozen.number)
                if info is None:
                    started = frozen.datetime_start.timestamp() if frozen.datetime_start else time.time()
                    info = TrialInfo(frozen.number, self.space.from_optuna(frozen.params), started=started)
                    self.trials.append(info)
                    changed = True
                if info.state != state:
                    info.state, info.value, changed = state, frozen.value, True
                    if frozen.datetime_complete and frozen.datetime_start:
                        info.duration_s = (frozen.datetime_complete - frozen.datetime_start).total_seconds()
            self._remote_running = running
            if changed:
                self._changed.notify_all()
        if changed:
            self._persist()
            self._notify()


def _describe(spec: ParamSpec) -> str:
    if spec.choices is not None:
        return f"one of {list(spec.choices)}"
    return f"in [{spec.low}, {spec.high}]" + (" (log)" if spec.log else "")


def _missing_metric(metric: str, value: float | None, logged: dict[str, Any]) -> str:
    """Why a trial without a usable objective failed, naming what the cell did log."""
    if value is not None:
        return f"the cell logged {metric}={value}; the objective must be a finite number"
    others = ", ".join(sorted(logged)) or "nothing"
    return f"the cell did not log {metric!r} with xp.log (it logged: {others})"

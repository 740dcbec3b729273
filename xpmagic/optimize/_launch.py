"""Starting or resuming a study from an ``%%experiment --optimize`` cell."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, replace
from typing import Any

from ..bindings import Bindings
from ..errors import MissingDependency, UsageError, first_line
from ..localcode import scripts_missing
from ..records import VariableRecord
from ..store import Store, utc_now
from ._controller import BINDINGS_ATTR, STARTUP_ATTR, StudyConfig, StudyController, TrialInfo, make_sampler
from ._space import SearchSpace
from ._storage import default_url, open_storage, optuna_path, recorded_url

# The controllers this process drives, by study name.
controllers: dict[str, StudyController] = {}
__all__ = ["controllers", "launch", "optuna_path"]


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise MissingDependency("optuna", "--optimize") from None
    optuna.logging.set_verbosity(logging.WARNING)  # trial logs would spill into other cells
    return optuna


def launch(*, store: Store, store_factory: Any, experiment: str, body: str, code: str,
           config: StudyConfig, namespace: dict, notebook: str | None,
           environment_id: int | None, max_output_chars: int, local_code_id: int | None = None,
           knowledge: Any = None, lineage: list[tuple[int, str]] | None = None,
           bindings: Bindings | None = None, variables: list[VariableRecord] | None = None) -> StudyController:
    optuna = _import_optuna()
    if config.direction not in ("maximize", "minimize"):
        raise UsageError("direction must be maximize or minimize")
    record = store.study(experiment) if config.resume else None
    storage_url = config.storage or (record["storage"] if record else None) or default_url(store.path)
    storage = open_storage(storage_url)
    missing = scripts_missing(body)
    if missing:  # every trial would fail on it
        raise UsageError(f"%run {missing[0]}: no such script in {os.getcwd()}; check the name, or %cd to its folder")
    space = SearchSpace.from_cell(body, namespace)
    cluster = None
    if config.cluster:
        from ._dask import DaskCluster

        if "get_ipython()" in body:  # a line magic or %run, rewritten: Dask workers have no IPython
            raise UsageError("on a Dask cluster the objective must be plain Python: it uses IPython syntax "
                             "(a %magic or !command); run it in this kernel, or with xpmagic worker")

        cluster = DaskCluster.connect(config.cluster, body=body, namespace=namespace, experiment=experiment,
                                      stored_names=stored_names(body), max_output=max_output_chars)
        config = replace(config, jobs=cluster.slots)  # as many trials at once as the cluster has threads
    done: list[TrialInfo] = []
    if record is not None:
        if record["state"] == "running" and record["name"] in controllers and controllers[record["name"]].active:
            raise UsageError(f"study {record['name']!r} is already running in this kernel")
        name, study_id = record["name"], record["id"]
        space = SearchSpace.from_dict(record["space"]) if record["space"] else space
        study = optuna.load_study(study_name=record["optuna_name"], storage=storage)
        study.sampler = make_sampler(config.sampler, config.seed, space, study.user_attrs.get(STARTUP_ATTR))
        run_ids = {number: run_id for run_id, number, _, _ in store.study_runs(study_id)}
        done = _recover_trials(optuna, study, run_ids, space)
        store.claim_study(study_id, utc_now())
        store.record_interaction(study_id, "resume-after-restart", "system", record["state"],
                                 "running", utc_now())
    else:
        if not space.searchable():
            if space.computed:
                raise UsageError(
                    f"--optimize reads the search space before the trials run, but {space.computed[0]} uses "
                    "values the cell computes itself: give its range as numbers, or define them in an earlier cell")
            raise UsageError(
                "--optimize needs at least one xp.param with a range or choices, e.g. "
                "xp.param('C', 1.0, low=1e-3, high=1e3, log=True)")
        taken = (set(store.study_names_for(experiment)) | {s["name"] for s in store.studies()}
                 | set(optuna.study.get_all_study_names(storage)))  # a shared storage has others' studies
        name = experiment
        counter = 2
        while name in taken:
            name, counter = f"{experiment}-{counter}", counter + 1
        study = optuna.create_study(study_name=name, storage=storage, direction=config.direction,
                                    sampler=make_sampler(config.sampler, config.seed, space))
        study.set_user_attr("xpmagic_db", str(store.path))
        study.set_user_attr("xpmagic_inputs", sorted({source for source, _ in lineage or []}))
        study.set_user_attr(BINDINGS_ATTR, asdict(bindings or Bindings()))  # for `xpmagic worker`
        study_id = store.create_study(
            name=name, experiment=experiment, optuna_name=name, storage=recorded_url(storage_url),
            metric=config.metric, direction=config.direction, sampler=config.sampler,
            seed=config.seed, budget=config.trials, timeout_s=config.timeout_s, jobs=config.jobs,
            approve=config.approve_batch if config.approve else 0,
            constraints=list(config.constraints), space=space.to_dict(),
            code=code, now=utc_now())
    controller = StudyController(
        name=name, experiment=experiment, body=body, code=code, config=config, store=store_factory,
        namespace=namespace, study=study, study_id=study_id, space=space, notebook=notebook,
        environment_id=environment_id, local_code_id=local_code_id, max_output_chars=max_output_chars,
        done_before=done, knowledge=knowledge, lineage=lineage, bindings=bindings, variables=variables, cluster=cluster)
    controllers[name] = controller
    if config.recommend and not config.resume and knowledge is not None:
        from ..recommend import for_cell

        try:
            recommendation = for_cell(knowledge(), source=body, namespace=namespace, specs=space.specs,
                                      metric=config.metric, direction=config.direction)
        except Exception as exc:  # the study matters more than its head start: run it cold, say why
            recommendation = None
            controller.message = f"started without recommendations: {type(exc).__name__}: {first_line(exc)}"
            controller._record("recommendation-unavailable", "system", None, controller.message, None)
        controller.use_recommendation(recommendation)
    controller.start()
    return controller


def stored_names(body: str) -> list[str]:
    from ..capture import cell_name_use

    return sorted(cell_name_use(body, lambda text: text).stored)


def _recover_trials(optuna: Any, study: Any, run_ids: dict[int, int], space: SearchSpace) -> list[TrialInfo]:
    """Trials of a study resumed after a restart; ones left running died with the kernel."""
    done = []
    ratings = study.user_attrs.get("ratings", {})
    for trial in study.get_trials(deepcopy=False):
        if trial.state == optuna.trial.TrialState.RUNNING:
            study._storage.set_trial_user_attr(trial._trial_id, "xpmagic_interrupted", True)
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            state = "interrupted"
        elif trial.state == optuna.trial.TrialState.COMPLETE:
            infeasible = any(v > 0 for v in trial.system_attrs.get("constraints", []))
            state = "infeasible" if infeasible else "complete"
        elif trial.user_attrs.get("xpmagic_cancelled"):
            state = "cancelled"
        else:
            state = "failed"
        done.append(TrialInfo(trial.number, space.from_optuna(trial.params), state=state,
                              value=trial.value if state in ("complete", "infeasible") else None,
                              run_id=run_ids.get(trial.number),
                              rating=ratings.get(str(trial.number), trial.user_attrs.get("rating"))))
    return done

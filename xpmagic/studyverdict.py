"""Verdicts for the optimizations a replayed notebook ran: each new study against the latest
study its cell made before (replaymatch.py), trial by trial.

A seeded study that runs one trial at a time proposes the same configurations again, so its
trials' results are compared in order; what changed is explained as for a run, plus what only
a study has (no seed, trials run in parallel, first trials taken from a knowledge table that
has grown since).
"""

from __future__ import annotations

from typing import Any

from .replaymatch import match_recordings
from .store import Store

_TRIAL_UNSEEDED = ("the trials' code sets no seed of its own (a study's --seed seeds its sampler only): "
                   "if it uses randomness, give it a seed in the code, e.g. random_state=0")



def study_verdicts(store: Store, studies_before: int, tolerance: float,
                   holding_records: frozenset[str] = frozenset()) -> list[Any]:
    """A verdict for every study created after study id ``studies_before``."""
    studies = sorted(store.studies(), key=lambda s: s["id"])
    new = [s for s in studies if s["id"] > studies_before]
    earlier = [s for s in studies if s["id"] <= studies_before
               and not store.is_replay_study(s["id"])]  # an earlier replay's study is no baseline
    originals = match_recordings([(s["id"], s["experiment_id"], s["code"]) for s in new],  # by cell, as runs are
                                 [(s["id"], s["experiment_id"], s["code"]) for s in earlier])
    by_id = {s["id"]: s for s in earlier}
    return [_verdict(store, by_id.get(originals.get(study["id"])), study, tolerance, holding_records)
            for study in new]


def _verdict(store: Store, original: dict[str, Any] | None, study: dict[str, Any], tolerance: float,
             holding_records: frozenset[str] = frozenset()) -> Any:
    from .replay import Verdict, explain  # here, not above: replay.py imports this module

    label = f"{study['experiment']} (study {study['name']})"
    new_best = store.best_trial_run(study["id"])
    if original is None:
        return Verdict(None, new_best, label, "recorded",
                       changes=["no earlier study of this experiment to compare with"])
    old_trials, new_trials = store.trial_results(original["id"]), store.trial_results(study["id"])
    for number, (run_id, _, _) in new_trials.items():
        if number in old_trials:
            store.set_replay_of(run_id, old_trials[number][0])
    old_best = store.best_trial_run(original["id"])
    if not any(state == "complete" for _, state, _ in new_trials.values()):
        return Verdict(old_best, new_best, label, "failed",
                       error={"cell": None, "type": "NoCompleteTrial", "message": "no trial of the replayed study "
                              f"completed ({len(new_trials)} ran)"})
    differences = _differences(original, study, old_trials, new_trials, tolerance)
    artifacts, notes = _trial_artifacts(store, old_trials, new_trials, holding_records)
    differences += artifacts
    if not differences:
        return Verdict(old_best, new_best, label, "reproduced", changes=notes)
    changes = []
    if old_best is not None and new_best is not None:
        changes = [_TRIAL_UNSEEDED if c.startswith("the original run set no seed") else c
                   for c in explain(store.get_run(old_best), store.get_run(new_best))]
    return Verdict(old_best, new_best, label, "differs", differences,
                   notes + changes + _study_changes(store, original))


def _trial_artifacts(store: Store, old: dict, new: dict,
                     holding_records: frozenset[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The files each trial saved against those its original saved (a model per trial), as a
    run's replay compares them."""
    from .replay import artifact_differences

    differences, notes = [], []
    with_files = store.runs_with_artifacts([run_id for run_id, _, _ in old.values()])
    for number in sorted(set(old) & set(new)):
        if old[number][0] not in with_files:
            continue
        found, said = artifact_differences(store.get_run(old[number][0]), store.get_run(new[number][0]),
                                           holding_records)
        differences += [{**d, "artifact": f"trial {number} {d['artifact']}"} for d in found]
        notes += [f"trial {number}: {note}" for note in said]
    return differences, notes


def _differences(original: dict[str, Any], study: dict[str, Any], old: dict, new: dict,
                 tolerance: float) -> list[dict[str, Any]]:
    from .replay import values_match as same

    metric = study["metric"]
    differences = []
    complete_old = sum(state == "complete" for _, state, _ in old.values())
    complete_new = sum(state == "complete" for _, state, _ in new.values())
    if complete_old != complete_new:
        differences.append({"metric": "complete trials", "old": complete_old, "new": complete_new})
    if not same(original["best_value"], study["best_value"], tolerance):
        differences.append({"metric": f"best {metric}", "old": original["best_value"], "new": study["best_value"]})
    for number in sorted(set(old) & set(new)):
        (_, state_old, value_old), (_, state_new, value_new) = old[number], new[number]
        if state_old != state_new or not same(value_old, value_new, tolerance):
            differences.append({"metric": f"trial {number} {metric}", "old": value_old, "new": value_new})
    return differences


def _study_changes(store: Store, original: dict[str, Any]) -> list[str]:
    changes = []
    if original["seed"] is None:
        changes.append("the original study set no seed: its sampler proposes other configurations each time "
                       "(use %%experiment NAME --optimize METRIC --seed N)")
    if original["jobs"] > 1:
        changes.append(f"the original study ran {original['jobs']} trials at a time: the order they finish in, "
                       "and so what the sampler learns from, varies")
    if any(i["action"] == "recommendation-used" for i in store.interactions(original["id"])):
        changes.append("its first trials came from the knowledge table, which has grown since (the original "
                       "study added its own trials to it); --no-recommend makes a study repeatable")
    return changes


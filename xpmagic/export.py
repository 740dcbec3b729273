"""Export runs to the tools people already use: MLflow, W3C PROV-JSON, CSV, JSON."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import posixpath
import re
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from .errors import MissingDependency, UsageError, XPError
from .jsontext import strict_json
from .queries import run_detail_dict, run_summary_dict
from .records import Run
from .store import Store

_MLFLOW_STATUS = {"ok": "FINISHED", "failed": "FAILED", "interrupted": "KILLED",
                  "running": "RUNNING"}


def export(store: Store, to: str, *, experiment: str | None = None,
           tracking_uri: str | None = None, output: str | None = None) -> None:
    runs = [store.get_run(run.id) for run in reversed(store.list_runs(experiment))]
    if to == "mlflow":
        if not tracking_uri:
            raise UsageError("export --to mlflow needs --tracking-uri, e.g. sqlite:///mlflow.db")
        exported, skipped, renamed = export_mlflow(store, runs, tracking_uri)
        print(f"exported {exported} runs to {tracking_uri} ({skipped} already there)",
              file=sys.stderr)
        if renamed:
            shown = ", ".join(f"{a!r} -> {b!r}" for a, b in sorted(renamed.items())[:5])
            print(f"renamed {len(renamed)} metric or parameter names MLflow does not accept ({shown}); "
                  "each run keeps the originals in its tag xpmagic.renamed", file=sys.stderr)
        return
    text = {"prov": prov_json, "csv": runs_csv, "json": runs_json}[to](store, runs)
    if output is None:
        sys.stdout.write(text)
    else:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"wrote {len(runs)} runs to {output}", file=sys.stderr)


def runs_json(store: Store, runs: list[Run]) -> str:
    return strict_json([run_detail_dict(run) for run in runs], indent=2, default=str) + "\n"


def runs_csv(store: Store, runs: list[Run]) -> str:
    rows = []
    for run in runs:
        row = {k: v for k, v in run_summary_dict(run).items() if k not in ("params", "metrics")}
        row["tags"] = ",".join(run.tags)
        row.update({f"params.{k}": json.dumps(v) for k, v in run.params.items()})
        row.update({f"metrics.{k}": v for k, v in run.metrics.items()})
        rows.append(row)
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _millis(iso: str | None) -> int | None:
    return None if iso is None else int(datetime.fromisoformat(iso).timestamp() * 1000)


def export_mlflow(store: Store, runs: list[Run], tracking_uri: str) -> tuple[int, int, dict[str, str]]:
    """Write runs through MLflow's own client; runs exported before are skipped. Returns the runs
    exported, those skipped, and the names changed to what MLflow accepts."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MissingDependency("mlflow", "export --to mlflow", extra="mlflow") from None
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its schema-migration chatter is not ours to show
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        exported = skipped = 0
        renamed: dict[str, str] = {}
        experiment_ids: dict[str, str] = {}
        for run in runs:
            if run.experiment not in experiment_ids:
                found = client.get_experiment_by_name(run.experiment)
                experiment_ids[run.experiment] = (found.experiment_id if found else
                                                  client.create_experiment(run.experiment))
            experiment_id = experiment_ids[run.experiment]
            already = client.search_runs([experiment_id],
                                         filter_string=f"tags.`xpmagic.uuid` = '{run.uuid}'")
            if already:
                skipped += 1
                continue
            renamed.update(_export_one_run(client, store, run, experiment_id))
            exported += 1
        return exported, skipped, renamed
    except XPError:
        raise
    except Exception as exc:
        raise XPError(f"MLflow export to {tracking_uri} failed: {type(exc).__name__}: {exc}") from None


def _export_one_run(client: Any, store: Store, run: Run, experiment_id: str) -> dict[str, str]:
    """One run, whole or not at all: a run left half-written would carry the uuid tag and be
    skipped as 'already there' by every later export."""
    from mlflow.entities import Metric, Param, RunTag

    names = _mlflow_names([*run.params, *run.metrics])
    changed = {name: new for name, new in names.items() if new != name}
    tags = {"xpmagic.uuid": run.uuid, "xpmagic.run_id": str(run.id),
            "xpmagic.code_hash": run.code_hash, "mlflow.runName": f"run {run.id}"}
    if run.notebook:
        tags["mlflow.source.name"] = run.notebook
    if run.git and run.git.get("commit"):
        tags["mlflow.source.git.commit"] = run.git["commit"]
    if changed:
        tags["xpmagic.renamed"] = json.dumps(changed)
    tags.update({f"tag.{t}"[:_MLFLOW_NAME_LENGTH]: "1" for t in run.tags})
    created = client.create_run(experiment_id, start_time=_millis(run.started_at), tags=tags)
    run_id = created.info.run_id
    try:
        client.log_batch(  # MLflow's client splits it into batches it accepts
            run_id,
            params=[Param(names[k], (v if isinstance(v, str) else json.dumps(v))[:_MLFLOW_PARAM_LENGTH])
                    for k, v in run.params.items()],
            metrics=[Metric(names[m.key], m.value, m.timestamp, m.step)
                     for m in _mlflow_metrics(store, run, Metric)],
            tags=[RunTag("xpmagic.seed", str(run.seed))],
        )
        client.log_text(run_id, run.code, "cell.py")
        _log_artifacts(client, run, run_id)
        _log_figures(client, store, run, run_id)
        client.set_terminated(run_id, status=_MLFLOW_STATUS[run.status], end_time=_millis(run.ended_at))
    except Exception:
        client.delete_run(run_id)
        raise
    return changed


def _log_artifacts(client: Any, run: Run, run_id: str) -> None:
    """The run's files, under ``artifacts/``, when they are still as the run left them; the
    others are named in the tag ``xpmagic.artifacts_not_exported``."""
    from .run import describe_artifact

    gone = []
    for artifact in run.artifacts:
        path = artifact["path"]
        try:
            unchanged = describe_artifact(path, artifact["name"]).sha256 == artifact["sha256"]
        except XPError:
            unchanged = False
        if not unchanged:
            gone.append(artifact["name"])
        elif os.path.isdir(path):
            client.log_artifacts(run_id, path, f"artifacts/{artifact['name']}")
        else:
            client.log_artifact(run_id, path, "artifacts")
    if gone:
        client.set_tag(run_id, "xpmagic.artifacts_not_exported",
                       f"{', '.join(gone)} (missing or changed since the run)")


_IMAGE_SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
                   "image/svg+xml": ".svg"}


def _log_figures(client: Any, store: Store, run: Run, run_id: str) -> None:
    """The figures the run's cell displayed (kept ones), under ``displays/`` as ``display-N.png``."""
    import tempfile

    images = [(position, mime, data) for position, mime, data in store.display_data(run.id, "image/")
              if mime in _IMAGE_SUFFIXES]
    if not images:
        return
    with tempfile.TemporaryDirectory() as folder:
        for position, mime, data in images:
            with open(os.path.join(folder, f"display-{position}{_IMAGE_SUFFIXES[mime]}"), "wb") as handle:
                handle.write(data)
        client.log_artifacts(run_id, folder, "displays")


_MLFLOW_PARAM_LENGTH = 6000  # MLflow refuses longer parameter values
_MLFLOW_NAME_LENGTH = 250  # and longer names of metrics, parameters and tags
# MLflow's rule for metric and parameter names (mlflow.utils.validation): letters and digits
# (any script), _ - . : / and spaces, and a name that is a plain relative path ("/loss",
# "train//loss", "loss/" and ".." are refused).
_MLFLOW_REFUSED = re.compile(r"[^/\w.\- :]")


def _mlflow_names(names: list[str]) -> dict[str, str]:
    """Each name as MLflow accepts it: refused characters become '_', a name past MLflow's 250
    characters is cut, and a name that would then equal another gets a suffix."""
    result: dict[str, str] = {}
    taken = {n for n in names if _mlflow_accepts(n)}
    for name in names:
        if name in result:
            continue
        if _mlflow_accepts(name):
            result[name] = name
            continue
        base = _mlflow_spelling(name)
        candidate, number = base, 2
        while candidate in taken:
            candidate, number = f"{base}_{number}", number + 1
        taken.add(candidate)
        result[name] = candidate
    return result


def _mlflow_accepts(name: str) -> bool:
    return (len(name) <= _MLFLOW_NAME_LENGTH and not _MLFLOW_REFUSED.search(name)
            and _is_plain_relative_path(name))


def _is_plain_relative_path(name: str) -> bool:
    normal = posixpath.normpath(name)
    return normal == name and normal != "." and not normal.startswith(("..", "/"))


def _mlflow_spelling(name: str) -> str:
    text = _MLFLOW_REFUSED.sub("_", name).strip()
    if not _is_plain_relative_path(text):
        text = "_" + text.replace("/", "_")  # "_" first: "." or ".." would still be refused
    return text[:_MLFLOW_NAME_LENGTH - 8] or "_"  # room for a suffix that tells two apart


def _mlflow_metrics(store: Store, run: Run, metric_type: Any) -> Iterator[Any]:
    timestamp = _millis(run.ended_at or run.started_at) or 0
    for name in run.metrics:
        steps, values = store.metric_series(run.id, name)
        for step, value in zip(steps, values):
            yield metric_type(name, value, timestamp, step)


def prov_json(store: Store, runs: list[Run]) -> str:
    """Runs as W3C PROV: runs are activities, data and variables entities."""
    try:
        from prov.model import ProvDocument
    except ImportError:
        raise MissingDependency("prov", "export --to prov", extra="prov") from None
    doc = ProvDocument()
    doc.add_namespace("xp", "urn:xpmagic:")
    for run in runs:
        activity = doc.activity(
            f"xp:run/{run.uuid}", run.started_at, run.ended_at,
            {"xp:experiment": run.experiment, "xp:status": run.status, "xp:run_id": run.id,
             "xp:code_hash": run.code_hash},
        )
        if run.user:
            agent = doc.agent(f"xp:user/{run.user}")
            doc.wasAssociatedWith(activity, agent)
        for name, fp in run.inputs.items():
            if fp:
                doc.used(activity, doc.entity(f"xp:value/{fp}", {"xp:name": name}))
        for name, fp in run.outputs.items():
            if fp:
                doc.wasGeneratedBy(doc.entity(f"xp:value/{fp}", {"xp:name": name}), activity)
        for data in run.datasets:
            doc.used(activity, doc.entity(f"xp:data/{data['fingerprint']}",
                                          {"xp:name": data["name"]}))
        for art in run.artifacts:
            doc.wasGeneratedBy(doc.entity(f"xp:file/{art['sha256']}",
                                          {"xp:path": art["path"]}), activity)
        for code in run.local_code:  # the person's own modules and %run scripts, by version
            doc.used(activity, doc.entity(f"xp:code/{code['sha256']}",
                                          {"xp:module": code["module"], "xp:path": code["path"]}))
        for source_id in run.lineage:
            source = store.list_runs_by_ids([source_id])[0]
            doc.wasInformedBy(activity, f"xp:run/{source.uuid}")
    return doc.serialize(indent=2) + "\n"

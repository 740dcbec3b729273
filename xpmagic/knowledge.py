"""The knowledge table: one row per finished run (or trial) and metric, on a known task.

A row says: on this task (data fingerprint and meta-features), this model family with
this configuration scored this much on this metric, at this cost, as rated by the
person. Rows live in the experiment database unless ``XPMAGIC_KNOWLEDGE`` /
``%config XPMagics.knowledge_path`` names a shared file. Rows are keyed by run uuid and
metric, so export/import/merge never duplicate them and each keeps its origin.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import types
from typing import Any

from . import procinfo
from .errors import UsageError, first_line
from .localcode import scripts_run_by
from .records import DatasetRecord
from .redaction import scrub_config
from .store import Store, utc_now
from .store._knowledge import KNOWLEDGE_COLUMNS

KNOWLEDGE_ENV = "XPMAGIC_KNOWLEDGE"
MINIMIZE_HINTS = ("loss", "error", "rmse", "mse", "mae", "latency", "time", "cost", "regret")


def guess_direction(metric: str) -> str:
    return "minimize" if any(h in metric.lower() for h in MINIMIZE_HINTS) else "maximize"


def model_family_of(values: list[Any]) -> str | None:
    """The estimator class among values (a pipeline's last step); predictors before transformers
    (`pre = ColumnTransformer(...)` beside `pipe`), fitted ones first."""
    estimators = [v for v in values if hasattr(v, "get_params") and hasattr(v, "fit")
                  and not isinstance(v, type)]
    if not estimators:
        return _library_model_family(values) or _network_family(values)
    estimators = [e for e in estimators if hasattr(e, "predict")] or estimators
    fitted = [e for e in estimators if any(k.endswith("_") and not k.startswith("_") for k in vars(e))]
    chosen = (fitted or estimators)[-1]
    steps = getattr(chosen, "steps", None)
    if steps:
        chosen = steps[-1][1]
    return type(chosen).__name__


def _library_model_family(values: list[Any]) -> str | None:
    """A booster trained by the library's own API (``xgb.train``, ``lgb.train``), or a statsmodels
    model's fitted results (its model's class: OLS, GLM, ARIMA)."""
    for value in reversed(values):
        library = type(value).__module__.partition(".")[0]
        kind = f"{library}.{type(value).__name__}"
        if kind in ("xgboost.Booster", "lightgbm.Booster"):
            return kind
        model = getattr(value, "model", None)
        if library == "statsmodels" and hasattr(value, "params") and type(model).__module__.startswith("statsmodels"):
            return f"statsmodels.{type(model).__name__}"
    return None


def _network_family(values: list[Any]) -> str | None:
    """A PyTorch network's class: the one with the most parameters (not `loss_fn = nn.CrossEntropyLoss()`)."""
    from .torchhash import torch_kind

    networks = [v for v in values if torch_kind(v) == "module"]
    sized = [(sum(p.numel() for p in network.parameters()), i) for i, network in enumerate(networks)]
    if not sized or max(sized)[0] == 0:
        return None
    return type(networks[max(sized)[1]]).__name__


def constructed_model_family(source: str, namespace: dict[str, Any]) -> str | None:
    """The predictor class the cell constructs, for a model never assigned to a variable
    (``cross_val_score(SVC(C=C), X, y)``): the last call in the code whose callee, looked up in
    the namespace (so through aliases like ``HGB``), is a class with fit and predict."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    calls = sorted((node for node in ast.walk(tree) if isinstance(node, ast.Call)),
                   key=lambda node: (node.lineno, node.col_offset))
    family = None
    for call in calls:
        callee = _resolve(call.func, namespace)
        if isinstance(callee, type) and hasattr(callee, "fit") and hasattr(callee, "predict"):
            family = callee.__name__
    for script in [] if family else scripts_run_by(source, os.getcwd()):  # `%run train.py`: the model is in there
        family = constructed_model_family(script.source or "", {**namespace, **_imports_of(script.source or "")})
        if family:
            break
    return family


def _imports_of(source: str) -> dict[str, Any]:
    """The names a script's top-level imports bind (a script run with %run imports its own model
    classes); an import that fails binds nothing."""
    names: dict[str, Any] = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return names
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            try:
                exec(compile(ast.Module([node], type_ignores=[]), "<imports>", "exec"), names)
            except Exception:
                continue
    names.pop("__builtins__", None)
    return names


def _resolve(node: ast.AST, namespace: dict[str, Any]) -> Any:
    """What a callee expression names (``SVC``, ``svm.SVC``), without calling anything."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, namespace)
        if owner is not None and isinstance(owner, (type, types.ModuleType)):
            return getattr(owner, node.attr, None)
    return None


def rows_for_run(*, run_uuid: str, experiment: str, datasets: list[DatasetRecord],
                 params: dict[str, Any], metrics: dict[str, float | None], cost_s: float,
                 model_family: str | None, origin: str, directions: dict[str, str] | None = None,
                 study: str | None = None, trial_number: int | None = None,
                 sampler: str | None = None) -> list[dict[str, Any]]:
    """Knowledge rows a finished run contributes: none unless it recorded its data."""
    task = next((d for d in datasets if d.meta), None)
    if task is None:
        return []
    now = utc_now()
    config = scrub_config(params)
    rows = []
    for metric, value in metrics.items():
        if value is None:
            continue
        rows.append({
            "uid": f"{run_uuid}:{metric}", "task": task.fingerprint, "task_name": task.name,
            "meta": task.meta, "model_family": model_family, "config": config, "metric": metric,
            "direction": (directions or {}).get(metric) or guess_direction(metric), "score": value,
            "cost_s": cost_s, "user": procinfo.user(), "created_at": now, "origin": origin,
            "experiment": experiment, "study": study, "trial_number": trial_number, "sampler": sampler,
        })
    return rows


# -- moving knowledge between databases -------------------------------------------------

def export_rows(store: Store) -> list[dict[str, Any]]:
    return store.knowledge_rows()


def write_rows(rows: list[dict[str, Any]], path: str) -> None:
    if path.endswith(".json"):
        with open(path, "w") as handle:
            json.dump(rows, handle, indent=1)
        return
    if path.endswith(".csv"):
        with open(path, "w", newline="") as handle:
            # No rows still gets the whole header, so the file imports (as nothing).
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else list(KNOWLEDGE_COLUMNS))
            writer.writeheader()
            for row in rows:
                writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v
                                 for k, v in row.items()})
        return
    if path.endswith(".parquet"):
        import pandas as pd

        frame = pd.DataFrame([{k: json.dumps(v) if isinstance(v, (dict, list)) else v
                               for k, v in row.items()} for row in rows])
        try:
            frame.to_parquet(path)
        except ImportError:
            raise UsageError("Parquet needs pyarrow: pip install pyarrow (or export to .json/.csv)") from None
        return
    raise UsageError(f"{path}: choose a .json, .csv or .parquet file")


_REQUIRED = ("uid", "task", "meta", "config", "metric", "direction", "score", "created_at", "origin")


def read_rows(path: str) -> list[dict[str, Any]]:
    """Knowledge rows from a file `knowledge export` wrote; anything else is refused in one line."""
    if not os.path.isfile(path):
        raise UsageError(f"no file at {path}")
    if not path.endswith((".json", ".csv", ".parquet")):
        raise UsageError(f"{path}: choose a .json, .csv or .parquet file")
    try:
        rows = _parse_rows(path)
        for number, row in enumerate(rows, start=1):
            _check_row(row, number)
    except (ValueError, csv.Error) as exc:  # JSON, CSV, Parquet (ArrowInvalid) and our own checks
        raise UsageError(f"cannot import {path}: {first_line(exc).rstrip('.')}; "
                         "import files that `xpmagic knowledge export` wrote") from None
    return rows


def _parse_rows(path: str) -> list[dict[str, Any]]:
    if path.endswith(".json"):
        with open(path) as handle:
            rows = json.load(handle)
        if not isinstance(rows, list):
            raise ValueError("the file holds no list of rows")
        return rows
    if path.endswith(".csv"):
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            raw = list(reader)
        missing = [key for key in _REQUIRED if key not in (reader.fieldnames or [])]
        if missing:  # an export of no rows still has the header
            raise ValueError(f"the header has no {', '.join(repr(k) for k in missing)}")
    else:
        import pandas as pd

        raw = pd.read_parquet(path).to_dict("records")
    return [_decode(row) for row in raw]


def _check_row(row: Any, number: int) -> None:
    if not isinstance(row, dict):
        raise ValueError(f"row {number} is not an object")
    missing = [key for key in _REQUIRED if row.get(key) in (None, "")]
    if missing:
        raise ValueError(f"row {number} has no {', '.join(repr(k) for k in missing)}")
    if row["direction"] not in ("maximize", "minimize"):
        raise ValueError(f"row {number}: direction {row['direction']!r} is neither maximize nor minimize")
    if not isinstance(row["config"], dict) or not isinstance(row["meta"], dict):
        raise ValueError(f"row {number}: config and meta must be objects")
    if not isinstance(row["score"], (int, float)) or isinstance(row["score"], bool):
        raise ValueError(f"row {number}: score {row['score']!r} is not a number")


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    decoded = dict(row)
    for key in ("meta", "config"):
        if isinstance(decoded.get(key), str):
            decoded[key] = json.loads(decoded[key])
    for key in ("score", "cost_s"):
        if decoded.get(key) not in (None, ""):
            decoded[key] = float(decoded[key])
    for key in ("rating", "trial_number"):
        value = decoded.get(key)
        decoded[key] = None if value in (None, "") or value != value else int(float(value))
    return {k: (None if v == "" else v) for k, v in decoded.items()}


def merge(target: Store, source: Store) -> int:
    """Copy the source's knowledge into the target; returns how many rows were new."""
    return target.add_knowledge(source.knowledge_rows())


def table_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    for row in rows[-50:]:
        buffer.write(f"{row['task_name'] or row['task'][:8]:<14} {row['model_family'] or '?':<22} "
                     f"{row['metric']}={row['score']:.4g} cost={row['cost_s'] or 0:.2f}s "
                     f"{json.dumps(row['config'])[:60]}\n")
    return buffer.getvalue() or "the knowledge table is empty: record runs that call xp.dataset(X, y)\n"

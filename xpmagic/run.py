"""The in-memory state of one run while its cell executes.

``xp.param`` / ``xp.log`` / ``xp.dataset`` / ``xp.artifact`` land here. Metric
points are buffered in plain lists (logging must cost well under a microsecond)
and written in chunks: a full chunk as soon as it fills, the rest at run end.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
from collections.abc import Callable
from functools import partial
from typing import Any

from .boosterhash import unpacked_training_data
from .errors import UsageError
from .fingerprint import fingerprint
from .records import ArtifactRecord, DatasetRecord, MetricChunk, MetricSummary, ParamSpec, param_value

CHUNK_POINTS = 20_000
MAX_ARTIFACT_FILES = 10_000
_PARAM_TYPES = (bool, int, float, str, type(None))


class MetricSeries:
    """The points of one metric; full chunks are handed to ``flush`` as they fill."""

    __slots__ = ("name", "steps", "values", "next_step", "chunks_written", "count",
                 "min", "max", "last", "last_step", "_flush")

    def __init__(self, name: str, flush: Callable[[MetricChunk], None]):
        self.name = name
        self.steps: list[int] = []
        self.values: list[float] = []
        self.next_step = 0
        self.chunks_written = 0
        self.count = 0
        self.min = math.inf
        self.max = -math.inf
        self.last: float | None = None
        self.last_step: int | None = None
        self._flush = flush

    def append(self, value: Any, step: Any) -> None:
        number = value if type(value) is float else _as_number(self.name, value)
        if step is None:
            step = self.next_step
        elif type(step) is not int:
            step = _as_step(self.name, step)
        self.steps.append(step)
        self.values.append(number)
        self.next_step = step + 1
        if len(self.values) >= CHUNK_POINTS:
            self._flush(self.take_chunk())

    def take_chunk(self) -> MetricChunk:
        """Hand over the buffered points and fold them into the running summary."""
        values, steps = self.values, self.steps
        finite = [v for v in values if v == v]
        if finite:
            self.min = min(self.min, min(finite))
            self.max = max(self.max, max(finite))
        self.count += len(values)
        self.last, self.last_step = values[-1], steps[-1]
        chunk = MetricChunk(self.name, self.chunks_written, steps, values)
        self.chunks_written += 1
        self.values, self.steps = [], []
        return chunk

    def summary(self) -> MetricSummary:
        seen = self.count > 0 and self.min <= self.max
        return MetricSummary(self.name, self.last, self.last_step,
                             self.min if seen else None, self.max if seen else None, self.count)


def _as_number(name: str, value: Any) -> float:
    if type(value).__module__.partition(".")[0] == "torch" and hasattr(value, "detach"):
        value = value.detach()  # a loss that requires grad: its value, without torch's warning
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of several values
        raise UsageError(_not_a_number(name, value)) from None


def _not_a_number(name: str, value: Any) -> str:
    """One line, even for a Series or an array (their repr spans lines)."""
    shown = " ".join(repr(value).split())
    message = f"metric {name!r} must be a number, got {type(value).__name__}: {shown:.60}"
    if hasattr(value, "__len__") and not isinstance(value, (str, bytes)):
        message += (f"; log one number (its mean, its last value) or each value as a step:"
                    f" for i, v in enumerate(values): xp.log({name!r}, v, step=i)")
    return message


def _write_one_chunk(write_chunk: Callable[[int, list[MetricChunk]], None], run_id: int,
                     chunk: MetricChunk) -> None:
    write_chunk(run_id, [chunk])


def _as_step(name: str, step: Any) -> int:
    try:
        as_int = int(step)
    except (TypeError, ValueError):
        as_int = None
    if as_int is None or as_int != step:
        raise UsageError(f"step of metric {name!r} must be a whole number, got {step!r}")
    return as_int


class ActiveRun:
    """A run in progress: what its cell declared and logged so far."""

    def __init__(self, run_id: int, experiment: str, *,
                 write_chunk: Callable[[int, list[MetricChunk]], None],
                 overrides: dict[str, Any] | None = None,
                 suggest: Callable[[ParamSpec], Any] | None = None,
                 sample_bytes: int = 8 * 1024 * 1024):
        self.id = run_id
        self.uuid = ""
        self.experiment = experiment
        self.overrides = overrides or {}
        self._suggest = suggest  # an optimization trial samples parameters it did not plan
        self.params: dict[str, ParamSpec] = {}
        self._declared: dict[str, tuple] = {}  # each parameter's declaration as written in the cell
        self.series: dict[str, MetricSeries] = {}
        self.datasets: dict[str, DatasetRecord] = {}
        self.artifacts: dict[str, ArtifactRecord] = {}
        self._write_chunk = write_chunk
        self._sample_bytes = sample_bytes

    # -- params --------------------------------------------------------------
    def param(self, name: str, default: Any, *, low: float | None = None,
              high: float | None = None, log: bool = False, step: float | None = None,
              choices: list | tuple | None = None) -> Any:
        declaration = (default, low, high, log, step, None if choices is None else tuple(choices))
        if name in self.params:
            if not _same_declaration(self._declared[name], declaration):
                raise UsageError(f"parameter {name!r} is declared twice in this run, differently "
                                 f"(default {self._declared[name][0]!r}, then {default!r}); declare it once, "
                                 "or give the second one another name")
            return self.params[name].value
        spec = make_param_spec(name, default, low=low, high=high, log=log, step=step,
                               choices=choices)
        if name in self.overrides:
            spec = ParamSpec(name, param_value(self.overrides[name]), spec.low, spec.high, spec.log,
                             spec.step, spec.choices)
        elif self._suggest is not None:
            spec = ParamSpec(name, self._suggest(spec), spec.low, spec.high, spec.log,
                             spec.step, spec.choices)
        self.params[name] = spec
        self._declared[name] = declaration
        return spec.value

    def values(self) -> dict[str, Any]:
        return {name: spec.value for name, spec in self.params.items()}

    # -- metrics -------------------------------------------------------------
    def log_value(self, name: str, value: Any, step: Any = None) -> None:
        series = self.series.get(name)
        if series is None:
            if not isinstance(name, str) or not name:
                raise UsageError(f"a metric name must be a non-empty string, got {name!r}")
            # A partial, not a bound method: a series holding its run would make a reference
            # cycle that only the garbage collector frees, once per run.
            series = self.series[name] = MetricSeries(name, partial(_write_one_chunk, self._write_chunk, self.id))
            try:
                series.append(value, step)
            except Exception:
                del self.series[name]  # a rejected first value leaves no empty metric behind
                raise
            return
        series.append(value, step)

    def final_metrics(self) -> tuple[list[MetricSummary], list[MetricChunk]]:
        """Summaries of every metric, and the points not yet written.

        A metric logged once needs no points row: its summary holds its value and step.
        """
        chunks = []
        for series in self.series.values():
            if series.values:
                single = series.chunks_written == 0 and len(series.values) == 1
                chunk = series.take_chunk()
                if not single:
                    chunks.append(chunk)
        return [s.summary() for s in self.series.values()], chunks

    def last_metrics(self) -> dict[str, float | None]:
        return {name: (s.values[-1] if s.values else s.last) for name, s in self.series.items()}

    # -- data and files ------------------------------------------------------
    def dataset(self, X: Any, y: Any = None, name: str | None = None) -> DatasetRecord:
        record = describe_dataset(X, y, name or f"dataset{len(self.datasets)}")
        self.datasets[record.name] = record
        return record

    def artifact(self, path: str | os.PathLike, name: str | None = None) -> ArtifactRecord:
        record = describe_artifact(path, name)
        self.artifacts[record.name] = record
        return record


def _same_declaration(first: tuple, second: tuple) -> bool:
    try:
        return bool(first == second)
    except Exception:  # values whose == is not a bool (arrays): compare as text
        return repr(first) == repr(second)


def make_param_spec(name: str, default: Any, *, low: float | None, high: float | None,
                    log: bool, step: float | None, choices: list | tuple | None) -> ParamSpec:
    """Validate a parameter declaration; every message says how to fix it."""
    if not isinstance(name, str) or not name.isidentifier():
        raise UsageError(f"parameter name must be an identifier-like string, got {name!r}")
    default = param_value(default)
    if not _is_param_value(default):
        raise UsageError(
            f"parameter {name!r}: default must be a bool, int, float, str or None, or a tuple of them "
            f"(such as (1, 2)), got {type(default).__name__}"
        )
    if choices is not None:
        choices = tuple(param_value(choice) for choice in choices)
        odd = next((choice for choice in choices if not _is_param_value(choice)), None)
        if odd is not None:
            raise UsageError(f"parameter {name!r}: each choice must be a bool, int, float, str or None, or a "
                             f"tuple of them, got {type(odd).__name__}")
        if not choices:
            raise UsageError(f"parameter {name!r}: choices must not be empty")
        if low is not None or high is not None:
            raise UsageError(f"parameter {name!r}: give either choices or low/high, not both")
        if default not in choices:
            raise UsageError(f"parameter {name!r}: default {default!r} is not one of {list(choices)}")
    low, high, step = _plain_number(low), _plain_number(high), _plain_number(step)
    if (low is None) != (high is None):
        raise UsageError(f"parameter {name!r}: give both low and high, or neither")
    if low is not None and high is not None:
        _check_range_types(name, default, low, high)
        if not low < high:
            raise UsageError(f"parameter {name!r}: low ({low}) must be below high ({high})")
        if log and low <= 0:
            raise UsageError(f"parameter {name!r}: a log scale needs low > 0, got {low}")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and not (
                low <= default <= high):
            raise UsageError(f"parameter {name!r}: default {default} is outside [{low}, {high}]")
    elif log:
        raise UsageError(f"parameter {name!r}: log=True needs low and high")
    if step is not None:
        _check_step(name, step, low, log)
    return ParamSpec(name, default, low, high, bool(log), step, choices)


def _is_param_value(value: Any) -> bool:
    """A plain scalar, or a tuple of them (``hidden_layer_sizes=(100, 50)``)."""
    if isinstance(value, tuple):
        return all(isinstance(item, _PARAM_TYPES) for item in value)
    return isinstance(value, _PARAM_TYPES)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain_number(value: Any) -> Any:
    """A numpy scalar bound (low=np.int64(1)) as the Python number SQLite and Optuna take."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, int, float)) and hasattr(value, "item"):
        return value.item()
    return value


def _check_range_types(name: str, default: Any, low: Any, high: Any) -> None:
    """A range is numeric, and so is the value the single run uses (or None)."""
    if not (is_number(low) and is_number(high)):
        raise UsageError(f"parameter {name!r}: low and high must be numbers, got {low!r} and {high!r}")
    if default is not None and not is_number(default):
        kind = type(default).__name__
        raise UsageError(f"parameter {name!r}: default {default!r} is a {kind}, but low/high give a numeric "
                         f"range; for a {kind} parameter list its values with choices=[...]")


def _check_step(name: str, step: Any, low: Any, log: bool) -> None:
    if low is None:
        raise UsageError(f"parameter {name!r}: step needs low and high (step={step!r} alone has no range)")
    if not is_number(step) or not step > 0:
        raise UsageError(f"parameter {name!r}: step must be a number above 0, got {step!r}")
    if log:
        raise UsageError(f"parameter {name!r}: a log scale cannot have a step (Optuna samples log ranges "
                         "continuously); drop step or log=True")


def describe_dataset(X: Any, y: Any, name: str) -> DatasetRecord:
    """Content fingerprint, shape and dtypes of X (and y); never samples."""
    if X is None:
        raise UsageError("xp.dataset needs the data: xp.dataset(X, y=None, name=None)")
    try:
        X, y = unpacked_training_data(X, y)  # an XGBoost DMatrix, a LightGBM Dataset
    except ValueError as exc:
        raise UsageError(f"xp.dataset({name!r}): {exc}") from None
    parts = [fingerprint(X, sample_bytes=1 << 62)]
    if y is not None:
        parts.append(fingerprint(y, sample_bytes=1 << 62))
    for which, value, part in zip(("X", "y"), (X, y), parts):
        if part.digest is None:
            hint = "; collect() it first" if type(value).__name__ == "LazyFrame" else ""
            raise UsageError(
                f"xp.dataset({name!r}): cannot fingerprint {which}, a {type(value).__name__}{hint}; pass a numpy "
                "array, a pandas or polars DataFrame/Series, a list, a scipy.sparse matrix or a torch tensor")
    if y is not None and _rows(X) is not None and _rows(y) is not None and _rows(X) != _rows(y):
        hint = " (X is a dict: pass pd.DataFrame(X) for a table of these columns)" if isinstance(X, dict) else ""
        raise UsageError(f"xp.dataset({name!r}): X has {_rows(X)} rows but y has {_rows(y)}{hint}; "
                         "pass the labels of exactly these rows")
    digest = hashlib.blake2b("|".join(p.digest or "" for p in parts).encode(),
                             digest_size=16).hexdigest()
    return DatasetRecord(name=name, fingerprint=digest, kind=parts[0].kind,
                         shape=_shape(X), dtypes=_dtypes(X),
                         target=None if y is None else _target_summary(y),
                         meta=_meta(digest, X, y))


_META_CACHE: dict[str, dict[str, Any] | None] = {}


def _meta(digest: str, X: Any, y: Any) -> dict[str, Any] | None:
    """Meta-features of a task, once per session and data set (a re-run cell costs nothing)."""
    if y is None:
        return None
    if digest not in _META_CACHE:
        from .metafeatures import meta_features
        from .torchhash import as_numpy, torch_kind

        try:
            X, y = (as_numpy(v) if torch_kind(v) == "tensor" else v for v in (X, y))  # a GPU's too
            _META_CACHE[digest] = meta_features(X, y)
        except Exception:  # odd data: no knowledge row, never a failed cell
            _META_CACHE[digest] = None
    return _META_CACHE[digest]


def _rows(value: Any) -> int | None:
    shape = getattr(value, "shape", None)
    if shape:
        return int(shape[0])
    try:
        return len(value)
    except TypeError:
        return None


def _shape(value: Any) -> list:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return list(shape)
    if isinstance(value, (list, tuple)):
        first = value[0] if value else None
        return [len(value)] + ([len(first)] if isinstance(first, (list, tuple)) else [])
    return []


def _dtypes(value: Any) -> Any:
    dtypes = getattr(value, "dtypes", None)
    if dtypes is not None and hasattr(dtypes, "items"):
        return {str(k): str(v) for k, v in dtypes.items()}
    schema = getattr(value, "schema", None)  # a polars frame: its dtypes are a list, its schema a mapping
    if schema is not None and hasattr(schema, "items"):
        return {str(k): str(v) for k, v in schema.items()}
    dtype = getattr(value, "dtype", None)
    if dtype is not None:
        return str(dtype)
    if isinstance(value, (list, tuple)) and value:
        first = value[0]
        inner = first[0] if isinstance(first, (list, tuple)) and first else first
        return type(inner).__name__
    return type(value).__name__


def _target_summary(y: Any) -> dict[str, Any]:
    labels = _numeric_labels(y)
    if labels is not None:  # counted in numpy: a million labels in milliseconds
        import numpy as np

        distinct, counts = np.unique(labels, return_counts=True)
        summary: dict[str, Any] = {"n": len(labels), "dtype": _dtypes(y)}
        if len(distinct) <= 100:
            summary["classes"] = {str(v): c for v, c in zip(distinct.tolist(), counts.tolist())}
        summary["n_distinct"] = len(distinct)
        return summary
    values = list(y.tolist() if hasattr(y, "tolist") else y)
    summary = {"n": len(values), "dtype": _dtypes(y)}
    try:
        distinct = set(values)
    except TypeError:
        return summary
    if len(distinct) <= 100:
        counts: dict[str, int] = {}
        for v in values:
            counts[str(v)] = counts.get(str(v), 0) + 1
        summary["classes"] = counts
    summary["n_distinct"] = len(distinct)
    return summary


def _numeric_labels(y: Any) -> Any:
    """y as a 1-D numpy array of numbers or booleans, or None (lists, strings, objects)."""
    if type(y).__module__.partition(".")[0] not in ("numpy", "pandas"):
        return None
    import numpy as np

    array = np.asarray(y)
    return array.reshape(-1) if array.dtype.kind in "biuf" else None


def describe_artifact(path: str | os.PathLike, name: str | None) -> ArtifactRecord:
    """A file by its SHA-256 and size; a folder (a saved model, say) by the SHA-256 of its files'
    relative paths and SHA-256s, in path order, and their total size."""
    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"xp.artifact needs a path (a str or pathlib.Path), got {type(path).__name__}: {path!r:.60}")
    full = os.path.abspath(os.fspath(path).rstrip("/\\") or os.fspath(path))
    if os.path.isfile(full):
        digest, size = _file_sha256(full)
        return ArtifactRecord(name=name or os.path.basename(full), path=full, sha256=digest, size=size)
    if not os.path.isdir(full):
        raise UsageError(f"xp.artifact: no file or folder at {full}; write it before recording it")
    listing, total = hashlib.sha256(), 0
    for relative in _files_under(full):
        digest, size = _file_sha256(os.path.join(full, relative))
        listing.update(f"{relative}\0{digest}\n".encode())
        total += size
    return ArtifactRecord(name=name or os.path.basename(full), path=full, sha256=listing.hexdigest(), size=total)


def _file_sha256(path: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
                size += len(block)
    except OSError as exc:
        raise UsageError(f"xp.artifact: cannot read {path}: {exc.strerror or exc}") from None
    return digest.hexdigest(), size


def _files_under(folder: str) -> list[str]:
    """Relative paths (with '/') of the regular files in a folder and its subfolders, sorted.
    A folder of more than MAX_ARTIFACT_FILES files is refused before any is read: it is a
    working folder named by mistake, not a saved result."""
    found = []
    for root, _, files in os.walk(folder):
        for file in files:
            full = os.path.join(root, file)
            if not os.path.isfile(full):
                continue  # sockets, pipes, devices: not content
            found.append(os.path.relpath(full, folder).replace(os.sep, "/"))
            if len(found) > MAX_ARTIFACT_FILES:
                raise UsageError(f"xp.artifact: {folder} holds more than {MAX_ARTIFACT_FILES:,} files; "
                                 "record the file or folder that holds the result itself")
    return sorted(found)

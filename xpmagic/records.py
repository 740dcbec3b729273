"""Plain records that cross module boundaries (store -> queries -> display)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class RunStatus(str, enum.Enum):
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str
    traceback: str


def param_value(value: Any) -> Any:
    """A parameter's value as ``xp.param`` returns it. A sequence (``ngram_range=(1, 2)``) is a
    tuple, though stored as a JSON list: a replay, a trial or the knowledge table reads it back as
    the tuple it was."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain_scalar(item) for item in value)
    return _plain_scalar(value)


def _plain_scalar(value: Any) -> Any:
    """A numpy scalar (np.int64(5) from np.arange, np.bool_, np.str_) as the Python value it holds,
    which SQLite, JSON and Optuna take."""
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == () and hasattr(value, "item"):
        return value.item()
    return value


@dataclass(frozen=True)
class ParamSpec:
    """A parameter as declared by ``xp.param``: its value and where it may range."""

    name: str
    value: Any
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["choices"] = list(self.choices) if self.choices is not None else None
        return data


@dataclass(frozen=True)
class Run:
    """One recorded run, as read back from the store."""

    id: int
    uuid: str
    experiment: str
    status: str
    started_at: str
    ended_at: str | None
    duration_s: float | None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    code: str = ""
    code_hash: str = ""
    seed: int | None = None
    tags: list[str] = field(default_factory=list)
    note: str | None = None
    phase: str | None = None
    notebook: str | None = None
    cell_id: str | None = None
    stdout: str = ""
    stderr: str = ""
    result: str | None = None
    error: ErrorInfo | None = None
    env: dict[str, Any] | None = None
    git: dict[str, Any] | None = None
    inputs: dict[str, str | None] = field(default_factory=dict)
    outputs: dict[str, str | None] = field(default_factory=dict)
    # Configuration objects it read or wrote (recordhash.py): name -> {"type", "fields"}, the
    # fields' values as text, so `show` and `diff` can say what a setting was, not only its digest.
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    sampled: list[str] = field(default_factory=list)  # variables fingerprinted from a sample of their values
    boosted: list[str] = field(default_factory=list)  # models hashed with their XGBoost or LightGBM booster
    unhashed: dict[str, str] = field(default_factory=dict)  # variables with no fingerprint -> why
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # boosters, statsmodels results: their summary
    lineage: list[int] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    definitions: list[dict[str, str]] = field(default_factory=list)  # {name, source}
    datasets: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    displays: list[dict[str, Any]] = field(default_factory=list)  # {position, mime, sha256, size, kept}
    local_code: list[dict[str, str]] = field(default_factory=list)  # {module, path, sha256}
    param_specs: list[ParamSpec] = field(default_factory=list)
    host: str | None = None
    user: str | None = None
    replay_of: int | None = None
    study_id: int | None = None
    trial_number: int | None = None
    study: str | None = None  # the study's name, for a trial
    fingerprint_scheme: int = 1  # fingerprint.SCHEME when it was recorded: digests of other schemes differ

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["param_specs"] = [spec.to_dict() for spec in self.param_specs]
        return data

    def __repr__(self) -> str:
        # The generated repr printed every package and environment variable: a screenful for `-o run`.
        return (f"Run(id={self.id}, experiment={self.experiment!r}, status={self.status!r}, "
                f"params={self.params!r}, metrics={self.metrics!r})")

    def _repr_html_(self) -> str:
        from .display import RunView

        return RunView(self)._repr_html_()


@dataclass
class VariableRecord:
    """A variable a run read ('in') or wrote ('out'), by fingerprint."""

    direction: str
    name: str
    fingerprint: str | None
    kind: str
    summary: dict[str, Any]


@dataclass
class DatasetRecord:
    name: str
    fingerprint: str
    kind: str
    shape: list
    dtypes: Any
    target: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None  # meta-features, when X has rows and y was given


@dataclass
class ArtifactRecord:
    name: str
    path: str
    sha256: str
    size: int


@dataclass
class DisplayRecord:
    """One MIME type of something the cell displayed (a figure's image/png and its text/plain)."""

    position: int  # the order the cell displayed them in, from 1
    mime: str
    sha256: str
    size: int  # bytes: an image's own (decoded), text's in UTF-8
    data: bytes | None  # None past the run's budget, or for what only a live kernel can show (a widget)


@dataclass
class MetricSummary:
    name: str
    last: float | None
    last_step: int | None
    min: float | None
    max: float | None
    count: int


@dataclass
class MetricChunk:
    """Up to a chunk's worth of one series' points, stored as one row."""

    name: str
    chunk: int
    steps: list[int]
    values: list[float]


@dataclass
class NewRun:
    """What is known when a run starts."""

    experiment: str
    code: str
    code_hash: str
    started_at: str
    seed: int | None = None
    tags: list[str] = field(default_factory=list)
    note: str | None = None
    phase: str | None = None
    notebook: str | None = None
    cell_id: str | None = None
    environment_id: int | None = None
    study_id: int | None = None
    trial_number: int | None = None
    replay_of: int | None = None


@dataclass
class RunOutcome:
    """What is known when a run ends; written in one transaction."""

    status: RunStatus
    ended_at: str
    duration_s: float
    stdout: str = ""
    stderr: str = ""
    result: str | None = None
    error: ErrorInfo | None = None
    params: list[ParamSpec] = field(default_factory=list)
    variables: list[VariableRecord] = field(default_factory=list)
    lineage: list[tuple[int, str]] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)  # statements binding the modules and classes it read
    definitions: list[dict[str, str]] = field(default_factory=list)  # the notebook's functions and classes it read
    datasets: list[DatasetRecord] = field(default_factory=list)
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    displays: list[DisplayRecord] = field(default_factory=list)
    metrics: list[MetricSummary] = field(default_factory=list)
    metric_chunks: list[MetricChunk] = field(default_factory=list)
    environment_id: int | None = None
    local_code_id: int | None = None  # the person's own modules loaded (localcode.py)
    trial_state: str | None = None
    host: str | None = None  # set when the run ran on another machine (a Dask worker)
    git_state: dict[str, Any] | None = None  # known at the start (gitcache.py); else attached later

"""Running the objective once: here, in a thread of this process, or on a Dask worker.

Either way the result is an Evaluation — plain data the study's own process records as the
trial's run — so a trial run elsewhere is recorded exactly like one run here.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from ..api import XPHandle, current_run
from ..capture import capture_buffer, routed_streams
from ..knowledge import model_family_of
from ..recorder import error_info
from ..records import ArtifactRecord, DatasetRecord, ErrorInfo, MetricChunk, MetricSummary, ParamSpec
from ..run import ActiveRun
from ._trialshell import with_trial_shell


@dataclass
class Evaluation:
    params: list[ParamSpec]
    values: dict[str, Any]                 # parameter name -> value, as the body used it
    metrics: list[MetricSummary]
    chunks: list[MetricChunk]              # series points not yet written
    datasets: list[DatasetRecord]
    artifacts: list[ArtifactRecord]
    stdout: str
    stderr: str
    error: ErrorInfo | None
    duration_s: float
    model_family: str | None
    host: str | None = None                # where it ran, when not here
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def last(self) -> dict[str, float | None]:
        return {m.name: m.last for m in self.metrics}


def _finish(run: ActiveRun, namespace: dict[str, Any], stored_names: list[str], out: Any, err: Any,
            error: BaseException | None, duration: float) -> Evaluation:
    metrics, chunks = run.final_metrics()
    family = model_family_of([namespace[n] for n in stored_names if n in namespace])
    return Evaluation(list(run.params.values()), run.values(), metrics, chunks, list(run.datasets.values()),
                      list(run.artifacts.values()), out.getvalue(), err.getvalue(), error_info(error),
                      duration, family)


def evaluate_here(compiled: Any, namespace: dict[str, Any], run: ActiveRun, stored_names: list[str],
                  max_output: int) -> Evaluation:
    """Run the body in a copy of the namespace, in this thread, its prints routed to the run."""
    namespace = with_trial_shell(dict(namespace))  # the trial reads the user's data; its writes stay here
    if not isinstance(namespace.get("xp"), XPHandle):
        # %unload_ext took the session's handle, or the name was rebound (array code calls numpy
        # `xp`); the body's xp.param calls are the study's space. The trial's run is in current_run.
        namespace["xp"] = XPHandle(_NoForeground(), None)  # type: ignore[arg-type]
    out, err = capture_buffer(max_output), capture_buffer(max_output)
    streams = routed_streams()
    streams[0].route(out)
    streams[1].route(err)
    token = current_run.set(run)
    began = time.perf_counter()
    error: BaseException | None = None
    try:
        exec(compiled, namespace)
    except BaseException as exc:  # the user's code: record whatever it raised
        error = exc
    finally:
        current_run.reset(token)
        streams[0].unroute()
        streams[1].unroute()
    return _finish(run, namespace, stored_names, out, err, error, time.perf_counter() - began)


class _NoForeground:
    """Stands in for the recorder on a remote worker: only the trial's own run exists there."""

    foreground = None
    next_run: dict[str, Any] = {}


def evaluate_remotely(body: str, inputs: dict[str, Any], params: dict[str, Any], experiment: str,
                      stored_names: list[str], max_output: int) -> Evaluation:
    """Run on a Dask worker: ``inputs`` are the user's values the body reads (pickled by Dask),
    ``params`` the trial's sampled configuration. Series points come back with the result."""
    from .. import procinfo

    chunks: list[MetricChunk] = []
    run = ActiveRun(0, experiment, write_chunk=lambda _id, new: chunks.extend(new), overrides=params)
    namespace = {**inputs, "xp": XPHandle(_NoForeground(), None), "__name__": "__main__"}  # type: ignore[arg-type]
    out, err = capture_buffer(max_output), capture_buffer(max_output)
    token = current_run.set(run)
    began = time.perf_counter()
    error: BaseException | None = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            exec(compile(body, f"<xpmagic trial of {experiment}>", "exec"), namespace)
    except BaseException as exc:
        error = exc
    finally:
        current_run.reset(token)
    evaluation = _finish(run, namespace, stored_names, out, err, error, time.perf_counter() - began)
    evaluation.chunks = chunks + evaluation.chunks
    evaluation.host = procinfo.host()
    return evaluation

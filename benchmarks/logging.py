"""Metric logging throughput (shared/benchmarks.md section 2).

One run logs 10 metrics x 100,000 steps = 1,000,000 values through xp.log; the time
includes the durable write at run end. Compared side by side with MLflow's
log_metric (one call per value) and log_batch (1,000 values per call) on a local
SQLite backend; MLflow is timed on a slice and reported as a rate.
"""

from __future__ import annotations

import os
import sys

# This file's name shadows the standard library's logging: move its folder to the end of the path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import tempfile  # noqa: E402
import time  # noqa: E402

from _common import median, parser, quiet, shell_with_xpmagic, table, write_json  # noqa: E402

N_METRICS = 10


def xp_cell(steps: int, style: str) -> str:
    if style == "series":
        body = (f"names = [f'm{{k}}' for k in range({N_METRICS})]\n"
                f"for step in range({steps}):\n"
                "    for name in names:\n"
                "        xp.log(name, 0.5, step=step)\n")
    else:
        kwargs = ", ".join(f"m{k}=0.5" for k in range(N_METRICS))
        body = f"for step in range({steps}):\n    xp.log({kwargs}, step=step)\n"
    return f"%%experiment logging\n{body}"


def mlflow_rates(folder: str, n_single: int, n_batch: int) -> tuple[float, float]:
    import logging

    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    uri = f"sqlite:///{folder}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("logging")
    with mlflow.start_run() as run:
        run_id = run.info.run_id
        mlflow.log_metric("warm", 0.5, step=0)
        start = time.perf_counter()
        for i in range(n_single):
            mlflow.log_metric(f"m{i % N_METRICS}", 0.5, step=i // N_METRICS)
        single = n_single / (time.perf_counter() - start)
        now = int(time.time() * 1000)
        start = time.perf_counter()
        for b in range(n_batch // 1000):
            metrics = [Metric(f"m{i % N_METRICS}", 0.5, now, b * 100 + i // N_METRICS)
                       for i in range(1000)]
            client.log_batch(run_id, metrics=metrics)
        batch = n_batch / (time.perf_counter() - start)
    return single, batch


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    steps = 10_000 if args.quick else 100_000
    reps = 2 if args.quick else 5
    folder = tempfile.mkdtemp(prefix="xpmagic-bench-")
    os.chdir(folder)
    shell = shell_with_xpmagic(os.path.join(folder, "xp.db"))
    values = steps * N_METRICS
    rates: dict[str, float] = {}
    with quiet():
        shell.run_cell(xp_cell(100, "series"))  # warm up
        for style in ("series", "keywords"):
            times = []
            for _ in range(reps):
                start = time.perf_counter()
                result = shell.run_cell(xp_cell(steps, style))
                times.append(time.perf_counter() - start)
                assert result.success, result.error_in_exec
            rates[f"xpmagic xp.log ({style})"] = values / median(times)
    store = shell.magics_manager.registry["XPMagics"].store()
    last = store.run_ids(limit=1)[0]
    stored = sum(len(store.metric_series(last, f"m{k}")[1]) for k in range(N_METRICS))
    assert stored == values, f"only {stored} of {values} values were stored"
    single, batch = mlflow_rates(folder, 300 if args.quick else 1000, 20_000 if args.quick else 100_000)
    rates["mlflow log_metric"] = single
    rates["mlflow log_batch (1000/call)"] = batch
    best_xp = max(v for k, v in rates.items() if k.startswith("xpmagic"))
    rows = [(name, f"{rate:,.0f}", f"{best_xp / rate:,.0f}x" if not name.startswith("xpmagic") else "")
            for name, rate in rates.items()]
    print(f"{values:,} values per xpmagic run ({N_METRICS} metrics x {steps:,} steps), "
          f"median of {reps}, including the durable write at run end; all {stored:,} read back")
    print(table(rows, ("method", "values/s", "xpmagic is faster by")))
    write_json(args.json, {"values_per_s": rates, "values": values})


if __name__ == "__main__":
    main()

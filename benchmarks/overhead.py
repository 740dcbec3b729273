"""Recording overhead: what a user pays per %%experiment cell (shared/benchmarks.md section 1).

In one process, interleaved so drift hits every variant alike:
  bare        shell.run_cell(body) without the magic
  xpmagic     %%experiment with defaults (full capture: variables fingerprinted, output kept,
              git state, environment), one xp.param and one xp.log
  xpmagic-lean  capture_variables and capture_output off (for comparison)
  mlflow      mlflow.start_run + log_param + log_metric + end_run, local SQLite backend, warm
              (all of it is added time: a bare cell would run besides)
Reports the median and p95 of the added milliseconds per cell, and ratios.
"""

from __future__ import annotations

import os
import sys

# benchmarks/logging.py would shadow the standard library's logging: move this folder last.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import gc  # noqa: E402
import tempfile  # noqa: E402

from _common import median, parser, pct, quiet, shell_with_xpmagic, table, timed, write_json  # noqa: E402

TRIVIAL_BARE = "x = 1\nm = 1.0\n"
TRIVIAL_XP = "%%experiment bench-trivial\nx = xp.param('a', 1)\nxp.log(m=1.0)\n"
REALISTIC_SETUP = (
    "from sklearn.datasets import make_classification\n"
    "from sklearn.ensemble import RandomForestClassifier\n"
    "Xr, yr = make_classification(n_samples=2000, n_features=20, random_state=0)\n"
)
REALISTIC_BODY = ("model = RandomForestClassifier(n_estimators=15, max_depth={C}, random_state=0).fit(Xr, yr)\n"
                  "acc = model.score(Xr, yr)\n")


def mlflow_run(mlflow) -> None:
    mlflow.start_run()
    mlflow.log_param("a", 1)
    mlflow.log_metric("m", 1.0)
    mlflow.end_run()


def main() -> None:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--pairs", type=int, default=None, help="realistic-cell pairs (default 40; 10 with --quick)")
    args = cli.parse_args()
    n_trivial = 300 if args.quick else 3000
    n_real = args.pairs or (10 if args.quick else 40)
    folder = tempfile.mkdtemp(prefix="xpmagic-bench-")
    os.chdir(folder)
    shell = shell_with_xpmagic(os.path.join(folder, "xp.db"))
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    mlflow.set_experiment("bench")
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)

    def set_lean(lean: bool) -> None:
        shell.run_line_magic("config", f"XPMagics.capture_variables = {not lean}")
        shell.run_line_magic("config", f"XPMagics.capture_output = {not lean}")

    times: dict[str, list[float]] = {k: [] for k in ("bare", "xpmagic", "xpmagic-lean", "mlflow")}
    with quiet():
        for _ in range(50):  # warm up: imports, caches, the packages map
            shell.run_cell(TRIVIAL_BARE)
            shell.run_cell(TRIVIAL_XP)
        gc.collect()
        # Blocks of 100, alternating, so drift hits every variant alike; MLflow runs in
        # its own blocks because its background threads slow whatever runs beside them.
        for _ in range(max(1, n_trivial // 100)):
            for name, lean, cell in (("bare", False, TRIVIAL_BARE), ("xpmagic", False, TRIVIAL_XP),
                                     ("xpmagic-lean", True, TRIVIAL_XP)):
                set_lean(lean)
                times[name] += [timed(lambda c=cell: shell.run_cell(c)) for _ in range(100)]
        set_lean(False)
        for _ in range(20):
            mlflow_run(mlflow)
        times["mlflow"] = [timed(lambda: mlflow_run(mlflow)) for _ in range(min(n_trivial, 500))]

    bare_median = median(times["bare"])
    rows = []
    results: dict[str, dict] = {}
    mlflow_added = median(times["mlflow"])
    for name in ("xpmagic", "xpmagic-lean", "mlflow"):
        added = [t - bare_median if name != "mlflow" else t for t in times[name]]
        med, p95 = median(added) * 1000, pct(added, 0.95) * 1000
        results[name] = {"added_median_ms": med, "added_p95_ms": p95}
        rows.append((name, f"{med:.3f}", f"{p95:.3f}", f"{mlflow_added * 1000 / med:.1f}x"
                     if name != "mlflow" else "1.0x"))
    print(f"Trivial cell ({n_trivial} interleaved repetitions; bare run_cell median "
          f"{bare_median * 1000:.3f} ms)")
    print(table(rows, ("variant", "added median ms", "added p95 ms", "MLflow / variant")))

    with quiet():
        shell.run_cell(REALISTIC_SETUP)
        real: dict[str, list[float]] = {"bare": [], "xpmagic": []}
        for i in range(n_real + 3):
            C = 8 + i % 3
            bare_body = REALISTIC_BODY.format(C=C)
            bare = timed(lambda c=bare_body: shell.run_cell(c))
            body = (f"%%experiment bench-real\nC = xp.param('C', {C})\n"
                    + REALISTIC_BODY.format(C="C") + "xp.log(acc=acc)\n")
            exp = timed(lambda c=body: shell.run_cell(c))
            if i >= 3:
                real["bare"].append(bare)
                real["xpmagic"].append(exp)
    bare_real, exp_real = median(real["bare"]), median(real["xpmagic"])
    paired = median([e - b for e, b in zip(real["xpmagic"], real["bare"])])
    results["realistic"] = {"bare_median_ms": bare_real * 1000, "xpmagic_median_ms": exp_real * 1000,
                            "added_median_paired_ms": paired * 1000,
                            "added_percent": 100 * paired / bare_real}
    print(f"\nRealistic cell: RandomForestClassifier fit ({n_real} interleaved pairs)")
    print(table([("bare", f"{bare_real * 1000:.2f}"), ("xpmagic", f"{exp_real * 1000:.2f}")],
                ("variant", "median ms")))
    print(f"added (median of paired differences): {paired * 1000:.3f} ms = "
          f"{100 * paired / bare_real:.2f} %")
    write_json(args.json, {"trivial": results, "n_trivial": n_trivial, "n_realistic": n_real})


if __name__ == "__main__":
    main()

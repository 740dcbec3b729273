"""Optimization bookkeeping (shared/benchmarks.md section 5).

A cheap objective (about 1 ms) for N trials with the same sampler and seed:
  bare Optuna, in-memory storage       what a quick script uses
  bare Optuna, SQLite RDB storage      what people use for a dashboard (Optuna's defaults)
  bare Optuna, SQLite in WAL mode      the same storage configured as xpmagic configures it:
                                       the fair measure of xpmagic's own bookkeeping
  %%experiment --optimize              every trial a recorded run, steerable
Reports wall time, the ratio to each bare variant, and whether the best values match.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from _common import parser, quiet, shell_with_xpmagic, table, write_json  # noqa: E402

BODY = ("x = xp.param('x', 0.0, low=-5.0, high=5.0)\n"
        "y = xp.param('y', 0.0, low=-5.0, high=5.0)\n"
        "t = time.perf_counter()\n"
        "while time.perf_counter() - t < 0.001:\n"
        "    pass\n"
        "xp.log(score=(x - 1) ** 2 + (y + 2) ** 2)\n")


def objective(trial) -> float:
    x = trial.suggest_float("x", -5.0, 5.0)
    y = trial.suggest_float("y", -5.0, 5.0)
    t = time.perf_counter()
    while time.perf_counter() - t < 0.001:
        pass
    return (x - 1) ** 2 + (y + 2) ** 2


def bare(trials: int, sampler: str, storage) -> tuple[float, float]:
    import optuna

    make = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}[sampler]
    study = optuna.create_study(direction="minimize", sampler=make(seed=7), storage=storage)
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - start, study.best_value


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sampler", default="random", choices=["random", "tpe"])
    args = p.parse_args()
    trials = 100 if args.quick else 500
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    folder = tempfile.mkdtemp(prefix="xpmagic-bench-")
    os.chdir(folder)
    shell = shell_with_xpmagic(os.path.join(folder, "xp.db"))
    shell.run_cell("import time")
    reps = 1 if args.quick else 3
    from xpmagic.optimize._storage import open_storage

    memory, rdb, wal, ours = [], [], [], []
    for rep in range(reps):  # alternate, so machine noise hits every variant alike
        memory.append(bare(trials, args.sampler, None))
        rdb.append(bare(trials, args.sampler, f"sqlite:///{folder}/bare-optuna-{rep}.db"))
        wal.append(bare(trials, args.sampler, open_storage(f"sqlite:///{folder}/bare-wal-{rep}.db")))
        with quiet():
            start = time.perf_counter()
            shell.run_cell(f"%%experiment bench{rep} --optimize score --minimize --trials {trials} "
                           f"--sampler {args.sampler} --seed 7 --no-recommend\n{BODY}")
            study = shell.user_ns["xp"].study(f"bench{rep}")
            study.wait()
            ours.append((time.perf_counter() - start, study.best_value))
    memory_s, memory_best = sorted(memory)[len(memory) // 2]
    rdb_s, rdb_best = sorted(rdb)[len(rdb) // 2]
    wal_s, wal_best = sorted(wal)[len(wal) // 2]
    xp_s, xp_best = sorted(ours)[len(ours) // 2]
    rows = [("optuna, in-memory", f"{memory_s:.2f}", f"{xp_s / memory_s:.2f}x", f"{memory_best:.6g}"),
            ("optuna, SQLite storage", f"{rdb_s:.2f}", f"{xp_s / rdb_s:.2f}x", f"{rdb_best:.6g}"),
            ("optuna, SQLite in WAL mode", f"{wal_s:.2f}", f"{xp_s / wal_s:.2f}x", f"{wal_best:.6g}"),
            ("xpmagic --optimize", f"{xp_s:.2f}", "", f"{xp_best:.6g}")]
    print(f"{trials} trials of a ~1 ms objective, {args.sampler} sampler, seed 7, median of {reps} alternating runs")
    print(table(rows, ("variant", "wall s", "xpmagic / variant", "best value")))
    print(f"same best value as bare Optuna: {abs(xp_best - memory_best) < 1e-9}")
    jobs = jobs_speedup(shell, 8 if args.quick else 16)
    write_json(args.json, {"trials": trials, "sampler": args.sampler, "bare_memory_s": memory_s,
                           "bare_sqlite_s": rdb_s, "bare_sqlite_wal_s": wal_s, "xpmagic_s": xp_s,
                           "best": [memory_best, rdb_best, wal_best, xp_best],
                           "jobs": jobs})


SKLEARN_BODY = ("n = xp.param('n_estimators', 40, low=20, high=60)\n"
                "depth = xp.param('max_depth', 6, low=3, high=10)\n"
                "model = RandomForestClassifier(n_estimators=n, max_depth=depth, random_state=0)\n"
                "xp.log(accuracy=model.fit(Xj, yj).score(Xj, yj))\n")


def jobs_speedup(shell, trials: int) -> dict[str, float]:
    """--jobs 2 against --jobs 1 on a CPU-bound scikit-learn objective (threads; sklearn's
    tree building releases the GIL)."""
    times = {}
    with quiet():
        shell.run_cell("from sklearn.datasets import make_classification\n"
                       "from sklearn.ensemble import RandomForestClassifier\n"
                       "Xj, yj = make_classification(n_samples=1500, n_features=20, random_state=0)\n")
        for jobs in (1, 2):
            start = time.perf_counter()
            shell.run_cell(f"%%experiment jobs{jobs} --optimize accuracy --trials {trials} "
                           f"--sampler random --seed 1 --jobs {jobs}\n{SKLEARN_BODY}")
            shell.user_ns["xp"].study(f"jobs{jobs}").wait()
            times[jobs] = time.perf_counter() - start
    print(f"\n{trials} RandomForest trials: --jobs 1 {times[1]:.2f} s, --jobs 2 {times[2]:.2f} s, "
          f"speed-up {times[1] / times[2]:.2f}x")
    return {"jobs1_s": times[1], "jobs2_s": times[2], "speedup": times[1] / times[2]}


if __name__ == "__main__":
    main()

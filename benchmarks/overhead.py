"""Recording overhead: what a user pays per %%experiment cell (shared/benchmarks.md section 1).

In one process, interleaved so drift hits every variant alike:
  bare        shell.run_cell(body) without the magic
  xpmagic-x=1 the trivial cell of benchmarks.md: body `x = 1`, with %%experiment and defaults
              (its bare twin `bare-x=1` is its baseline)
  xpmagic     %%experiment with defaults (full capture: variables fingerprinted, output kept,
              git state, environment), one xp.param and one xp.log: the work of the MLflow run
  xpmagic-lean  capture_variables and capture_output off (for comparison)
  xpmagic-git   defaults, working in a git repository with uncommitted changes (most users'
              case: git reads it for the first run, in a background thread beside the cell;
              later runs reuse that state while nothing in the repository changes)
  mlflow      mlflow.start_run + log_param + log_metric + end_run, local SQLite backend, warm
              (all of it is added time: a bare cell would run besides)
Reports the median and p95 of the added milliseconds per cell, and ratios.

A third part measures cells that read large data, which xpmagic fingerprints when the cell starts
and again when it ends (to see a change made in place): a 1,000,000-row frame of 40 numbers, a
text and a time column (340 MB), and a dict of 100 frames of 1,000 rows each (--no-data skips it).
"""

from __future__ import annotations

import os
import sys

# benchmarks/logging.py would shadow the standard library's logging: move this folder last.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import contextlib  # noqa: E402
import gc  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

from _common import median, parser, pct, quiet, shell_with_xpmagic, table, timed, write_json  # noqa: E402

TRIVIAL_BARE = "x = 1\nm = 1.0\n"
TRIVIAL_XP = "%%experiment bench-trivial\nx = xp.param('a', 1)\nxp.log(m=1.0)\n"
BODY_BARE = "x = 1\n"  # benchmarks.md's trivial body
BODY_XP = "%%experiment bench-body\nx = 1\n"
REALISTIC_SETUP = (
    "from sklearn.datasets import make_classification\n"
    "from sklearn.ensemble import RandomForestClassifier\n"
    "Xr, yr = make_classification(n_samples=2000, n_features=20, random_state=0)\n"
)
REALISTIC_BODY = ("model = RandomForestClassifier(n_estimators=15, max_depth={C}, random_state=0).fit(Xr, yr)\n"
                  "acc = model.score(Xr, yr)\n")


def dirty_repository(folder: str) -> str | None:
    """A git repository of 50 small files with one uncommitted change, or None without git."""
    if shutil.which("git") is None:
        return None
    repo = os.path.join(folder, "repo")
    os.makedirs(os.path.join(repo, "src"))
    for i in range(50):
        with open(os.path.join(repo, "src", f"module{i}.py"), "w") as handle:
            handle.write(f"VALUE = {i}\n" * 20)
    git = ["git", "-C", repo, "-c", "user.email=bench@example.com", "-c", "user.name=bench"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(git + args, check=True, capture_output=True)
    with open(os.path.join(repo, "src", "module0.py"), "a") as handle:
        handle.write("CHANGED = True\n")
    return repo


@contextlib.contextmanager
def working_in(folder: str | None):
    before = os.getcwd()
    os.chdir(folder or before)
    try:
        yield
    finally:
        os.chdir(before)


def mlflow_run(mlflow) -> None:
    mlflow.start_run()
    mlflow.log_param("a", 1)
    mlflow.log_metric("m", 1.0)
    mlflow.end_run()


def main() -> None:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--pairs", type=int, default=None, help="realistic-cell pairs (default 40; 10 with --quick)")
    cli.add_argument("--no-data", action="store_true", help="skip the cells that read large data")
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

    repo = dirty_repository(folder)
    variants = [("bare", False, TRIVIAL_BARE, None), ("bare-x=1", False, BODY_BARE, None),
                ("xpmagic-x=1", False, BODY_XP, None), ("xpmagic", False, TRIVIAL_XP, None),
                ("xpmagic-lean", True, TRIVIAL_XP, None)] + ([("xpmagic-git", False, TRIVIAL_XP, repo)] if repo else [])
    baseline = {"xpmagic-x=1": "bare-x=1"}  # the others are measured against `bare`
    times: dict[str, list[float]] = {k[0]: [] for k in variants}
    times["mlflow"] = []
    with quiet():
        for _ in range(50):  # warm up: imports, caches, the packages map
            for cell in (TRIVIAL_BARE, TRIVIAL_XP, BODY_BARE, BODY_XP):
                shell.run_cell(cell)
        gc.collect()
        # Blocks of 100, alternating, so drift hits every variant alike; MLflow runs in
        # its own blocks because its background threads slow whatever runs beside them.
        for _ in range(max(1, n_trivial // 100)):
            for name, lean, cell, where in variants:
                set_lean(lean)
                with working_in(where):
                    times[name] += [timed(lambda c=cell: shell.run_cell(c)) for _ in range(100)]
        set_lean(False)
        for _ in range(20):
            mlflow_run(mlflow)
        times["mlflow"] = [timed(lambda: mlflow_run(mlflow)) for _ in range(min(n_trivial, 500))]

    bare_median = median(times["bare"])
    rows = []
    results: dict[str, dict] = {}
    mlflow_added = median(times["mlflow"])
    for name in [v[0] for v in variants if not v[0].startswith("bare")] + ["mlflow"]:
        base = median(times[baseline.get(name, "bare")])
        added = [t - base if name != "mlflow" else t for t in times[name]]
        med, p95 = median(added) * 1000, pct(added, 0.95) * 1000
        results[name] = {"added_median_ms": med, "added_p95_ms": p95}
        rows.append((name, f"{med:.3f}", f"{p95:.3f}", f"{mlflow_added * 1000 / med:.1f}x"
                     if name != "mlflow" else "1.0x"))
    print(f"Trivial cell ({n_trivial} interleaved repetitions; bare run_cell median {bare_median * 1000:.3f} ms, "
          f"of `x = 1` {median(times['bare-x=1']) * 1000:.3f} ms; xpmagic-x=1 is benchmarks.md's trivial cell, "
          "the others record a param and a metric, as the MLflow run does)")
    print(table(rows, ("variant", "added median ms", "added p95 ms", "MLflow / variant")))

    with quiet():
        shell.run_cell(REALISTIC_SETUP)
        # The order rotates every round: an experiment cell right after a plain cell runs with
        # colder caches than one after another experiment cell (about 0.2 ms here), and a fixed
        # order would hand that cost to one variant only.
        kinds = [("bare", None)] + [("xpmagic", None)] + ([("xpmagic-git", repo)] if repo else [])
        real: dict[str, list[float]] = {name: [] for name, _ in kinds}
        after_plain: dict[str, list[float]] = {name: [] for name, _ in kinds[1:]}
        previous = "bare"
        for i in range(n_real + 3):
            C = 8 + i % 3
            cells = {"bare": REALISTIC_BODY.format(C=C)}
            body = (f"%%experiment bench-real\nC = xp.param('C', {C})\n"
                    + REALISTIC_BODY.format(C="C") + "xp.log(acc=acc)\n")
            measured, was_after_plain = {}, {}
            for name, where in kinds[i % len(kinds):] + kinds[:i % len(kinds)]:
                with working_in(where):
                    measured[name] = timed(lambda c=cells.get(name, body): shell.run_cell(c))
                was_after_plain[name] = previous == "bare"
                previous = name
            if i >= 3:
                for name, seconds in measured.items():
                    real[name].append(seconds)
                    if name != "bare" and was_after_plain[name]:
                        after_plain[name].append(seconds - measured["bare"])
    bare_real = median(real["bare"])
    print(f"\nRealistic cell: RandomForestClassifier fit ({n_real} rounds, the order rotating)")
    rows = [("bare", f"{bare_real * 1000:.2f}", "", "", "")]
    for name in [n for n in real if n != "bare"]:
        paired = median([e - b for e, b in zip(real[name], real["bare"])])
        plain_first = median(after_plain[name])
        results[f"realistic-{name}" if name != "xpmagic" else "realistic"] = {
            "bare_median_ms": bare_real * 1000, "xpmagic_median_ms": median(real[name]) * 1000,
            "added_median_paired_ms": paired * 1000, "added_percent": 100 * paired / bare_real,
            "added_percent_after_a_plain_cell": 100 * plain_first / bare_real}
        rows.append((name, f"{median(real[name]) * 1000:.2f}", f"{paired * 1000:.3f}",
                     f"{100 * paired / bare_real:.2f} %", f"{100 * plain_first / bare_real:.2f} %"))
    print(table(rows, ("variant", "median ms", "added ms (median of paired differences)", "added",
                       "added, right after a plain cell")))
    if not args.no_data:
        results["data"] = data_cells(shell, 4 if args.quick else 15)
    write_json(args.json, {"trivial": results, "n_trivial": n_trivial, "n_realistic": n_real})


DATA_SETUP = (
    "import numpy as np, pandas as pd\nrng = np.random.default_rng(0)\n"
    "big = pd.DataFrame(rng.random((1_000_000, 40)), columns=[f'c{i}' for i in range(40)])\n"
    "big['city'] = rng.choice(['Oslo', 'Lima', 'Rome', 'Kyiv'], size=len(big))\n"
    "big['when'] = pd.date_range('2020-01-01', periods=len(big), freq='min')\n"
    "parts = {f'part{i}': big.iloc[i * 1000:(i + 1) * 1000] for i in range(100)}\n")
DATA_CELLS = {"groupby on the 1M-row frame": "means = big.groupby('city')['c1'].mean()\n",
              "filter of the 1M-row frame": "hot = big[big.c0 > 0.5]\n",
              "loop over 100 frames": "rows = sum(len(part) for part in parts.values())\n"}


def data_cells(shell, rounds: int) -> dict[str, dict[str, float]]:
    """Added time of cells reading large data, paired with the same cell without the magic."""
    with quiet():
        shell.run_cell(DATA_SETUP)
    rows, results = [], {}
    for label, body in DATA_CELLS.items():
        bare, recorded = [], []
        with quiet():
            for i in range(rounds + 2):
                pair = [(bare, body), (recorded, "%%experiment bench-data\n" + body)]
                for into, cell in (pair if i % 2 else pair[::-1]):
                    seconds = timed(lambda c=cell: shell.run_cell(c))
                    if i >= 2:
                        into.append(seconds)
        added = median([r - b for r, b in zip(recorded, bare)])
        results[label] = {"bare_median_ms": median(bare) * 1000, "added_median_ms": added * 1000,
                          "added_percent": 100 * added / median(bare)}
        rows.append((label, f"{median(bare) * 1000:.2f}", f"{added * 1000:.2f}", f"{100 * added / median(bare):.0f} %"))
    print(f"\nCells reading large data ({rounds} pairs each)")
    print(table(rows, ("cell", "bare median ms", "added ms (median of pairs)", "added")))
    return results


if __name__ == "__main__":
    main()

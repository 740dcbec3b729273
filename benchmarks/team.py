"""Team scale (issue 8): does a worker on another process speed a study up, and what does sharing
knowledge through PostgreSQL cost?

  study wall time   a CPU-bound scikit-learn objective (RandomForest on 2,000 rows), N trials,
                    Optuna storage on PostgreSQL: the kernel alone (--jobs 1) against the kernel
                    plus one `xpmagic worker` process (this machine has 2 cores)
  knowledge write   adding one run's knowledge rows: the SQLite file alone, and the file plus a
                    team table on PostgreSQL (what every recorded run pays with XPMAGIC_KNOWLEDGE)
  recommendations   computing a recommendation with 20,000 knowledge rows, SQLite vs PostgreSQL

Needs PostgreSQL: the URL in $XPMAGIC_TEST_PG, else `bash scripts/postgres` provides one.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

from _common import median, parser, quiet, shell_with_xpmagic, table, write_json  # noqa: E402

SETUP = ("%%experiment bench-data\n"
         "from sklearn.datasets import make_classification\n"
         "Xb, yb = make_classification(n_samples=2000, n_features=20, random_state=0)\n")
BODY = ("from sklearn.ensemble import RandomForestClassifier\n"
        "n = xp.param('n', 60, low=40, high=80)\n"
        "depth = xp.param('depth', 6, low=2, high=12)\n"
        "model = RandomForestClassifier(n_estimators=n, max_depth=depth, random_state=0).fit(Xb, yb)\n"
        "xp.log(acc=model.score(Xb, yb))\n")


def server_url() -> str:
    url = os.environ.get("XPMAGIC_TEST_PG")
    if url:
        return url
    root = os.path.dirname(_HERE)
    return subprocess.run(["bash", os.path.join(root, "scripts", "postgres")], check=True,
                          capture_output=True, text=True).stdout.strip().splitlines()[-1]


def fresh_database(base: str) -> str:
    import psycopg

    name = f"xpbench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + "/" + name


def study_time(shell, db: str, url: str, name: str, trials: int, workers: int) -> float:
    exe = shutil.which("xpmagic", path=os.path.dirname(sys.executable))
    began = time.perf_counter()
    with quiet():
        shell.run_cell(f"%%experiment {name} --optimize acc --trials {trials} --sampler random --seed 1 "
                       f"--no-recommend --storage {url}\n{BODY}")
    procs = [subprocess.Popen([exe, "worker", name, "--db", db, "--max-idle", "10"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
    study = shell.user_ns["xp"].study(name)
    study.wait(600)
    elapsed = time.perf_counter() - began
    for proc in procs:
        proc.wait(120)
    return elapsed


def knowledge_rows(count: int, prefix: str) -> list[dict]:
    import random

    rng = random.Random(0)
    return [{"uid": f"{prefix}{i}:acc", "task": f"task{i % 200}", "task_name": None,
             "meta": {"rows": 1000 + i % 200, "features": 10 + i % 7, "classes": 2},
             "model_family": "SVC", "config": {"C": rng.uniform(0.01, 100), "gamma": rng.uniform(1e-4, 1)},
             "metric": "acc", "direction": "maximize", "score": rng.random(), "cost_s": 0.1,
             "rating": None, "notes": None, "user": "bench", "created_at": "2026-11-23",
             "origin": "bench.db", "experiment": "bench", "study": None, "trial_number": None,
             "sampler": None} for i in range(count)]


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    trials = 12 if args.quick else 40
    base = server_url()
    folder = tempfile.mkdtemp(prefix="xpmagic-team-")
    os.chdir(folder)
    db = os.path.join(folder, "team.db")
    shell = shell_with_xpmagic(db)
    with quiet():
        shell.run_cell(SETUP)
    os.environ.setdefault("PGPASSWORD", "xpmagic")  # what scripts/postgres sets up; workers need it
    url = fresh_database(base)
    alone, helped = [], []
    for repeat in range(1 if args.quick else 2):
        alone.append(study_time(shell, db, url, f"alone{repeat}", trials, workers=0))
        helped.append(study_time(shell, db, url, f"helped{repeat}", trials, workers=1))
    rows = [("kernel alone", f"{median(alone):.2f}", "1.00x"),
            ("kernel + 1 worker", f"{median(helped):.2f}", f"{median(alone) / median(helped):.2f}x")]
    print(f"{trials} RandomForest trials, Optuna storage on PostgreSQL, median of {len(alone)}")
    print(table(rows, ("variant", "wall s", "speed-up")))

    from xpmagic.store import Store
    from xpmagic.teamknowledge import SharedKnowledge

    local = Store(os.path.join(folder, "k.db"))
    shared = SharedKnowledge(Store(os.path.join(folder, "k2.db")), fresh_database(base))
    per_run_local, per_run_shared = [], []
    for i in range(200):
        row = knowledge_rows(1, f"w{i}-")
        began = time.perf_counter()
        local.add_knowledge(row)
        per_run_local.append(time.perf_counter() - began)
        began = time.perf_counter()
        shared.add_knowledge(row)
        per_run_shared.append(time.perf_counter() - began)
    bulk = knowledge_rows(20_000, "bulk-")
    local.add_knowledge(bulk)
    shared.remote().add_knowledge(bulk)
    from xpmagic.optimize._space import SearchSpace
    from xpmagic.recommend import recommend

    specs = SearchSpace.from_dict({"params": {
        "C": {"name": "C", "value": 1.0, "low": 0.01, "high": 100.0, "log": True},
        "gamma": {"name": "gamma", "value": 0.1, "low": 1e-4, "high": 1.0, "log": True}}, "fixed": {}}).specs
    meta = {"rows": 1100, "features": 12, "classes": 2}

    def recommend_time(knowledge) -> float:
        times = []
        for _ in range(5):
            began = time.perf_counter()
            recommend(knowledge, meta=meta, specs=specs, metric="acc", direction="maximize", model_family="SVC")
            times.append(time.perf_counter() - began)
        return median(times)

    rec_local, rec_shared = recommend_time(local), recommend_time(shared)
    print()
    print(table([("knowledge rows of one run, SQLite", f"{median(per_run_local) * 1000:.2f}"),
                 ("knowledge rows of one run, SQLite + PostgreSQL", f"{median(per_run_shared) * 1000:.2f}"),
                 ("recommendation, 20,000 rows, SQLite", f"{rec_local * 1000:.1f}"),
                 ("recommendation, 20,000 rows, PostgreSQL", f"{rec_shared * 1000:.1f}")],
                ("operation", "median ms")))
    write_json(args.json, {"trials": trials, "alone_s": alone, "with_worker_s": helped,
                           "speedup": median(alone) / median(helped),
                           "knowledge_write_ms": {"sqlite": median(per_run_local) * 1000,
                                                  "sqlite+postgresql": median(per_run_shared) * 1000},
                           "recommend_ms": {"sqlite": rec_local * 1000, "postgresql": rec_shared * 1000}})


if __name__ == "__main__":
    main()

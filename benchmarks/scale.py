"""Scale of the store (shared/benchmarks.md section 3).

A synthetic database with N runs (10 params and 5 metrics each, in 20 experiments) and
100,000 knowledge rows, then the operations people wait on, median of 5:
latest 50 runs of an experiment, the first page sorted by a metric, comparing two runs,
recommendations for a new task, and the sidebar's first page over HTTP from a real
jupyter_server. Also the database size per run.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import json  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

from _common import parser, table, write_json  # noqa: E402

EXPERIMENTS = 20


def populate(path: str, runs: int, knowledge: int) -> None:
    """Bulk synthetic rows. The benchmark writes SQL itself: going through start_run/finish_run
    for a million runs would measure the loader, not the queries."""
    from xpmagic.store import Store

    store = Store(path)
    rng = random.Random(0)
    conn = store.conn
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO experiments (name, created_at) VALUES (?, 'x')",
                     [(f"exp-{i}",) for i in range(EXPERIMENTS)])
    batch = 50_000
    for start in range(0, runs, batch):
        ids = range(start + 1, min(runs, start + batch) + 1)
        conn.executemany(
            "INSERT INTO runs (id, uuid, experiment_id, status, started_at, ended_at, duration_s, code,"
            " code_hash, host, pid) VALUES (?, ?, ?, 'ok', ?, ?, ?, 'x = 1', 'h', 'bench', 1)",
            [(i, f"u{i}", 1 + i % EXPERIMENTS, f"2026-01-01T00:00:{i % 60:02d}", "2026-01-01T00:01:00",
              rng.random()) for i in ids])
        conn.executemany("INSERT INTO params (run_id, name, value) VALUES (?, ?, ?)",
                         [(i, f"p{k}", json.dumps(rng.random())) for i in ids for k in range(10)])
        conn.executemany("INSERT INTO metrics (run_id, name, last, count) VALUES (?, ?, ?, 1)",
                         [(i, f"m{k}", rng.random()) for i in ids for k in range(5)])
    conn.execute("COMMIT")
    tasks = max(1, knowledge // 200)
    rows = []
    for t in range(tasks):
        meta = {"rows": rng.randint(100, 5000), "features": rng.randint(2, 80), "classes": rng.randint(2, 6),
                "class_entropy": rng.random(), "stump_accuracy": rng.random(), "nb_accuracy": rng.random()}
        rows += [{"uid": f"{t}-{i}", "task": f"t{t}", "task_name": f"t{t}", "meta": meta, "model_family": "SVC",
                  "config": {"C": 10 ** rng.uniform(-3, 3)}, "metric": "accuracy", "direction": "maximize",
                  "score": rng.random(), "created_at": "x", "origin": "bench"} for i in range(knowledge // tasks)]
    store.add_knowledge(rows)
    store.close()


def median_ms(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def http_first_page(path: str) -> float:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = "scale"
    folder = tempfile.mkdtemp()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": folder, "JUPYTER_RUNTIME_DIR": folder}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", "--allow-root", f"--XPMagicServer.db_path={path}",
         "--ServerApp.jpserver_extensions={'xpmagic': True}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/xpmagic/api/runs?experiment=exp-3&limit=50&sort=metrics.m0&token={token}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("jupyter_server did not start") from None
                time.sleep(0.2)
        urllib.request.urlopen(url).read()  # open the store once
        return median_ms(lambda: json.loads(urllib.request.urlopen(url).read()))
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=None)
    args = p.parse_args()
    runs = args.runs or (50_000 if args.quick else 1_000_000)
    from xpmagic.queries import diff_runs
    from xpmagic.recommend import recommend
    from xpmagic.records import ParamSpec
    from xpmagic.store import Store

    folder = tempfile.mkdtemp(prefix="xpmagic-scale-")
    path = os.path.join(folder, "scale.db")
    started = time.perf_counter()
    populate(path, runs, 100_000)
    print(f"built {runs:,} runs and 100,000 knowledge rows in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    store = Store(path, create=False)
    meta = {"rows": 1000, "features": 20, "classes": 3, "class_entropy": 0.9, "stump_accuracy": 0.5}
    specs = {"C": ParamSpec("C", 1.0, 1e-3, 1e3, True)}
    figures = {
        "latest 50 runs of an experiment": median_ms(lambda: store.list_runs("exp-3", 50)),
        "first page sorted by a metric": median_ms(lambda: store.page_runs(
            experiment="exp-3", limit=50, offset=0, sort="metrics.m0", order="desc", status=None)),
        "compare two runs": median_ms(lambda: diff_runs(store, 17, runs - 3)),
        "recommendations (100,000 knowledge rows)": median_ms(lambda: recommend(
            store, meta=meta, specs=specs, metric="accuracy", direction="maximize", model_family="SVC")),
        "sidebar first page over HTTP": http_first_page(path),
    }
    size = os.path.getsize(path)
    goals = {"recommendations (100,000 knowledge rows)": 50}
    rows = [(name, f"{ms:.1f}", f"<= {goals.get(name, 100)}", "yes" if ms <= goals.get(name, 100) else "NO")
            for name, ms in figures.items()]
    print(f"{runs:,} runs, 10 params and 5 metrics each; median of 5")
    print(table(rows, ("operation", "ms", "goal ms", "met")))
    print(f"database: {size / 1e6:.0f} MB, {size / runs:.0f} bytes per run (with its params and metrics)")
    write_json(args.json, {"runs": runs, "ms": figures, "bytes": size})


if __name__ == "__main__":
    main()

"""Team scale against a real PostgreSQL server: shared knowledge, shared studies, workers.

`.ci/run` (scripts/test) starts Debian's PostgreSQL on loopback through scripts/postgres and
passes its URL in XPMAGIC_TEST_PG; run alone, these tests call scripts/postgres themselves.
Every test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from test_knowledge import SVC_CELL, WINE

from conftest import run_ok

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def pg_server() -> str:
    url = os.environ.get("XPMAGIC_TEST_PG")
    if not url:
        done = subprocess.run(["bash", str(ROOT / "scripts" / "postgres")], capture_output=True, text=True)
        assert done.returncode == 0, f"PostgreSQL is needed for the team tests: {done.stderr[-1000:]}"
        url = done.stdout.strip().splitlines()[-1]
    return url


@pytest.fixture
def pg_url(pg_server):
    """A fresh database on the server, for this test only."""
    import psycopg

    name = f"xp_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield pg_server.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def xpmagic(*args, env=None):
    exe = shutil.which("xpmagic", path=os.path.dirname(sys.executable))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def remote_rows(url):
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT uid, origin, experiment, score FROM xpmagic.knowledge ORDER BY id").fetchall()


def test_knowledge_is_shared_between_two_databases(shell, tmp_path, pg_url, capsys):
    alice, bob = tmp_path / "alice.db", tmp_path / "bob.db"
    run_ok(shell, f"%config XPMagics.knowledge_url = {pg_url!r}")
    run_ok(shell, f"%config XPMagics.db_path = {str(alice)!r}")
    run_ok(shell, WINE)
    for C in (0.01, 10.0):
        run_ok(shell, f"%%experiment wine-svc\n{SVC_CELL.replace('1.0, low', f'{C}, low')}")
    shared = remote_rows(pg_url)
    assert len(shared) == 2 and {r[1] for r in shared} == {str(alice)}  # each row keeps its origin
    from xpmagic.store import Store

    assert len(Store(alice).knowledge_rows()) == 2  # and the local record keeps them too

    run_ok(shell, f"%config XPMagics.db_path = {str(bob)!r}")  # a colleague's database
    run_ok(shell, f"%%experiment bob-svc\n{SVC_CELL.replace('1.0, low', '1.0, low')}")
    recommendation = shell.run_line_magic("xp", "recommend bob-svc")
    best_of_alice = max(shared, key=lambda r: r[3])
    assert best_of_alice[2] == "wine-svc" and recommendation.warm_start  # bob draws on alice's runs
    assert recommendation.warm_start[0]["C"] == pytest.approx(10.0 if best_of_alice[3] == shared[1][3] else 0.01)
    assert len(remote_rows(pg_url)) == 3
    assert "xpmagic:xpmagic@" not in capsys.readouterr().err  # the password is never printed


def test_an_unreachable_server_keeps_the_knowledge_local_and_push_publishes_it_later(shell, tmp_path, pg_url):
    db = tmp_path / "offline.db"
    unreachable = "postgresql://xpmagic:s3cret@127.0.0.1:1/nowhere"
    run_ok(shell, f"%config XPMagics.knowledge_url = {unreachable!r}")
    run_ok(shell, f"%config XPMagics.db_path = {str(db)!r}")
    run_ok(shell, WINE)
    result = shell.run_cell(f"%%experiment offline-svc\n{SVC_CELL}")
    assert result.success
    from xpmagic.store import Store

    assert [r["experiment"] for r in Store(db).knowledge_rows()] == ["offline-svc"]
    pushed = xpmagic("push", "--to", pg_url, "--db", str(db), "--json")
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["new"] == 1 and "xpmagic:***@" in json.loads(pushed.stdout)["to"]
    again = xpmagic("push", "--to", pg_url, "--db", str(db))
    assert again.returncode == 0 and "0 new, 1 already there" in again.stdout
    assert [r[2] for r in remote_rows(pg_url)] == ["offline-svc"]


def test_the_unreachable_server_is_one_warning_line_without_the_password(shell, tmp_path, capfd):
    run_ok(shell, "%config XPMagics.knowledge_url = 'postgresql://xpmagic:s3cret@127.0.0.1:1/nowhere'")
    run_ok(shell, f"%config XPMagics.db_path = {str(tmp_path / 'x.db')!r}")
    run_ok(shell, WINE)
    run_ok(shell, f"%%experiment warn-svc\n{SVC_CELL}")
    run_ok(shell, f"%%experiment warn-svc\n{SVC_CELL}")
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if "knowledge database" in line]
    assert len(warnings) == 1 and "Traceback" not in err
    assert "s3cret" not in err and "127.0.0.1:1/nowhere" in warnings[0]
    assert "xpmagic push --to" in warnings[0]


def test_push_refuses_a_url_that_is_not_postgresql(tmp_path):
    from xpmagic.store import Store

    Store(tmp_path / "a.db").close()
    done = xpmagic("push", "--to", "mysql://root:pw@host/db", "--db", str(tmp_path / "a.db"))
    assert done.returncode != 0 and "push needs a PostgreSQL URL" in done.stderr and "pw" not in done.stderr

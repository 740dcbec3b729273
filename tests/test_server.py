"""The server extension, against a real jupyter_server (pytest-jupyter)."""

from __future__ import annotations

import json
import os

import pytest
from tornado.httpclient import HTTPClientError

from conftest import run_ok, stop_all_studies

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config(db_path):
    return {"ServerApp": {"jpserver_extensions": {"xpmagic": True}},
            "XPMagicServer": {"db_path": str(db_path)}}


@pytest.fixture
def recorded(shell):
    for i, C in enumerate([0.1, 1.0, 10.0]):
        run_ok(shell, f"%%experiment fit\nxp.param('C', {C})\nxp.log(acc={0.5 + i / 10})\n")
    run_ok(shell, "%%experiment other\nxp.log(loss=0.3)\n")
    shell.run_cell("%%experiment fit\nraise ValueError('no')\n")


async def get(jp_fetch, *path, **params):
    response = await jp_fetch("xpmagic", "api", *path, params=params)
    return json.loads(response.body)


async def test_experiments_and_pages_of_runs(jp_fetch, recorded):
    experiments = {e["name"]: e for e in (await get(jp_fetch, "experiments"))["experiments"]}
    assert experiments["fit"]["runs"] == 4 and experiments["fit"]["metric"] == "acc"
    assert experiments["fit"]["best"] == pytest.approx(0.7)
    page = await get(jp_fetch, "runs", experiment="fit", limit="2", sort="metrics.acc", order="desc")
    assert page["total"] == 4 and [r["metrics"]["acc"] for r in page["runs"]] == [0.7, 0.6]
    second = await get(jp_fetch, "runs", experiment="fit", limit="2", offset="2", sort="metrics.acc",
                       order="desc")
    assert second["runs"][0]["metrics"]["acc"] == 0.5 and second["runs"][1]["status"] == "failed"
    failed = await get(jp_fetch, "runs", status="failed")
    assert failed["total"] == 1


async def test_a_study_its_killed_kernel_left_running_shows_as_interrupted(jp_fetch, shell, db_path):
    import sqlite3
    import subprocess
    import sys

    from xpmagic import procinfo

    run_ok(shell, "%%experiment orphaned --optimize score --trials 2 --no-recommend\n"
                  "x = xp.param('x', 0.0, low=0.0, high=1.0)\nxp.log(score=x)\n")
    assert shell.user_ns["xp"].study("orphaned").wait(30)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])  # a kernel that has exited
    gone.wait()
    with sqlite3.connect(db_path) as conn:  # as its killed kernel left it
        conn.execute("UPDATE studies SET state = 'running', pid = ?, pid_started = 'gone', host = ?",
                     (gone.pid, procinfo.host()))
    experiments = {e["name"]: e for e in (await get(jp_fetch, "experiments"))["experiments"]}
    (study,) = experiments["orphaned"]["studies"]
    assert study["state"] == "interrupted" and "--resume" in study["message"]
    (listed,) = (await get(jp_fetch, "studies"))["studies"]
    assert listed["state"] == "interrupted"


async def test_run_detail_and_diff(jp_fetch, recorded):
    run = await get(jp_fetch, "runs", "2")
    assert run["params"] == {"C": 1.0} and "xp.param" in run["code"] and run["series"]["acc"] == [[0], [0.6]]
    diff = await get(jp_fetch, "diff", a="1", b="2")
    assert {"name": "C", "a": 0.1, "b": 1.0} in diff["params"]


async def test_any_name_a_notebook_records_can_be_browsed(jp_fetch, shell):
    run_ok(shell, "%%experiment 'wine svc/ü'\nxp.param('C', 2.0)\nxp.log(**{'f1-score': 0.4})\n")
    run_ok(shell, "%%experiment 'wine svc/ü'\nxp.param('C', 1.0)\nxp.log(**{'f1-score': 0.8})\n")
    page = await get(jp_fetch, "runs", experiment="wine svc/ü", sort="metrics.f1-score", order="desc")
    assert [r["metrics"]["f1-score"] for r in page["runs"]] == [0.8, 0.4]
    knowledge = await get(jp_fetch, "knowledge", experiment="wine svc/ü")
    assert knowledge["experiment"] == "wine svc/ü"
    injected = await get(jp_fetch, "runs", sort="params.C' OR 1=1 --")  # a name is a bound value
    assert injected["total"] == 2


def strict(text):
    """json.loads as a browser's JSON.parse reads: NaN and Infinity are not JSON."""
    def refuse(word):
        raise ValueError(f"{word} is not JSON")
    return json.loads(text, parse_constant=refuse)


async def test_a_diverged_metric_is_kept_and_served_as_json_a_browser_reads(jp_fetch, shell):
    run_ok(shell, "%%experiment diverged\nxp.param('lr', 10.0)\nxp.log(loss=float('inf'), acc=float('nan'))\n")
    for path in (("runs",), ("runs", "1")):
        response = await jp_fetch("xpmagic", "api", *path)
        body = strict(response.body)
        run = body["runs"][0] if "runs" in body else body
        assert run["metrics"] == {"loss": float("inf"), "acc": None}


@pytest.mark.parametrize("path, params, message", [
    (("runs",), {"limit": "0"}, "limit must be between"),
    (("runs",), {"sort": "id; DROP TABLE runs"}, "sort must be one of"),
    (("runs",), {"experiment": "x" * 201}, "1 to 200 characters"),  # tornado turns control characters into spaces
    (("runs",), {"sort": "metrics."}, "sort must be one of"),
    (("runs",), {"order": "sideways"}, "order must be"),
    (("diff",), {"a": "x", "b": "1"}, "whole number"),
    (("diff",), {"a": "1"}, "b is required"),
])
async def test_bad_parameters_are_json_errors(jp_fetch, recorded, path, params, message):
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("xpmagic", "api", *path, params=params)
    assert error.value.code == 400
    assert message in json.loads(error.value.response.body)["error"]


async def test_the_phase_report_takes_the_filters_the_cli_takes(jp_fetch, shell):
    run_ok(shell, "%xp phase data-preparation")
    run_ok(shell, "%%experiment prep --phase data-preparation\nx = 1\n")
    run_ok(shell, "%xp phase --end")
    everything = await get(jp_fetch, "phases")
    preparation = everything["phases"].index("data-preparation")
    assert everything["time_minutes"][preparation][preparation] > 0
    later = await get(jp_fetch, "phases", since="2999-01-01")
    assert later["time_minutes"][preparation][preparation] == 0 and "in the period" in later["summary"]
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("xpmagic", "api", "phases", params={"since": "yesterday"})
    assert error.value.code == 400 and "since must be a date" in json.loads(error.value.response.body)["error"]


async def test_unknown_run_is_404(jp_fetch, recorded):
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("xpmagic", "api", "runs", "999")
    assert error.value.code == 404 and "no run 999" in json.loads(error.value.response.body)["error"]


async def test_requests_without_a_token_are_refused(jp_fetch, recorded):
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("xpmagic", "api", "experiments", headers={"Authorization": ""})
    assert error.value.code == 403


async def test_post_without_xsrf_is_refused(jp_fetch, jp_base_url, jp_http_port, recorded):
    from tornado.httpclient import AsyncHTTPClient

    client = AsyncHTTPClient()
    with pytest.raises(HTTPClientError) as error:
        await client.fetch(f"http://localhost:{jp_http_port}{jp_base_url}xpmagic/api/studies/fit/pause",
                           method="POST", body="{}", headers={"Cookie": "_xsrf=abc"})
    assert error.value.code == 403


async def test_steering_a_running_study_from_the_server(jp_fetch, shell, db_path):
    run_ok(shell, "%%experiment slow --optimize score --trials 500\nimport time\n"
                  "x = xp.param('x', 0.0, low=0.0, high=1.0)\ntime.sleep(0.05)\nxp.log(score=x)\n")
    try:
        response = await jp_fetch("xpmagic", "api", "studies", "slow", "pause", method="POST", body="{}")
        assert response.code == 202
        control = json.loads(response.body)["control"]
        import asyncio

        for _ in range(100):
            status = await get(jp_fetch, "controls", str(control))
            if status["applied_at"]:
                break
            await asyncio.sleep(0.05)
        assert status["result"].startswith("paused")
        studies = (await get(jp_fetch, "studies"))["studies"]
        assert studies[0]["state"] == "paused"
        bad = jp_fetch("xpmagic", "api", "studies", "slow", "budget", method="POST", body='{"add": "x"}')
        with pytest.raises(HTTPClientError) as error:
            await bad
        assert error.value.code == 400
    finally:
        stop_all_studies()


async def test_a_database_made_anew_is_read_anew(jp_fetch, shell, db_path):
    run_ok(shell, "%%experiment old\nx = 1\n")
    assert [e["name"] for e in (await get(jp_fetch, "experiments"))["experiments"]] == ["old"]
    for suffix in ("", "-wal", "-shm"):  # deleted: the kernel starts a new file at the path
        if os.path.exists(f"{db_path}{suffix}"):
            os.remove(f"{db_path}{suffix}")
    run_ok(shell, "%%experiment new\nx = 2\n")
    assert [e["name"] for e in (await get(jp_fetch, "experiments"))["experiments"]] == ["new"]


async def test_missing_database_is_a_clear_error(jp_fetch):
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("xpmagic", "api", "experiments")
    assert error.value.code == 404 and "no xpmagic database" in json.loads(error.value.response.body)["error"]


async def test_knowledge_of_an_experiment_newest_first(jp_fetch, shell):
    from test_knowledge import SVC_CELL, WINE

    run_ok(shell, WINE)
    for C in (0.5, 2.0):
        run_ok(shell, f"%%experiment wine-svc\n{SVC_CELL.replace('1.0, low', f'{C}, low')}")
    knowledge = await get(jp_fetch, "knowledge", experiment="wine-svc", limit="10")
    assert [r["config"]["C"] for r in knowledge["rows"]] == [2.0, 0.5] and knowledge["total"] == 2
    assert knowledge["rows"][0]["model_family"] == "SVC" and "meta" not in knowledge["rows"][0]
    assert (await get(jp_fetch, "knowledge", experiment="nothing-here"))["rows"] == []
    recommendation = await get(jp_fetch, "recommend", experiment="wine-svc")
    assert recommendation["warm_start"] and recommendation["warm_start_reasons"]


async def poll_replay(jp_fetch, job):
    import asyncio

    for _ in range(1200):
        status = await get(jp_fetch, "replays", str(job))
        if status["state"] != "running":
            return status
        await asyncio.sleep(0.1)
    raise AssertionError("the replay job never finished")


async def test_replaying_a_run_from_the_sidebar_gives_its_verdict(jp_fetch, shell, db_path):
    run_ok(shell, "%%experiment steady --seed 1\nimport random\nxp.log(draw=random.random())\n")
    response = await jp_fetch("xpmagic", "api", "runs", "1", "replay", method="POST", body="{}")
    assert response.code == 202
    status = await poll_replay(jp_fetch, json.loads(response.body)["id"])
    assert status["state"] == "done" and status["ok"] is True
    assert [v["verdict"] for v in status["verdicts"]] == ["reproduced"] and status["verdicts"][0]["replay_run"] == 2
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("xpmagic", "api", "runs", "99", "replay", method="POST", body="{}")
    assert error.value.code == 404
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("xpmagic", "api", "replays", "77")
    assert error.value.code == 404


async def test_a_replay_the_database_does_not_trust_fails_with_its_reason(jp_fetch, shell, db_path):
    import sqlite3

    run_ok(shell, "%%experiment steady\nxp.log(one=1)\n")
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE db_info SET value = 'someone-else' WHERE key = 'created_by'")
    response = await jp_fetch("xpmagic", "api", "runs", "1", "replay", method="POST", body="{}")
    status = await poll_replay(jp_fetch, json.loads(response.body)["id"])
    assert status["state"] == "failed" and "created by someone-else" in status["error"]


async def test_a_figure_a_run_displayed_is_served_as_the_image_it_was(jp_fetch, shell, monkeypatch):
    """The sidebar shows a run's figures again. Only raster images are served: an SVG opened as a
    page could run its scripts in the server's origin."""
    monkeypatch.setattr(shell.display_formatter, "active_types", ["text/plain", "image/png", "image/svg+xml"])
    run_ok(shell, "import io, matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                  "from IPython.display import Image, SVG, display\n"
                  "fig, ax = plt.subplots()\nax.plot([1, 3, 2])\nbuffer = io.BytesIO()\n"
                  "fig.savefig(buffer, format='png')\npng = buffer.getvalue()\nplt.close(fig)\n")
    run_ok(shell, "%%experiment plot\ndisplay(Image(data=png))\n"
                  "display(SVG('<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>'))\n")
    response = await jp_fetch("xpmagic", "api", "runs", "1", "displays", "1")
    assert response.body == shell.user_ns["png"] and response.headers["Content-Type"] == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    run = await get(jp_fetch, "runs", "1")
    assert {(d["position"], d["mime"]) for d in run["displays"]} >= {(1, "image/png"), (2, "image/svg+xml")}
    for position in ("2", "3"):  # an SVG; nothing displayed
        with pytest.raises(HTTPClientError) as error:
            await jp_fetch("xpmagic", "api", "runs", "1", "displays", position)
        assert error.value.code == 404
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("xpmagic", "api", "runs", "1", "displays", "1", headers={"Authorization": ""})
    assert error.value.code == 403

"""The JupyterLab sidebar in a real JupyterLab, driven by headless Chromium (Playwright)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import run_ok, stop_all_studies

CHROMIUM = "/usr/bin/chromium"
TOKEN = "xpmagic-test-token"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
LAUNCH_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--disable-quic"]


@pytest.fixture(autouse=True)
def jp_asyncio_loop():
    """pytest-jupyter (loaded by test_server.py) gives every test an asyncio loop and closes it
    afterwards; Playwright's sync API may still be running that loop, so close it only when idle."""
    import asyncio

    loop = asyncio.new_event_loop()
    yield loop
    if not loop.is_running():
        loop.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server with every Jupyter folder in a temp dir, serving one database."""
    root = tmp_path_factory.mktemp("lab")
    dirs = {name: root / name for name in ("config", "runtime", "ipython", "settings", "workspaces")}
    for folder in dirs.values():
        folder.mkdir()
    notification = dirs["settings"] / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    db = root / "lab.db"
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
           "IPYTHONDIR": str(dirs["ipython"]), "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
           "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]), "XPMAGIC_DB": str(db)}
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", "--allow-root", f"--ServerApp.root_dir={root}",
         "--LabApp.extension_manager=readonly",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         f"--XPMagicServer.db_path={db}"],
        env=env, stdout=subprocess.DEVNULL, stderr=(root / "lab.log").open("w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            assert process.poll() is None, (root / "lab.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "JupyterLab did not start"
            time.sleep(0.2)
    yield {"url": url, "db": db, "root": root}
    process.terminate()
    process.wait(30)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: run `bash scripts/test` (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, lab):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(f"{lab['url']}/lab/workspaces/xp-{time.time_ns()}?reset&token={TOKEN}")
    page.wait_for_selector('.jp-SideBar.jp-mod-left li[data-id="xpmagic-sidebar"]', timeout=60_000)
    page.click('.jp-SideBar.jp-mod-left li[data-id="xpmagic-sidebar"]')
    yield page
    context.close()


@pytest.fixture
def lab_shell(shell, lab):
    run_ok(shell, f"%config XPMagics.db_path = {str(lab['db'])!r}")
    return shell


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_browse_runs_and_open_one(page, lab_shell):
    run_ok(lab_shell, "%%experiment sidebar-demo\nC = xp.param('C', 0.5)\nxp.log(acc=0.81)\n")
    run_ok(lab_shell, "import math\n\ndef rounded(v):\n    return math.floor(v * 100) / 100\n")  # a plain cell
    run_ok(lab_shell, "%%experiment sidebar-demo\nC = xp.param('C', 2.0)\nxp.log(acc=rounded(0.875))\n")
    page.wait_for_selector('.xp-experiment[data-experiment="sidebar-demo"]', timeout=30_000)
    page.click('.xp-experiment[data-experiment="sidebar-demo"]')
    page.wait_for_selector(".xp-run", timeout=30_000)
    rows = page.locator(".xp-run")
    assert rows.count() == 2
    screenshot(page, "sidebar-runs")
    rows.first.click()
    page.wait_for_selector(".xp-code", timeout=30_000)
    assert "xp.param" in page.inner_text(".xp-code")
    assert "0.87" in page.inner_text(".xp-sidebar")
    setup = page.inner_text(".xp-setup")  # what the run read from the plain cell
    assert "import math" in setup and "def rounded(v):" in setup
    screenshot(page, "sidebar-run")


def test_a_run_shows_the_figure_its_cell_displayed(page, lab_shell, monkeypatch):
    monkeypatch.setattr(lab_shell.display_formatter, "active_types", ["text/plain", "image/png"])  # as a kernel
    run_ok(lab_shell, "import io, matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                      "from IPython.display import Image\n")
    run_ok(lab_shell, "%%experiment sidebar-figure\nfig, ax = plt.subplots(figsize=(4, 3))\n"
                      "ax.plot([1, 3, 2])\nax.set_title('loss')\nbuffer = io.BytesIO()\n"
                      "fig.savefig(buffer, format='png', dpi=100)\nplt.close(fig)\ndisplay(Image(buffer.getvalue()))\n")
    page.wait_for_selector('.xp-experiment[data-experiment="sidebar-figure"]', timeout=30_000)
    page.click('.xp-experiment[data-experiment="sidebar-figure"]')
    page.wait_for_selector(".xp-run", timeout=30_000)
    page.locator(".xp-run").first.click()
    page.wait_for_function("() => { const img = document.querySelector('img.xp-figure');"
                           " return img && img.complete && img.naturalWidth === 400; }", timeout=30_000)
    figure, sidebar = page.locator("img.xp-figure").bounding_box(), page.locator(".xp-sidebar").bounding_box()
    assert figure["x"] + figure["width"] <= sidebar["x"] + sidebar["width"] + 1  # scaled to fit the sidebar
    page.locator("img.xp-figure").scroll_into_view_if_needed()
    screenshot(page, "sidebar-figure")


def test_compare_two_runs(page, lab_shell, tmp_path):
    helper = tmp_path / "xp_sidebar_helper.py"  # the person's own module, edited between the runs
    helper.write_text("BASE = 0.5\n")
    run_ok(lab_shell, f"import sys, importlib\nsys.path.insert(0, {str(tmp_path)!r})\nimport xp_sidebar_helper\n")
    try:
        run_ok(lab_shell, "%%experiment compare-demo\nxp.param('depth', 3)\nxp.log(acc=xp_sidebar_helper.BASE + 0.2)\n")
        helper.write_text("BASE = 0.6\n")
        run_ok(lab_shell, "importlib.reload(xp_sidebar_helper)")
        run_ok(lab_shell, "%%experiment compare-demo\nxp.param('depth', 5)\nxp.log(acc=xp_sidebar_helper.BASE + 0.2)\n")
    finally:
        sys.modules.pop("xp_sidebar_helper", None)
        lab_shell.run_cell(f"sys.path.remove({str(tmp_path)!r})")
    page.wait_for_selector('.xp-experiment[data-experiment="compare-demo"]', timeout=30_000)
    page.click('.xp-experiment[data-experiment="compare-demo"]')
    page.wait_for_selector(".xp-compare", timeout=30_000)
    boxes = page.locator(".xp-compare")
    boxes.nth(0).click()
    page.wait_for_timeout(300)
    page.locator(".xp-compare").nth(1).click()
    page.wait_for_timeout(300)
    page.click(".xp-do-compare")
    page.wait_for_selector("text=depth", timeout=30_000)
    text = page.inner_text(".xp-sidebar")
    assert "depth" in text and "3" in text and "5" in text
    # the code diff: each changed line on its own line, added and removed lines marked
    assert page.locator(".xp-diff-add").first.inner_text().startswith("+xp.param('depth'")
    assert page.locator(".xp-diff-del").first.inner_text().startswith("-xp.param('depth'")
    assert "local code" in text and "xp_sidebar_helper" in text  # and the module's edit, below the cell's
    edited = {line.strip() for line in page.locator(".xp-diff-add, .xp-diff-del").all_inner_texts()}
    assert {"+BASE = 0.5", "-BASE = 0.6"} <= edited or {"+BASE = 0.6", "-BASE = 0.5"} <= edited
    screenshot(page, "sidebar-compare")
    page.click(".xp-back")
    page.click('.xp-experiment[data-experiment="compare-demo"]')
    page.locator(".xp-run").first.click()
    page.wait_for_selector(".xp-local-code", timeout=30_000)
    assert "xp_sidebar_helper" in page.inner_text(".xp-local-code")


def test_pause_and_resume_a_running_study_from_the_sidebar(page, lab_shell):
    run_ok(lab_shell, "%%experiment steer-demo --optimize score --trials 500\nimport time\n"
                      "x = xp.param('x', 0.0, low=0.0, high=1.0)\ntime.sleep(0.05)\nxp.log(score=x)\n")
    try:
        page.wait_for_selector('.xp-action[data-study="steer-demo"][data-action="pause"]', timeout=30_000)
        page.click('.xp-action[data-study="steer-demo"][data-action="pause"]')
        study = lab_shell.user_ns["xp"].study("steer-demo")
        deadline = time.monotonic() + 10
        while study.state != "paused":
            assert time.monotonic() < deadline, "the study did not pause"
            time.sleep(0.1)
        page.wait_for_selector('[data-study-row="steer-demo"] .xp-paused', timeout=30_000)
        screenshot(page, "sidebar-study-paused")
        page.click('.xp-action[data-study="steer-demo"][data-action="resume"]')
        deadline = time.monotonic() + 10
        while study.state != "running":
            assert time.monotonic() < deadline, "the study did not resume"
            time.sleep(0.1)
        page.wait_for_selector('[data-study-row="steer-demo"] .xp-running', timeout=30_000)
        actions = [i["action"] for i in study.interactions if i["source"] == "sidebar"]
        assert actions[-2:] == ["pause", "resume"]
    finally:
        stop_all_studies()


def test_open_in_notebook_selects_the_cell_that_made_the_run(page, lab, lab_shell, monkeypatch):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    notebook = new_notebook(cells=[new_code_cell("# preparing", id="prep-cell"),
                                   new_code_cell("# the training cell", id="train-cell"),
                                   new_code_cell("# afterwards", id="after-cell")])
    nbformat.write(notebook, str(lab["root"] / "demo.ipynb"))
    monkeypatch.setenv("JPY_SESSION_NAME", str(lab["root"] / "demo.ipynb"))  # as jupyter_server sets it
    result = lab_shell.run_cell("%%experiment open-demo\nxp.log(acc=0.5)\n", cell_id="train-cell")
    assert result.success
    page.wait_for_selector('.xp-experiment[data-experiment="open-demo"]', timeout=30_000)
    page.click('.xp-experiment[data-experiment="open-demo"]')
    page.click(".xp-run", timeout=30_000)
    page.click(".xp-open", timeout=30_000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell.jp-mod-active", timeout=60_000)
    page.wait_for_function(
        "() => document.querySelector('.jp-NotebookPanel .jp-Cell.jp-mod-active')?.innerText.includes('training')",
        timeout=30_000)
    assert "the training cell" in page.inner_text(".jp-NotebookPanel .jp-Cell.jp-mod-active")
    screenshot(page, "sidebar-open-in-notebook")


def test_knowledge_recommendations_and_the_phase_heatmap(page, lab_shell):
    from test_knowledge import SVC_CELL, WINE

    run_ok(lab_shell, "%xp phase model-development")
    run_ok(lab_shell, WINE)
    run_ok(lab_shell, f"%%experiment kb-demo\n{SVC_CELL}")
    run_ok(lab_shell, "%xp revisit data-preparation --reason data-quality")
    run_ok(lab_shell, f"%%experiment kb-demo\n{SVC_CELL.replace('1.0, low', '10.0, low')}")
    run_ok(lab_shell, "%xp revisit --end")
    page.wait_for_selector('.xp-experiment[data-experiment="kb-demo"]', timeout=30_000)
    page.click('.xp-experiment[data-experiment="kb-demo"]')
    page.click(".xp-knowledge", timeout=30_000)
    page.wait_for_selector(".xp-knowledge-rows", timeout=30_000)
    assert page.locator(".xp-knowledge-rows tbody tr").count() == 2
    assert "wine" in page.inner_text(".xp-knowledge-rows")
    assert "SVC" in page.get_attribute(".xp-knowledge-rows tbody tr", "title")
    assert page.locator(".xp-warm li").count() >= 1  # warm starts from this experiment's own rows
    assert "too few past tasks to test" in page.inner_text(".xp-similarity")  # why similarity has the say it has
    assert "test which strength works" in page.inner_text(".xp-adaptation")  # how strongly results re-weight
    assert "alike in every meta-feature" in page.inner_text(".xp-similar")  # the most similar task, and why
    screenshot(page, "sidebar-knowledge")
    page.click(".xp-back")
    page.click(".xp-phases", timeout=30_000)
    page.wait_for_selector(".xp-heatmap", timeout=30_000)
    text = page.inner_text(".xp-sidebar")
    assert "model-development" in text and "data-preparation" in text and "data-quality" in text
    assert page.locator(".xp-heat").count() >= 4
    screenshot(page, "sidebar-phases")


def test_replay_a_run_and_see_its_verdict(page, lab_shell):
    run_ok(lab_shell, "%%experiment replay-demo --seed 3\nimport random\nxp.log(draw=random.random())\n")
    page.wait_for_selector('.xp-experiment[data-experiment="replay-demo"]', timeout=30_000)
    page.click('.xp-experiment[data-experiment="replay-demo"]')
    page.click(".xp-run", timeout=30_000)
    page.click(".xp-replay", timeout=30_000)
    page.wait_for_selector(".xp-verdict", timeout=180_000)
    assert "reproduced" in page.inner_text(".xp-verdicts")
    assert "Reproduced" in page.inner_text(".xp-replay-status")
    screenshot(page, "sidebar-replay")


def test_a_tutorial_notebook_run_in_a_kernel_appears_in_the_sidebar(page, lab, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(str(Path(__file__).resolve().parent.parent / "notebooks" / "01-recording.ipynb"), 4)
    monkeypatch.setenv("XPMAGIC_DB", str(lab["db"]))  # the kernel inherits it, as a user's would
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(lab["root"])}}).execute()
    page.wait_for_selector('.xp-experiment[data-experiment="wine-svc"]', timeout=30_000)
    page.wait_for_selector('.xp-experiment[data-experiment="wine-scale"]', timeout=30_000)
    page.click('.xp-experiment[data-experiment="wine-svc"]')
    page.wait_for_selector(".xp-run", timeout=30_000)
    assert page.locator(".xp-run").count() >= 1
    screenshot(page, "sidebar-tutorial-runs")

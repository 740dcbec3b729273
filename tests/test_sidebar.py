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
    run_ok(lab_shell, "%%experiment sidebar-demo\nC = xp.param('C', 2.0)\nxp.log(acc=0.87)\n")
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
    screenshot(page, "sidebar-run")


def test_compare_two_runs(page, lab_shell):
    run_ok(lab_shell, "%%experiment compare-demo\nxp.param('depth', 3)\nxp.log(acc=0.7)\n")
    run_ok(lab_shell, "%%experiment compare-demo\nxp.param('depth', 5)\nxp.log(acc=0.8)\n")
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
    screenshot(page, "sidebar-compare")


def test_pause_a_running_study_from_the_sidebar(page, lab_shell):
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
        assert any(i["source"] == "sidebar" for i in study.interactions)
    finally:
        stop_all_studies()

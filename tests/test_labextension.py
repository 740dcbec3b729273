"""The sidebar's pure TypeScript (formatters, backoff, highlighting) under node's test runner,
and the prebuilt extension shipped in the Python package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_typescript_unit_tests_pass():
    bin_dir = os.path.dirname(sys.executable)
    jlpm = shutil.which("jlpm", path=bin_dir)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run([jlpm, "test"], cwd=ROOT / "labextension", capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    written = sum(text.count("\ntest(") for text in
                  (p.read_text() for p in (ROOT / "labextension" / "src" / "__tests__").glob("*.test.ts")))
    assert "# fail 0" in result.stdout and f"# pass {written}" in result.stdout  # every test ran


def test_prebuilt_extension_is_installed_with_the_package():
    installed = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "xpmagic" / "package.json"
    assert installed.exists(), "pip install should ship the built sidebar"
    meta = json.loads(installed.read_text())
    assert meta["name"] == "xpmagic" and meta["jupyterlab"]["_build"]["load"].startswith("static/")

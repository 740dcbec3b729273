"""Shared fixtures: a real IPython shell with xpmagic loaded, on a temp database."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from IPython.testing.globalipapp import start_ipython

from xpmagic.store import Store


@pytest.fixture(scope="session")
def _ipython():
    return start_ipython()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "xp.db"


@pytest.fixture
def shell(_ipython, db_path, monkeypatch, tmp_path):
    """An InteractiveShell with xpmagic loaded and writing to a fresh temp database."""
    monkeypatch.delenv("XPMAGIC_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    _ipython.run_line_magic("load_ext", "xpmagic")
    _ipython.run_line_magic("config", f"XPMagics.db_path = {str(db_path)!r}")
    _ipython.run_line_magic("config", "XPMagics.record_git = True")
    yield _ipython
    _ipython.run_line_magic("unload_ext", "xpmagic")
    _ipython.reset(new_session=False)
    _ipython.config.pop("XPMagics", None)  # %config persists in the shell's config


def run_ok(shell, cell: str):
    """Run a cell and fail the test if the cell failed (the JupySQL TestingShell idea)."""
    result = shell.run_cell(cell)
    if not result.success:
        raise AssertionError(f"cell failed: {result.error_before_exec or result.error_in_exec!r}")
    return result


@pytest.fixture
def open_store(db_path):
    stores = []

    def opener(path: Path | None = None) -> Store:
        store = Store(path or db_path, create=False)
        stores.append(store)
        return store

    yield opener
    for store in stores:
        store.close()


def rows(path: Path, sql: str, args=()) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, args).fetchall()


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


def stop_all_studies() -> None:
    """Stop every study this process drives and wait for its threads (tests that start one)."""
    from xpmagic.optimize import controllers

    for controller in list(controllers.values()):
        if controller.state in ("running", "paused"):
            controller.apply("stop", source="system")
        controller.wait(30)
    controllers.clear()

"""Helpers shared by the benchmark scripts: a quiet IPython shell, stats, output."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    return p


def shell_with_xpmagic(db_path: str) -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    os.environ["XPMAGIC_DB"] = db_path
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "xpmagic")
    return shell


@contextlib.contextmanager
def quiet() -> Any:
    """Swallow what cells print (the summary line) so the terminal does not dominate."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        yield
    sink.seek(0)
    sink.truncate()


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(rows: list[tuple], headers: tuple[str, ...]) -> str:
    cells = [headers] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpus": os.cpu_count()}


def write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        with open(path, "w") as handle:
            json.dump({"machine": machine(), **data}, handle, indent=2)

"""The person's own modules a session has loaded, and the scripts a cell runs with %run:
their source is part of what a run ran.

A cell calls into helpers.py; when helpers.py changes, the results change, and the cell's
code alone cannot say why (git can, but only in a repository). Modules whose file lies in the
working folder, outside any site-packages, are the person's code: each run records which of
them were loaded, with a hash of their source as loaded, and the source itself once per
version, so diff and replay can show what changed.

Cheap per cell: each loaded module is classified once (sys.modules is looked at again only
when it grows), and one of the person's is read again only after a reload: importlib.reload
gives it a new ``__spec__``, re-importing makes a new module, and IPython's autoreload, which
may patch a module in place, reloads a module it covers once its file changes. A file edited
but not reloaded keeps the version that actually runs.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import io
import os
import shlex
import sys
import sysconfig
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

MAX_SOURCE_BYTES = 1_000_000  # a larger "module" is data, not code: recorded by hash only
_INSTALLED = ("site-packages", "dist-packages")


@dataclass(frozen=True)
class LocalModule:
    module: str
    path: str  # relative to the working folder
    sha256: str
    source: str | None  # None when too large to keep

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "path": self.path, "sha256": self.sha256}


class LocalCodeTracker:
    """Which of the person's modules are loaded, and the version of each that runs."""

    def __init__(self, autoreloaded: Callable[[str], bool] = lambda name: False) -> None:
        self._autoreloaded = autoreloaded  # whether autoreload reloads this module when its file changes
        self._module_count = -1
        self._checked: dict[str, ModuleType] = {}  # modules already classified, by name
        self._own: dict[str, tuple[ModuleType, str]] = {}  # module name -> (module, real path), any folder
        self._folders: dict[str, str] = {}  # working folder -> its real path, as a prefix
        self._versions: dict[str, tuple[Any, tuple[float, int], LocalModule]] = {}  # name -> (the spec and
        # the file's (mtime, size) it was read under, version)

    def loaded(self, folder: str) -> list[LocalModule]:
        replaced = [name for name, (module, _) in self._own.items() if sys.modules.get(name) is not module]
        if replaced or len(sys.modules) != self._module_count:  # only modules new since the last look
            self._module_count = len(sys.modules)
            # copy(): iterating sys.modules itself fails when a collection or another thread imports
            new = {name: module for name, module in sys.modules.copy().items()
                   if self._checked.get(name) is not module}
            self._checked.update(new)
            self._own.update(_own_modules(new))
            self._own = {name: entry for name, entry in sorted(self._own.items())
                         if sys.modules.get(name) is entry[0]}
        inside = self._folders.get(folder)
        if inside is None:
            inside = self._folders[folder] = os.path.join(os.path.realpath(folder), "")
        found = []
        for name, (module, path) in self._own.items():
            if not path.startswith(inside):
                continue
            spec = getattr(module, "__spec__", None)
            known = self._versions.get(name)
            if known is None or known[0] is not spec or (  # new, reloaded, or autoreloaded since it was read
                    self._autoreloaded(name) and _stamp(path) != known[1]):
                stamp, version = _stamp(path), _read(name, module, folder)
                if version is None:
                    continue
                known = self._versions[name] = (spec, stamp, version)  # keeping the spec keeps its id unique
            found.append(known[2])
        return found


def _stamp(path: str) -> tuple[float, int]:
    try:
        status = os.stat(path)
    except OSError:
        return (0.0, -1)
    return (status.st_mtime, status.st_size)


def autoreload_of(shell: Any) -> Callable[[str], bool]:
    """Whether IPython's autoreload (if loaded and on) reloads a module when its file changes:
    `%autoreload 2` covers every module not skipped, `%autoreload 1` those named with %aimport."""
    def covers(name: str) -> bool:
        magics = shell.magics_manager.registry.get("AutoreloadMagics")
        reloader = getattr(magics, "_reloader", None)
        if reloader is None or not getattr(reloader, "enabled", False) or name in getattr(reloader, "skip_modules", {}):
            return False
        return bool(getattr(reloader, "check_all", False)) or name in getattr(reloader, "modules", {})
    return covers


@functools.lru_cache(maxsize=1)
def _python_folders() -> tuple[str, ...]:
    """Where Python and installed packages live: never the person's code, even inside the working
    folder (a .venv in the project, a pyenv or conda Python under the home folder)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, *sysconfig.get_paths().values()}
    paths |= {os.path.realpath(p) for p in paths if p}
    return tuple(os.path.join(p, "") for p in paths if p)


def _own_modules(modules: dict[str, ModuleType]) -> dict[str, tuple[ModuleType, str]]:
    """Of these loaded modules, those that may be the person's: a .py file outside Python's folders,
    any site-packages and xpmagic (even installed editable). The working folder decides later."""
    python = _python_folders()
    own = {}
    for name, module in modules.items():
        path = getattr(module, "__file__", None)
        # A string test first: a session has thousands of modules, and realpath costs microseconds each.
        if (not isinstance(path, str) or not path.endswith(".py") or path.startswith(python)
                or name == "__main__" or name.partition(".")[0] == "xpmagic"):
            continue
        real = os.path.realpath(path)
        if not real.startswith(python) and not any(part in _INSTALLED for part in real.split(os.sep)):
            own[name] = (module, real)
    return own


def _read(name: str, module: ModuleType, folder: str) -> LocalModule | None:
    return _read_file(name, module.__file__, folder)


def _read_file(name: str, file: str, folder: str) -> LocalModule | None:
    path = os.path.realpath(file)
    digest = hashlib.sha256()
    kept = bytearray()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                if len(kept) <= MAX_SOURCE_BYTES:
                    kept += block
    except OSError:
        return None  # deleted since it was imported: nothing to record
    relative = os.path.relpath(path, os.path.realpath(folder))
    source = _decoded(bytes(kept)) if len(kept) <= MAX_SOURCE_BYTES else None
    return LocalModule(name, relative, digest.hexdigest(), source)


def _decoded(content: bytes) -> str:
    """Source text as Python reads it: its coding cookie (``# -*- coding: latin-1 -*-``), else UTF-8."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(content).readline)
    except SyntaxError:  # an unknown cookie: Python could not import it either
        encoding = "utf-8"
    return content.decode(encoding, "replace")


# %run options that take a value (IPython's parse_options spec 'nidtN:b:pD:l:rs:T:em:G')
_RUN_OPTIONS_WITH_VALUE = frozenset({"-N", "-b", "-D", "-l", "-s", "-T", "-m"})


def scripts_run_by(python_source: str, folder: str) -> list[LocalModule]:
    """The scripts a (transformed) cell runs with ``%run path.py``, read now: the version that runs."""
    found = []
    for path in _run_targets(python_source):
        resolved = _script_file(path)
        version = None if resolved is None else _read_file("", resolved, folder)
        if version is not None:  # named by its file: `%run train` and `%run train.py` are one script
            found.append(dataclasses.replace(version, module=f"%run {version.path}"))
    return found


def scripts_missing(python_source: str) -> list[str]:
    """The scripts a (transformed) cell runs with ``%run`` that are not here to run."""
    return [path for path in _run_targets(python_source) if _script_file(path) is None]


def _run_targets(python_source: str) -> list[str]:
    if "run_line_magic" not in python_source:
        return []
    try:
        tree = ast.parse(python_source)
    except SyntaxError:
        return []
    return [path for path in map(_run_target, ast.walk(tree)) if path is not None]


def _run_target(node: ast.AST) -> str | None:
    """The script of ``get_ipython().run_line_magic('run', '-i train.py --epochs 3')``; None for
    anything else, and for ``%run -m module`` (a module: recorded when it is the person's own)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "run_line_magic" and len(node.args) >= 2):
        return None
    name, line = node.args[0], node.args[1]
    if not (isinstance(name, ast.Constant) and name.value == "run"
            and isinstance(line, ast.Constant) and isinstance(line.value, str)):
        return None
    try:
        words = shlex.split(line.value)
    except ValueError:
        return None
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == "-m":
            return None
        elif word in _RUN_OPTIONS_WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def _script_file(path: str) -> str | None:
    """The file %run runs (IPython's get_py_filename: the name, else the name with .py)."""
    path = os.path.expanduser(path)
    for candidate in (path, path + ".py"):
        if os.path.isfile(candidate):
            return candidate
    return None

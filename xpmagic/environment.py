"""The environment a run ran in: Python, platform, imported packages, env vars, git.

The package list is computed from the modules the session has imported and is
refreshed only when that set grows, so a warm cell pays almost nothing.
Secret-looking environment variables are never recorded.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|PWD|KEY|CREDENTIAL|AUTH|COOKIE|PRIVATE",
                         re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s]*):[^@/\s]*@",
                              re.IGNORECASE)
_MAX_ENV_VALUE = 500
_ENV_VARS_RECHECK_S = 2.0


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) and name not in {"OLDPWD"}


def redact_url(text: str) -> str:
    """Drop the password of any ``scheme://user:password@`` in text."""
    return _URL_CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text)


def safe_env_vars(environ: dict[str, str] | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {
        name: redact_url(value)[:_MAX_ENV_VALUE]
        for name, value in sorted(environ.items())
        if not is_secret_name(name)
    }


class EnvironmentTracker:
    """Caches the environment snapshot; recomputes only when new modules were imported."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._module_count = -1
        self._top_level: frozenset[str] = frozenset()
        self._versions: dict[str, str] = {}
        self._distributions: dict[str, list[str]] | None = None
        self._env_vars_key: int = 0
        self._env_checked_at = -1e9
        self._snapshot: dict[str, Any] | None = None

    def warm_up_in_background(self) -> None:
        threading.Thread(target=self._package_map, name="xpmagic-env", daemon=True).start()

    def _package_map(self) -> dict[str, list[str]]:
        with self._lock:
            if self._distributions is None:
                self._distributions = metadata.packages_distributions()
            return self._distributions

    def snapshot(self) -> dict[str, Any]:
        """The current environment; cheap when nothing was imported since the last call."""
        now = time.monotonic()
        if now - self._env_checked_at > _ENV_VARS_RECHECK_S:
            # reading os.environ costs ~0.1 ms; variables rarely change within seconds
            self._env_checked_at = now
            env_key = hash(frozenset(os.environ.items()))
        else:
            env_key = self._env_vars_key
        if (self._snapshot is not None and len(sys.modules) == self._module_count
                and env_key == self._env_vars_key):
            return self._snapshot
        self._module_count = len(sys.modules)
        self._env_vars_key = env_key
        top_level = frozenset(name.partition(".")[0] for name in sys.modules.copy())  # another thread may import
        if top_level != self._top_level:
            self._add_versions(top_level - self._top_level)
            self._top_level = top_level
        snapshot = {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": dict(sorted(self._versions.items())),
            "env_vars": safe_env_vars(),
        }
        snapshot["hash"] = hashlib.sha256(
            json.dumps(snapshot, sort_keys=True).encode()
        ).hexdigest()
        self._snapshot = snapshot
        return snapshot

    def _add_versions(self, modules: frozenset[str]) -> None:
        mapping = self._package_map()
        for module in modules:
            for dist in mapping.get(module, ()):
                if dist not in self._versions:
                    try:
                        self._versions[dist] = metadata.version(dist)
                    except metadata.PackageNotFoundError:
                        pass


@dataclass(frozen=True)
class GitReading:
    """A git snapshot and where it came from: gitcache.py watches these places for changes."""

    state: dict[str, Any]
    git_dir: str
    common_dir: str
    ignored: tuple[str, ...]  # paths git ignores, relative to the root (folders end with "/")


def git_snapshot(folder: str | Path) -> dict[str, Any] | None:
    """Commit, branch, dirty flag and diff hash of the repository holding folder, or None."""
    reading = read_git(folder)
    return None if reading is None else reading.state


def read_git(folder: str | Path) -> GitReading | None:
    from .gitshell import GIT_SHELL

    answer = GIT_SHELL.snapshot(folder) or _git_by_processes(folder)
    if answer is None or len(answer[0]) < 3:
        return None
    lines, status, diff = answer
    root, git_dir, common_dir = lines[:3]
    commit, branch = (lines[3], lines[4]) if len(lines) >= 5 else (None, None)  # no commit yet
    changes, ignored = _split_ignored(status)
    dirty = bool(changes.strip())
    diff_hash = hashlib.sha256(diff + changes).hexdigest() if dirty else None
    state = {"root": root, "commit": commit, "branch": branch, "dirty": dirty,
             "diff_hash": diff_hash}
    state["hash"] = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()
    common_dir = os.path.normpath(os.path.join(os.path.abspath(folder), common_dir))  # may be relative
    return GitReading(state, git_dir, common_dir, ignored)


def _split_ignored(status: bytes) -> tuple[bytes, tuple[str, ...]]:
    """The porcelain status without its "!! " lines (what the diff hash covers), and those paths."""
    changes, ignored = [], []
    for line in status.splitlines(keepends=True):
        if line.startswith(b"!! "):
            ignored.append(_porcelain_path(line[3:].rstrip(b"\n")))
        else:
            changes.append(line)
    return b"".join(changes), tuple(path for path in ignored if path is not None)


def _porcelain_path(raw: bytes) -> str | None:
    """A path as git's porcelain prints it: C-quoted when it holds unusual characters."""
    if raw.startswith(b'"'):
        try:
            raw = ast.literal_eval("b" + raw.decode("ascii"))
        except (ValueError, SyntaxError, UnicodeDecodeError):
            return None
    return os.fsdecode(raw)


def _git_by_processes(folder: str | Path) -> tuple[list[str], bytes, bytes] | None:
    """What GitShell answers, from git processes started here (where there is no shell)."""
    from .gitshell import GIT_ENV

    def git(*args: str) -> bytes:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, timeout=20,
                              check=True, env={**os.environ, **GIT_ENV}).stdout

    dirs = ("--show-toplevel", "--absolute-git-dir", "--git-common-dir")
    try:
        lines = git("rev-parse", *dirs, "HEAD", "--abbrev-ref", "HEAD").decode().splitlines()
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        try:
            lines = git("rev-parse", *dirs).decode().splitlines()[:3]
        except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
            return None
    status_args = ("status", "--porcelain", "--untracked-files=normal")
    try:
        try:
            status = git(*status_args, "--ignored=matching")
        except subprocess.CalledProcessError:  # git before 2.16
            status = git(*status_args)
        changed = _split_ignored(status)[0].strip()
        diff = git("diff", "HEAD") if len(lines) >= 5 and changed else b""  # clean: no diff
    except (OSError, subprocess.SubprocessError):
        return None
    return lines, status, diff

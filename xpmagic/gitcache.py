"""Reusing a repository's last git snapshot while nothing git looks at has changed.

A snapshot costs git about 5 ms of CPU, and the thread that waits for it competes with the
person's cell; most runs follow one another with the repository untouched. So after git
reads a folder, treewatch.py watches what git looks at, and the next run reuses the
snapshot unless something changed: checking costs microseconds and needs no thread. Where
there is no watch (not Linux, out of inotify watches, a change too recent to trust), git
runs for every run, as it did before. A snapshot is never reused for more than a few minutes.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from .environment import GitReading, read_git
from .treewatch import AbsenceWatch, TreeWatch

MAX_REUSE_S = 300.0
MAX_WATCHED = 2  # working folders watched per kernel: each holds an inotify instance (128 per user)
MAX_SKIPPED_WATCHES = 32


@dataclass
class _Cached:
    reading: GitReading | None  # None: the folder is in no repository
    watch: TreeWatch
    read_at: float
    reused: int = 0


class GitSnapshots:
    """Git state of folders, read by git again only when their repository changed.
    ``reuse`` is for the cell's thread; ``read`` (which runs git) for a background one."""

    def __init__(self) -> None:
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        self._owner_pid = os.getpid()  # a forked child shares the watches: it must not read them
        # A repository that changes between every two runs (a cell writing into it) makes each
        # watch useless: after n useless watches in a row, the next 2**n reads set up none.
        self._useless: dict[str, int] = {}
        self._unwatched_reads: dict[str, int] = {}

    def reuse(self, folder: str) -> dict[str, Any] | None:
        """The folder's last snapshot if nothing changed since (an empty dict: it is still in
        no repository), else None (ask ``read``)."""
        with self._lock:
            cached = self._cache.get(folder)
            if cached is None or os.getpid() != self._owner_pid:
                return None
            if time.monotonic() - cached.read_at < MAX_REUSE_S and not cached.watch.changed():
                cached.reused += 1
                return cached.reading.state if cached.reading is not None else {}
            self._forget(folder)
            if cached.reused:
                self._useless.pop(folder, None)
            else:
                useless = self._useless[folder] = self._useless.get(folder, 0) + 1
                self._unwatched_reads[folder] = min(2 ** useless, MAX_SKIPPED_WATCHES)
            return None

    def read(self, folder: str, own_files: frozenset[str] = frozenset()) -> dict[str, Any] | None:
        """Git state of folder, read by git now (None: in no repository); own_files (our
        database's) are no change."""
        read_at, read_at_ns = time.monotonic(), time.time_ns()
        reading = read_git(folder)
        state = reading.state if reading is not None else None
        with self._lock:
            if self._unwatched_reads.get(folder, 0) > 0:
                self._unwatched_reads[folder] -= 1
                return state
        watch = _watch(folder, reading, own_files, read_at_ns)
        with self._lock:
            self._forget(folder)
            if watch is not None and os.getpid() != self._owner_pid:
                watch.close()
            elif watch is not None:
                while len(self._cache) >= MAX_WATCHED:
                    self._forget(next(iter(self._cache)))
                self._cache[folder] = _Cached(reading, watch, read_at)
        return state

    def watching(self, folder: str) -> bool:
        """Whether a watch will tell when the folder's state changes."""
        with self._lock:
            return folder in self._cache

    def close(self) -> None:
        with self._lock:
            for folder in list(self._cache):
                self._forget(folder)

    def _forget(self, folder: str) -> None:
        cached = self._cache.pop(folder, None)
        if cached is not None:
            cached.watch.close()


def _watch(folder: str, reading: GitReading | None, own_files: frozenset[str], read_at_ns: int) -> TreeWatch | None:
    """A watch on what git looked at: the repository, or where one could appear."""
    if reading is None:
        return AbsenceWatch.watch_for_repository(folder)
    root = reading.state["root"]
    ignored = {os.path.join(root, path.rstrip("/")) for path in reading.ignored if path.endswith("/")}
    git_folders = [f for f in (reading.git_dir, reading.common_dir, os.path.join(reading.common_dir, "info"))
                   if os.path.isdir(f)]
    return TreeWatch.start(root, list(dict.fromkeys(git_folders)), os.path.join(reading.common_dir, "refs", "heads"),
                           ignored, own_files, read_at_ns)

"""Git state is captured off the cell's critical path.

Calling git costs milliseconds, far more than recording a run (gitshell.py keeps even
starting git processes away from the kernel, gitcache.py skips them while the repository is
unchanged). A daemon thread takes the pending run ids, snapshots the repository once for all
of them and attaches the state to those runs. A run's git state is therefore taken at or
shortly after its start.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .gitcache import GitSnapshots

_NOT_A_REPO_RECHECK_S = 60.0


class GitStateWriter:
    def __init__(self, attach: Callable[[Any, list[int], dict[str, Any]], None]):
        self._attach = attach  # (the database the runs are in, their ids, the state)
        self._queue: queue.Queue[tuple[int, str, Any]] = queue.Queue()
        self._not_repos: dict[str, float] = {}
        self._snapshots = GitSnapshots()  # read by the thread; reused from the cell's thread
        self._thread: threading.Thread | None = None
        self._unfinished = 0
        self._done = threading.Condition()

    def request(self, run_id: int, folder: str | Path, database: Any) -> None:
        folder = str(folder)
        checked = self._not_repos.get(folder)
        if checked is not None and time.monotonic() - checked < _NOT_A_REPO_RECHECK_S:
            return
        with self._done:
            self._unfinished += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="xpmagic-git",
                                                daemon=True)
                self._thread.start()
        self._queue.put((run_id, folder, database))

    def known_state(self, folder: str | Path) -> dict[str, Any] | None:
        """The folder's git state when it is known not to have changed since git last read it
        (cheap: no git, no thread; an empty dict: still in no repository); otherwise None, and
        ``request`` reads it."""
        try:
            return self._snapshots.reuse(str(folder))
        except Exception:  # never the cell's failure: git reads the state instead
            return None

    def close(self) -> None:
        self._snapshots.close()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """For tests and orderly shutdown: wait until every request is written."""
        with self._done:
            return self._done.wait_for(lambda: self._unfinished == 0, timeout)

    def _work(self) -> None:
        while True:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            pending: dict[tuple[str, int], tuple[Any, list[int]]] = {}
            for run_id, folder, database in batch:
                pending.setdefault((folder, id(database)), (database, []))[1].append(run_id)
            for (folder, _), (database, run_ids) in pending.items():
                self._capture(folder, database, run_ids)
            with self._done:
                self._unfinished -= len(batch)
                self._done.notify_all()

    def _capture(self, folder: str, database: Any, run_ids: list[int]) -> None:
        try:
            state = self._snapshots.read(folder, _database_files(database))
            if state is None:
                if self._snapshots.watching(folder):  # the watch tells when a repository appears
                    self._not_repos.pop(folder, None)
                else:  # nothing does: ask git again in a while
                    self._not_repos[folder] = time.monotonic()
                return
            self._attach(database, run_ids, state)
        except Exception:  # a background thread must never take the kernel down
            return


def _database_files(database: Any) -> frozenset[str]:
    """The files of the database runs are written to: our own writes are no change to the work."""
    path = getattr(database, "path", None)
    if path is None:
        return frozenset()
    path = str(path)
    return frozenset({path, f"{path}-wal", f"{path}-shm", f"{path}-journal"})

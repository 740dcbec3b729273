"""A replay re-runs cells that write files: the files the original runs recorded as artifacts
(a model, a predictions file) would be overwritten by the replay's versions, and a replay that
differs would destroy the very evidence it is checked against.

So the files are copied aside before the replay and put back after it. A replay's version that
differs is kept in ``xpmagic-replays/<time>/`` beside the database, where its run's record points.
A replay killed midway leaves the copies in ``.xpmagic-replay-backup-*`` beside the database.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from .run import describe_artifact

NOTED_BYTES = 200_000_000


class ArtifactGuard:
    """Context manager: the files (or folders) at ``paths`` are the same after it as before it.
    ``kept`` maps each path whose content the replay changed to where the replay's version is."""

    def __init__(self, paths: Iterable[str], beside: Path, keep_out: Iterable[Path] = ()):
        # Recorded paths, each with the file it is (through symlinks): the copying and restoring
        # act on that file; ``kept`` is keyed by the recorded path, as the runs' records are.
        # Never one that is or holds ``keep_out`` (the databases the replay records into:
        # `xp.artifact('.')` would otherwise put back the database as it was before the replay).
        written = [os.path.realpath(p) for p in keep_out]
        existing = [p for p in sorted(set(paths)) if os.path.exists(p)]
        self.holding_records = {p for p in existing if any(_is_or_holds(os.path.realpath(p), w) for w in written)}
        self.paths = {p: os.path.realpath(p) for p in existing if p not in self.holding_records}
        self.beside = beside
        self.kept: dict[str, str] = {}
        self._backups: dict[str, tuple[str, str | None]] = {}  # path -> (copy, sha256 before)
        self._folder: str | None = None
        self._lock: TextIO | None = None

    def __enter__(self) -> ArtifactGuard:
        if not self.paths:
            return self
        self._take_turn()
        self._folder = tempfile.mkdtemp(prefix=".xpmagic-replay-backup-", dir=self.beside)
        reals = sorted(set(self.paths.values()))
        size = sum(_size(real) for real in reals)
        if size > NOTED_BYTES:  # copying takes a while: say why the replay has not started yet
            print(f"xpmagic: copying {len(reals)} recorded artifacts ({size / 1e9:.1f} GB) aside while the replay "
                  "runs, so it cannot overwrite them", file=sys.stderr)
        try:
            for index, real in enumerate(reals):
                copy = os.path.join(self._folder, f"{index}-{os.path.basename(real)}")
                _copy(real, copy)
                self._backups[real] = (copy, _sha256(copy))
        except BaseException:
            self._discard_backups()
            self._end_turn()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._folder is None:
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kept_at: dict[str, str] = {}
        try:
            for real, (copy, before) in self._backups.items():
                if os.path.lexists(real):
                    if before is not None and _sha256(real) == before:
                        continue
                    kept_at[real] = self._keep(real, stamp)
                _remove(real)  # a folder the replay wrote into, or a file it left half-written
                shutil.move(copy, real)
            self._discard_backups()  # only once everything is back: else the copies stay, and say where
        finally:
            self._end_turn()
        self.kept = {path: kept_at[real] for path, real in self.paths.items() if real in kept_at}

    def _take_turn(self) -> None:
        """Replays of one database guard their files one after another: two at once (two clicks
        in the sidebar) would each copy aside what the other wrote, and put that back."""
        try:
            import fcntl
        except ImportError:  # Windows: no flock; replays there are not kept apart
            return
        self._lock = open(self.beside / ".xpmagic-replay.lock", "a+")  # noqa: SIM115 (held until __exit__)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("xpmagic: waiting for another replay of this database to finish", file=sys.stderr)
            fcntl.flock(self._lock, fcntl.LOCK_EX)

    def _end_turn(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing releases the flock
            self._lock = None

    def _keep(self, path: str, stamp: str) -> str:
        folder = self.beside / "xpmagic-replays" / stamp
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / os.path.basename(path)
        counter = 2
        while target.exists():  # two artifacts of one name in different folders
            target = folder / f"{counter}-{os.path.basename(path)}"
            counter += 1
        shutil.move(path, target)
        return str(target)

    def _discard_backups(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(folder, name))
               for folder, _, names in os.walk(path) for name in names
               if os.path.isfile(os.path.join(folder, name)))


def _is_or_holds(path: str, other: str) -> bool:
    return other == path or other.startswith(os.path.join(path, ""))


def _copy(source: str, target: str) -> None:
    if os.path.isdir(source) and not os.path.islink(source):
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copy2(source, target, follow_symlinks=True)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def _sha256(path: str) -> str | None:
    try:
        return describe_artifact(path, None).sha256
    except Exception:  # unreadable, or a folder grown past what xp.artifact reads: put the original back
        return None

"""A replay re-runs cells that write files: the files the original runs recorded as artifacts
(a model, a predictions file) would be overwritten by the replay's versions, and a replay that
differs would destroy the very evidence it is checked against.

So the files are copied aside before the replay and put back after it. A replay's version that
differs is kept in ``xpmagic-replays/<time>/`` beside the database, where its run's record points.
A replay killed midway (SIGKILL, a machine that went down) leaves the copies and a manifest in
``.xpmagic-replay-backup-*`` beside the database; the next replay of that database puts them back.
"""

from __future__ import annotations

import json
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
BACKUP_PREFIX = ".xpmagic-replay-backup-"
MANIFEST = "manifest.json"  # written once every copy is complete: without it, nothing was replayed yet


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
        if not self.paths and not any(self.beside.glob(BACKUP_PREFIX + "*")):
            return self
        self._take_turn()  # before looking at leftovers: a replay running now still needs its copies
        try:
            if self._lock is not None:  # without a lock (Windows) a leftover may be a running replay's
                _recover(self.beside)
            if self.paths:
                self._copy_aside()
        except BaseException:
            self._discard_backups()
            self._end_turn()
            raise
        if not self.paths:
            self._end_turn()
        return self

    def _copy_aside(self) -> None:
        self._folder = tempfile.mkdtemp(prefix=BACKUP_PREFIX, dir=self.beside)
        reals = sorted(set(self.paths.values()))
        size = sum(_size(real) for real in reals)
        if size > NOTED_BYTES:  # copying takes a while: say why the replay has not started yet
            print(f"xpmagic: copying {len(reals)} recorded artifacts ({size / 1e9:.1f} GB) aside while the replay "
                  "runs, so it cannot overwrite them", file=sys.stderr)
        for index, real in enumerate(reals):
            copy = os.path.join(self._folder, f"{index}-{os.path.basename(real)}")
            _copy(real, copy)
            self._backups[real] = (copy, _sha256(copy))
        _write_manifest(self._folder, self._backups)

    def __exit__(self, *exc_info: object) -> None:
        if self._folder is None:
            return
        try:
            kept_at = _put_back(self._backups, self.beside)
            self._discard_backups()  # only once everything is back: else the copies stay for the next replay
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

    def _discard_backups(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _put_back(backups: dict[str, tuple[str, str | None]], beside: Path) -> dict[str, str]:
    """Each copy back where it was taken from; a replay's version that differs is kept aside.
    Returns where each kept version went. A copy already gone was put back before."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept_at: dict[str, str] = {}
    for real, (copy, before) in backups.items():
        if not os.path.lexists(copy):
            continue
        if os.path.lexists(real):
            if before is not None and _sha256(real) == before:
                continue
            kept_at[real] = _keep(real, beside / "xpmagic-replays" / stamp)
        _remove(real)  # a folder the replay wrote into, or a file it left half-written
        shutil.move(copy, real)
    return kept_at


def _keep(path: str, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / os.path.basename(path)
    counter = 2
    while target.exists():  # two artifacts of one name in different folders
        target = folder / f"{counter}-{os.path.basename(path)}"
        counter += 1
    shutil.move(path, target)
    return str(target)


def _write_manifest(folder: str, backups: dict[str, tuple[str, str | None]]) -> None:
    entries = [{"path": real, "copy": os.path.basename(copy), "sha256": before}
               for real, (copy, before) in backups.items()]
    partial = os.path.join(folder, MANIFEST + ".partial")
    with open(partial, "w") as handle:
        json.dump(entries, handle)
    os.replace(partial, os.path.join(folder, MANIFEST))  # whole or absent


def _recover(beside: Path) -> None:
    """Put back what a replay killed midway had changed (its backup folder is still there)."""
    for folder in sorted(beside.glob(BACKUP_PREFIX + "*")):
        manifest = folder / MANIFEST
        if manifest.is_file():
            try:
                entries = json.loads(manifest.read_text())
                backups = {e["path"]: (str(folder / e["copy"]), e["sha256"]) for e in entries}
            except (ValueError, TypeError, KeyError):
                print(f"xpmagic: {folder} holds copies of recorded artifacts that an earlier replay made, and its "
                      f"{MANIFEST} is unreadable: put back what you need from it, then delete it", file=sys.stderr)
                continue
            kept_at = _put_back(backups, beside)
            if kept_at:
                where = os.path.dirname(next(iter(kept_at.values())))
                print(f"xpmagic: an earlier replay stopped midway had changed {len(kept_at)} recorded "
                      f"artifact(s); yours are back in place, its versions are in {where}", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)  # without a manifest it stopped before the replay ran


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

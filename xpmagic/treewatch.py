"""Has anything git looks at changed since a snapshot? Asked before every run, so it must
cost microseconds: the kernel's inotify reports changes as they happen (Linux; elsewhere
there is no watch and git runs for every run, as before).

Watched: every folder of the work tree git does not ignore (a change to a file, a file
added, removed or renamed), and in the git directory HEAD, the index, the refs and the
exclude rules. The files of our own database do not count. A snapshot is trusted only if
nothing in the tree changed shortly before git read it: file timestamps are coarse, and a
change git did not see could otherwise hide behind the watch that started after it.
For a folder in no repository, what is watched is where a repository could appear.
"""

from __future__ import annotations

import os
from typing import Any

try:  # Linux only
    from inotify_simple import INotify
    from inotify_simple import flags as _flags
except (ImportError, OSError):  # pragma: no cover - other systems
    INotify = None

MAX_FOLDERS = 500  # per kernel: inotify watches are a per-user budget (often 8,192) shared with editors
MAX_ENTRIES = 20_000  # files stat-ed when a watch starts: about 40 ms of the background thread
RACY_NS = 2 * 10**9  # a change this close to git's read may share its timestamp tick

_GIT_NAMES = {"HEAD", "index", "packed-refs", "exclude"}  # what matters in git's own folders


def _mask() -> int:
    f = _flags
    return int(f.MODIFY | f.ATTRIB | f.CLOSE_WRITE | f.CREATE | f.DELETE | f.MOVED_FROM
               | f.MOVED_TO | f.DELETE_SELF | f.MOVE_SELF)


class TreeWatch:
    """Changes in a repository since the watch started; ``changed()`` never blocks."""

    def __init__(self, inotify: Any, folders: dict[int, tuple[str, bool]], own_files: frozenset[str]):
        self._inotify = inotify
        self._folders = folders  # watch descriptor -> (folder, is git's own folder)
        self._own_files = own_files
        self._changed = False

    @classmethod
    def start(cls, root: str, git_folders: list[str], refs: str, ignored: set[str],
              own_files: frozenset[str], read_at_ns: int) -> TreeWatch | None:
        """Watch the repository git read at read_at_ns, or None when that read cannot be
        vouched for (a recent change, another repository inside, too large, no inotify)."""
        inotify = _open_inotify()
        if inotify is None:
            return None
        watch = cls(inotify, {}, own_files)
        try:
            recent_ns = read_at_ns - RACY_NS
            if (watch._watch_git_folders(git_folders, recent_ns)
                    and watch._watch_tree(refs, set(), recent_ns, nested_ok=True)
                    and watch._watch_tree(root, ignored | own_files, recent_ns, nested_ok=False)):
                return watch
        except OSError:  # out of watches, or a folder vanished while we looked
            pass
        watch.close()
        return None

    def _watch_git_folders(self, folders: list[str], recent_ns: int) -> bool:
        for folder in folders:
            self._folders[self._inotify.add_watch(folder, _mask())] = (folder, True)
            if _changed_since(folder, recent_ns, _GIT_NAMES):
                return False
        return True

    def _watch_tree(self, top: str, skipped: set[str], recent_ns: int, nested_ok: bool) -> bool:
        """Watch every folder under top; each folder is watched before its entries are checked,
        so a change is either seen by the watch or recent enough to refuse the snapshot."""
        mask, folders, entries = _mask(), [top], 0
        while folders:
            folder = folders.pop()
            if len(self._folders) >= MAX_FOLDERS:
                return False
            self._folders[self._inotify.add_watch(folder, mask)] = (folder, False)
            if folder == top and _changed_since(os.path.dirname(top), recent_ns, {os.path.basename(top)}):
                return False  # an entry of top added or removed just before (its subfolders are checked as entries)
            with os.scandir(folder) as listing:
                for child in listing:
                    if child.name == ".git":
                        if folder == top or nested_ok:
                            continue  # the repository's own git folder is watched by name
                        return False  # a nested repository: its changes are its own git's
                    if child.path in skipped:
                        continue
                    info = child.stat(follow_symlinks=False)
                    if max(info.st_mtime_ns, info.st_ctime_ns) > recent_ns:
                        return False
                    entries += 1
                    if entries > MAX_ENTRIES:
                        return False
                    if child.is_dir(follow_symlinks=False):
                        folders.append(child.path)
        return True

    def changed(self) -> bool:
        """True once anything watched changed (or the kernel dropped events)."""
        if self._changed:
            return True
        try:
            events = self._inotify.read(timeout=0)
        except (OSError, ValueError):  # the watch broke: nothing can be vouched for
            events, self._changed = [], True
        for event in events:
            if self._matters(event):
                self._changed = True
                break
        return self._changed

    def _matters(self, event: Any) -> bool:
        place = self._folders.get(event.wd)
        if place is None:
            return True  # queue overflow (wd -1): anything may have changed
        folder, is_git = place
        if is_git:
            return event.name in _GIT_NAMES or not event.name
        return os.path.join(folder, event.name) not in self._own_files if event.name else True

    def close(self) -> None:
        try:
            self._inotify.close()
        except OSError:
            pass


class AbsenceWatch(TreeWatch):
    """Has a repository appeared around a folder git found in none? Git looks for ``.git`` in
    the folder and in every folder above it: those are watched, for an entry of that name
    created or moved in, and for themselves being removed or moved."""

    @classmethod
    def watch_for_repository(cls, folder: str) -> AbsenceWatch | None:
        """None when there is no inotify, or a ``.git`` is already there: git may have refused
        it (its owner, say) for reasons this watch cannot see change."""
        inotify = _open_inotify()
        if inotify is None:
            return None
        watch = cls(inotify, {}, frozenset())
        mask = int(_flags.CREATE | _flags.MOVED_TO | _flags.DELETE_SELF | _flags.MOVE_SELF)
        try:
            for place in _folder_and_above(folder):
                watch._folders[inotify.add_watch(place, mask)] = (place, False)
                if os.path.lexists(os.path.join(place, ".git")):  # checked after the watch: none slips between
                    break
            else:
                return watch
        except OSError:
            pass
        watch.close()
        return None

    def _matters(self, event: Any) -> bool:
        if event.wd not in self._folders:
            return True  # queue overflow
        return event.name == ".git" or not event.name


def _open_inotify() -> Any:
    """A new inotify instance, or None: not Linux, or out of instances."""
    if INotify is None:
        return None
    try:
        return INotify()
    except OSError:
        return None


def _folder_and_above(folder: str) -> list[str]:
    places = [os.path.realpath(folder)]  # git looks above where the folder really is, not above a link to it
    while os.path.dirname(places[-1]) != places[-1]:
        places.append(os.path.dirname(places[-1]))
    return places


def _changed_since(folder: str, recent_ns: int, names: set[str]) -> bool:
    for name in names:
        try:
            info = os.lstat(os.path.join(folder, name))
        except OSError:
            continue
        if max(info.st_mtime_ns, info.st_ctime_ns) > recent_ns:
            return True
    return False

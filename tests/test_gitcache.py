"""Git snapshots are reused only while the repository is unchanged: every change git would
see is seen, through real repositories, real git and the kernel's real inotify."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import rows, run_ok
from xpmagic import gitcache, treewatch
from xpmagic.environment import git_snapshot
from xpmagic.gitcache import GitSnapshots

pytestmark = pytest.mark.skipif(treewatch.INotify is None, reason="inotify is Linux only")


def _git(folder, *args):
    subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=a", *args], cwd=folder,
                   check=True, capture_output=True)


def _snapshot(snapshots, folder, own=frozenset()):
    """As a run asks: the reused state when nothing changed, else git's answer."""
    return snapshots.reuse(folder) or snapshots.read(folder, own)


@pytest.fixture
def repo(tmp_path):
    folder = tmp_path / "repo"
    (folder / "src").mkdir(parents=True)
    (folder / "out").mkdir()
    (folder / "src" / "model.py").write_text("C = 1\n")
    (folder / "out" / "weights.pkl").write_text("w")
    (folder / ".gitignore").write_text(".venv/\n*.pkl\n")
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "first")
    return folder


@pytest.fixture
def snapshots():
    cache = GitSnapshots()
    yield cache
    cache.close()


@pytest.fixture
def git_reads(monkeypatch):
    """Counts the times git itself is asked (the real read_git runs every time)."""
    calls = []
    real = gitcache.read_git

    def counted(folder):
        calls.append(folder)
        return real(folder)

    monkeypatch.setattr(gitcache, "read_git", counted)
    return calls


@pytest.fixture
def trust_recent_changes(monkeypatch):
    """Files here change milliseconds apart; the racy-time guard would refuse every reuse."""
    monkeypatch.setattr(treewatch, "RACY_NS", 0)


def test_an_unchanged_repository_is_read_by_git_once(repo, git_reads, trust_recent_changes, snapshots):
    first = _snapshot(snapshots, str(repo))
    assert first == git_snapshot(repo) and first["dirty"] is False
    for _ in range(3):
        assert _snapshot(snapshots, str(repo)) == first
    assert len(git_reads) == 1


@pytest.mark.parametrize("change", [
    "edit a tracked file", "new file in the root", "new file in a folder of ignored files",
    "new untracked folder", "delete a tracked file", "stage a change", "commit", "switch branch",
    "ignore rules change",
])
def test_every_change_git_sees_is_seen(repo, git_reads, trust_recent_changes, change, snapshots):
    before = _snapshot(snapshots, str(repo))
    if change == "edit a tracked file":
        (repo / "src" / "model.py").write_text("C = 22\n")
    elif change == "new file in the root":
        (repo / "notes.txt").write_text("n")
    elif change == "new file in a folder of ignored files":
        (repo / "out" / "log.txt").write_text("l")  # git shows out/ as untracked now
    elif change == "new untracked folder":
        (repo / "data").mkdir()
        (repo / "data" / "x.csv").write_text("1")
    elif change == "delete a tracked file":
        (repo / "src" / "model.py").unlink()
    elif change == "stage a change":
        (repo / "src" / "model.py").write_text("C = 22\n")
        _snapshot(snapshots, str(repo))
        _git(repo, "add", "src/model.py")  # same work tree, other index
    elif change == "commit":
        _git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    elif change == "switch branch":
        _git(repo, "checkout", "-q", "-b", "other")
    elif change == "ignore rules change":
        (repo / ".git" / "info" / "exclude").write_text("src/\n")
        (repo / "extra.txt").write_text("x")
        _snapshot(snapshots, str(repo))
        (repo / ".git" / "info" / "exclude").write_text("")
    after = _snapshot(snapshots, str(repo))
    assert after == git_snapshot(repo) and after != before
    assert _snapshot(snapshots, str(repo)) == after


def test_ignored_folders_and_our_own_database_are_no_change(repo, git_reads, trust_recent_changes,
                                                           monkeypatch, snapshots):
    monkeypatch.setattr(treewatch, "MAX_FOLDERS", 20)
    venv = repo / ".venv"
    for i in range(30):  # more folders than may be watched: ignored ones are not
        (venv / f"lib{i}").mkdir(parents=True)
    (venv / "lib0" / "f0").write_text("")
    database = str(repo / "xp.db")
    own = frozenset({database, database + "-wal"})
    (repo / "xp.db").write_text("run 1")  # untracked: git lists it, so creating it is a change
    (repo / "xp.db-wal").write_text("")
    first = _snapshot(snapshots, str(repo), own)
    (venv / "lib0" / "f0").write_text("changed")
    (repo / "xp.db").write_text("run 2")
    (repo / "xp.db-wal").write_text("frames")
    assert _snapshot(snapshots, str(repo), own) == first
    assert len(git_reads) == 1
    (repo / "out" / "weights.pkl").write_text("w2")  # ignored, yet checked: a cheap, safe re-read
    assert _snapshot(snapshots, str(repo), own) == first
    assert len(git_reads) == 2


def test_what_cannot_be_vouched_for_is_read_by_git_every_time(repo, git_reads, monkeypatch, snapshots):
    _snapshot(snapshots, str(repo))
    _snapshot(snapshots, str(repo))
    assert len(git_reads) == 2  # just committed: a change within the timestamp's tick could hide
    monkeypatch.setattr(treewatch, "RACY_NS", 0)
    nested = repo / "vendor"
    nested.mkdir()
    _git(nested, "init", "-q")
    _snapshot(snapshots, str(repo))
    _snapshot(snapshots, str(repo))
    assert len(git_reads) == 4  # another repository inside: its changes are its own git's
    subprocess.run(["rm", "-rf", str(nested)], check=True)
    monkeypatch.setattr(treewatch, "MAX_FOLDERS", 20)
    for i in range(30):
        (repo / "big" / f"part{i}").mkdir(parents=True)
    state = _snapshot(snapshots, str(repo))
    assert _snapshot(snapshots, str(repo)) == state == git_snapshot(repo)
    assert len(git_reads) == 6  # more folders than we may watch: git reads every time


def test_runs_recorded_in_a_repository_get_the_state_of_their_own_moment(shell, db_path, tmp_path,
                                                                          trust_recent_changes):
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "model.py").write_text("C = 1\n")
    (tmp_path / ".gitignore").write_text("xp.db*\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "x")
    writer = shell.magics_manager.registry["XPMagics"].recorder.git
    run_ok(shell, "%%experiment g\nx = 1\n")
    assert writer.wait_idle(30)
    run_ok(shell, "%%experiment g\nx = 2\n")
    assert writer.wait_idle(30)
    os.remove(tmp_path / "model.py")
    run_ok(shell, "%%experiment g\nx = 3\n")
    assert writer.wait_idle(30)
    states = rows(db_path, "SELECT g.dirty, g.diff_hash FROM runs r JOIN git_states g"
                           " ON g.id = r.git_state_id ORDER BY r.id")
    assert [dirty for dirty, _ in states] == [0, 0, 1] and states[2][1] is not None


def test_a_change_just_before_git_read_is_not_trusted(repo, git_reads, monkeypatch, snapshots):
    """Timestamps are coarse: a file written in the same tick as git's read could change again
    unnoticed, so such a snapshot is not reused."""
    import time

    monkeypatch.setattr(treewatch, "RACY_NS", 500_000_000)
    time.sleep(0.6)  # the commit is older than the guard: only the work tree's change is recent
    (repo / "src" / "model.py").write_text("C = 2\n")
    _snapshot(snapshots, str(repo))
    _snapshot(snapshots, str(repo))
    assert len(git_reads) == 2
    time.sleep(0.6)
    _snapshot(snapshots, str(repo))
    _snapshot(snapshots, str(repo))
    assert len(git_reads) == 3
    (repo / ".gitignore").unlink()  # only the root folder's own time shows a removal
    _snapshot(snapshots, str(repo))
    _snapshot(snapshots, str(repo))
    assert len(git_reads) == 5


def test_a_repository_changed_between_every_run_is_watched_less_often(repo, git_reads, snapshots,
                                                                       trust_recent_changes, monkeypatch):
    """A cell that writes into the repository makes every watch useless; setting them up costs
    the kernel's thread time, so after n useless ones the next 2**n reads set up none."""
    watches = []
    real_start = treewatch.TreeWatch.start
    monkeypatch.setattr(gitcache.TreeWatch, "start", lambda *a, **k: watches.append(1) or real_start(*a, **k))
    for i in range(12):
        (repo / "src" / "model.py").write_text(f"C = {i}\n")
        assert _snapshot(snapshots, str(repo)) == git_snapshot(repo)
    assert len(git_reads) == 12 and len(watches) == 3  # reads 1, 4 and 9: 2, then 4, then 8 skipped
    for _ in range(8):  # unchanged now: the 5 skips left run out, then a watch serves the rest
        assert _snapshot(snapshots, str(repo)) == git_snapshot(repo)
    assert len(git_reads) == 18 and len(watches) == 4
    (repo / "src" / "model.py").write_text("C = 100\n")  # a useful watch resets the count
    _snapshot(snapshots, str(repo))
    assert len(git_reads) == 19 and len(watches) == 5


def test_a_broken_watch_means_asking_git_again(repo, git_reads, snapshots, trust_recent_changes):
    first = _snapshot(snapshots, str(repo))
    snapshots._cache[str(repo)].watch._inotify.close()  # as if the kernel took the descriptor away
    assert _snapshot(snapshots, str(repo)) == first
    assert len(git_reads) == 2


@pytest.mark.parametrize("appears", ["git init here", "git init in a folder above", "a repository moved in",
                                     "git init above the folder a link points to"])
def test_a_folder_in_no_repository_is_asked_once_until_a_repository_appears(tmp_path, git_reads, snapshots,
                                                                          trust_recent_changes, appears):
    above = tmp_path / "above"
    folder = above / "work"
    folder.mkdir(parents=True)
    if appears == "git init above the folder a link points to":
        (tmp_path / "link").symlink_to(folder, target_is_directory=True)
        folder, appears = tmp_path / "link", "git init in a folder above"  # the person works in the link
    assert snapshots.reuse(str(folder)) is None and snapshots.read(str(folder)) is None
    for _ in range(3):
        assert snapshots.reuse(str(folder)) == {}  # known: still in no repository
    assert len(git_reads) == 1
    if appears == "git init here":
        _git(folder, "init", "-q")
    elif appears == "git init in a folder above":
        _git(above, "init", "-q")
    else:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        _git(elsewhere, "init", "-q")
        os.rename(elsewhere / ".git", folder / ".git")
    assert snapshots.reuse(str(folder)) is None
    state = snapshots.read(str(folder))
    assert state is not None and state == git_snapshot(folder)


def test_a_repository_appearing_while_git_reads_is_not_missed(tmp_path, snapshots, monkeypatch):
    """Git found no repository, but one appeared before the watch began: no reuse."""
    real = gitcache.read_git

    def read_then_init(folder):
        reading = real(folder)
        _git(folder, "init", "-q")
        return reading

    monkeypatch.setattr(gitcache, "read_git", read_then_init)
    assert snapshots.read(str(tmp_path)) is None
    assert snapshots.reuse(str(tmp_path)) is None and not snapshots.watching(str(tmp_path))


def test_runs_see_a_repository_made_between_them(shell, db_path, tmp_path, git_reads, trust_recent_changes):
    writer = shell.magics_manager.registry["XPMagics"].recorder.git
    for i in range(3):
        run_ok(shell, f"%%experiment g\nx = {i}\n")
        assert writer.wait_idle(30)
    assert len(git_reads) == 1  # in no repository: git asked once
    (tmp_path / ".gitignore").write_text("xp.db*\n")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "x")
    run_ok(shell, "%%experiment g\nx = 3\n")
    assert writer.wait_idle(30)
    assert rows(db_path, "SELECT r.id, g.branch FROM runs r LEFT JOIN git_states g ON g.id = r.git_state_id"
                         " ORDER BY r.id") == [(1, None), (2, None), (3, None), (4, "main")]

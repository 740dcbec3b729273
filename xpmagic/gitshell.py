"""Git, run from a small long-lived shell instead of from the kernel.

Starting processes from a big, multi-threaded kernel slows its other threads, the
user's cell among them: the 2-3 git processes of a snapshot cost a 45 ms scikit-learn
fit beside them about 1 ms; started from a small shell, 0.3-0.6 ms. One ``/bin/sh``
per kernel, started on first use, runs the snapshot script below; a marker unique to
the session ends each answer.
Where there is no shell, or it fails, ``None`` tells the caller to run git itself.
"""

from __future__ import annotations

import atexit
import os
import secrets
import select
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

# Background git must never take the index lock a person's own `git commit` needs, nor prompt.
GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}

# Prints: rev-parse's lines (root, git dir, common git dir; then commit and branch when there
# is a commit), NUL, the porcelain status with ignored paths ("!! " lines, for gitcache.py;
# without them where git is older than 2.16), NUL, the diff against HEAD when something other
# than ignored paths is listed, NUL, the marker.
_SCRIPT = r"""
nl="
"
xpmagic_git_snapshot() {
  dirs="--show-toplevel --absolute-git-dir --git-common-dir"
  info=$(git -C "$1" rev-parse $dirs HEAD --abbrev-ref HEAD 2>/dev/null) ||
    info=$(git -C "$1" rev-parse $dirs 2>/dev/null) || info=
  status=
  if [ -n "$info" ]; then
    status=$({ git -C "$1" status --porcelain --untracked-files=normal --ignored=matching 2>/dev/null ||
               git -C "$1" status --porcelain --untracked-files=normal 2>/dev/null; }; echo ".$?")
    code=${status##*.}
    status=${status%.*}
    if [ "$code" != 0 ]; then info= status=; fi  # a status git cannot read is not a clean one
  fi
  printf '%s\0%s\0' "$info" "$status"
  changed=
  while IFS= read -r line; do
    case "$line" in '!! '*|'') ;; *) changed=1; break ;; esac
  done <<XPMAGIC_STATUS_END
$status
XPMAGIC_STATUS_END
  if [ -n "$changed" ]; then
    case "$info" in *"$nl"*"$nl"*"$nl"*"$nl"*) git -C "$1" diff HEAD 2>/dev/null ;; esac  # 5 lines: a commit
  fi
  printf '\0%s\n' "$2"
}
"""


class GitShell:
    """A shell that runs git snapshots; thread-safe, restarted after a failure."""

    def __init__(self, timeout_s: float = 20.0):
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._owner_pid = 0
        self._marker = f"__xpmagic_end_{secrets.token_hex(8)}__".encode()

    def snapshot(self, folder: str | Path) -> tuple[list[str], bytes, bytes] | None:
        """(rev-parse lines, status, diff) of the repository holding folder (no lines: not
        in a repository), or None when the shell could not answer: the caller runs git itself."""
        command = f"xpmagic_git_snapshot {shlex.quote(str(folder))} {self._marker.decode()}\n".encode()
        with self._lock:
            for _ in range(2):  # a shell that died since the last snapshot is started again once
                try:
                    process = self._running()
                    if process is None:
                        return None
                    process.stdin.write(command)
                    process.stdin.flush()
                    return self._parse(self._read_answer(process))
                except TimeoutError:
                    self._stop()
                    return None
                except (OSError, ValueError):
                    self._stop()
            return None

    def _running(self) -> subprocess.Popen | None:
        if self._owner_pid != os.getpid():
            self._process = None  # a forked child: the parent's shell is the parent's
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._stop()  # one that exited: its pipes
        shell = shutil.which("sh")
        if shell is None or os.name != "posix":  # select() on pipes is POSIX only
            return None
        self._process = subprocess.Popen(
            [shell], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, **GIT_ENV})
        self._owner_pid = os.getpid()
        self._process.stdin.write(_SCRIPT.encode())
        return self._process

    def _read_answer(self, process: subprocess.Popen) -> bytes:
        end = b"\0" + self._marker + b"\n"
        fd = process.stdout.fileno()
        deadline = time.monotonic() + self.timeout_s
        chunks: list[bytes] = []
        tail = b""
        while not tail.endswith(end):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError("git took too long")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise OSError("the git shell exited")
            chunks.append(chunk)
            tail = (tail + chunk)[-len(end):]
        return b"".join(chunks)[:-len(end)]

    @staticmethod
    def _parse(answer: bytes) -> tuple[list[str], bytes, bytes]:
        info, status, diff = answer.split(b"\0", 2)
        return info.decode(errors="replace").splitlines(), status, diff

    def close(self) -> None:
        """End the shell: it exits when its input closes."""
        with self._lock:
            if self._process is not None and self._owner_pid == os.getpid():
                try:
                    self._process.stdin.close()
                    self._process.wait(1)
                except (OSError, subprocess.SubprocessError):
                    pass
            self._stop()

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.poll() is None:
                process.kill()
                process.wait(1)
        except (OSError, subprocess.SubprocessError):
            pass
        for pipe in (process.stdin, process.stdout):
            try:
                pipe.close()
            except OSError:
                pass


GIT_SHELL = GitShell()
atexit.register(GIT_SHELL.close)

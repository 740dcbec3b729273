"""Who is running: host, user, process identity that survives pid reuse."""

from __future__ import annotations

import getpass
import os
import socket
from functools import lru_cache


@lru_cache(maxsize=1)
def host() -> str:
    return socket.gethostname()


@lru_cache(maxsize=1)
def user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return None


def process_start_marker(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux), so a reused pid is not taken for alive."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()  # field 22 of stat(5), counted after "pid (comm)"
    except (OSError, IndexError):
        return None


def is_alive(pid: int, start_marker: str | None) -> bool:
    """Whether the process that wrote ``start_marker`` still runs as ``pid``."""
    if start_marker is not None and os.path.exists("/proc"):
        return process_start_marker(pid) == start_marker
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_markers: dict[int, str | None] = {}


def current_process() -> tuple[int, str | None]:
    """This process's pid and start marker (cached per pid, so forks get their own)."""
    pid = os.getpid()
    if pid not in _markers:
        _markers[pid] = process_start_marker(pid)
    return pid, _markers[pid]

"""Replays started from the sidebar.

A replay starts a fresh kernel and can take a minute, so the request returns at once
with a job id; the replay runs as ``python -m xpmagic replay RUN --json`` in a child
process (the server's event loop never waits on a kernel) and the sidebar polls the job.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

_KEEP_JOBS = 100  # finished jobs kept for polling; older ones are forgotten
_TIMEOUT_S = 900.0


@dataclass
class ReplayJob:
    id: int
    run: int
    state: str = "running"  # running, done, failed
    ok: bool | None = None
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ReplayJobs:
    def __init__(self, db_path: str, trust: bool):
        self._db_path = db_path
        self._trust = trust
        self._jobs: OrderedDict[int, ReplayJob] = OrderedDict()
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()

    def start(self, run_id: int) -> ReplayJob:
        job = ReplayJob(next(self._ids), run_id)
        self._jobs[job.id] = job
        while len(self._jobs) > _KEEP_JOBS:
            self._jobs.popitem(last=False)
        task = asyncio.get_running_loop().create_task(self._run(job))
        self._tasks.add(task)  # keep a reference until it ends
        task.add_done_callback(self._tasks.discard)
        return job

    def get(self, job_id: int) -> ReplayJob | None:
        return self._jobs.get(job_id)

    async def _run(self, job: ReplayJob) -> None:
        argv = [sys.executable, "-m", "xpmagic", "replay", str(job.run), "--db", self._db_path, "--json"]
        if self._trust:
            argv.append("--trust")
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(process.communicate(), _TIMEOUT_S)
        except asyncio.TimeoutError:
            process.kill()
            job.state, job.error = "failed", f"replay took longer than {_TIMEOUT_S:.0f} s"
            return
        except OSError as exc:
            job.state, job.error = "failed", f"could not start the replay: {exc}"
            return
        try:
            job.verdicts = json.loads(out) if out.strip() else []
        except json.JSONDecodeError:
            job.verdicts = []
        if not job.verdicts:
            # The CLI's one-line error (e.g. a database from another user without trust).
            lines = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
            job.state, job.error = "failed", lines[-1] if lines else f"replay exited with {process.returncode}"
            return
        job.state, job.ok = "done", process.returncode == 0

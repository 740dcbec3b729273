"""jupyter_server handlers: JSON in and out, authenticated, read-mostly.

The database path is a server setting (``--XPMagicServer.db_path``), never taken from a
request; every query parameter is validated. SQL identifiers come only from fixed lists;
names (experiments, studies, metrics, params) are bound as values, never used as paths, so
any name a notebook can record is accepted ("wine svc", "f1-score").
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler

from .. import clock
from ..errors import DatabaseNotFound, RunNotFound, UsageError, XPError
from ..jsontext import strict_json
from ..store import Store, utc_now

NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")  # what %%experiment and xp.log accept, without control characters
SORT_BY_NAME = re.compile(r"^(metrics|params)\.[^\x00-\x1f\x7f]{1,200}$")
SORTS = {"id", "started_at", "duration_s", "status"}
STEERING = {"pause", "resume", "stop", "budget"}
RASTER_IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp")  # in the order a notebook prefers


class XPHandler(APIHandler):
    """Shared plumbing: the store, parameter validation, JSON errors."""

    @property
    def store(self) -> Store:
        return self.settings["xpmagic_store"]()

    def int_argument(self, name: str, default: int | None, low: int, high: int) -> int:
        """A whole number in [low, high]; without a default the argument is required."""
        text = self.get_query_argument(name, None if default is None else str(default))
        if text is None:
            raise UsageError(f"{name} is required: a whole number from {low} to {high}")
        try:
            value = int(text)
        except ValueError:
            raise UsageError(f"{name} must be a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise UsageError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def name_argument(self, name: str, value: str | None = None) -> str | None:
        text = self.get_query_argument(name, None) if value is None else value
        if text is None or text == "":
            return None
        if not NAME.match(text):
            raise UsageError(f"{name} must be 1 to 200 characters without control characters")
        return text

    def moment_argument(self, name: str) -> datetime | None:
        """A date or time (UTC unless it says otherwise), or None when not given."""
        text = self.get_query_argument(name, None)
        if not text:
            return None
        try:
            return clock.parse(text)
        except ValueError:
            raise UsageError(f"{name} must be a date or time like 2026-11-23 or 2026-11-23T14:00, "
                             f"got {text[:40]!r}") from None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None))[1]
        message = str(exc) if isinstance(exc, XPError) else self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message, "status": status_code}))

    def _handle_request_exception(self, e: BaseException) -> None:
        status = (404 if isinstance(e, (RunNotFound, DatabaseNotFound)) else
                  400 if isinstance(e, UsageError) else 500 if not isinstance(e, XPError) else 503)
        if isinstance(e, tornado.web.HTTPError):
            return super()._handle_request_exception(e)
        if isinstance(e, XPError):
            self.send_error(status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)

    def reply(self, data: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(strict_json(data, default=str))


class ExperimentsHandler(XPHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        self.reply({"experiments": self.store.experiment_overview()})


class RunsHandler(XPHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        sort = self.get_query_argument("sort", "id")
        if sort not in SORTS and not SORT_BY_NAME.match(sort):
            raise UsageError(f"sort must be one of {sorted(SORTS)} or metrics.NAME / params.NAME")
        order = self.get_query_argument("order", "desc")
        if order not in ("asc", "desc"):
            raise UsageError("order must be asc or desc")
        status = self.get_query_argument("status", None)
        if status not in (None, "running", "ok", "failed", "interrupted"):
            raise UsageError("status must be running, ok, failed or interrupted")
        page = self.store.page_runs(
            experiment=self.name_argument("experiment"), limit=self.int_argument("limit", 50, 1, 500),
            offset=self.int_argument("offset", 0, 0, 10**9), sort=sort, order=order, status=status)
        self.reply(page)


class RunHandler(XPHandler):
    @tornado.web.authenticated
    def get(self, run_id: str) -> None:
        from ..queries import run_detail_dict

        run = self.store.get_run(int(run_id))
        data = run_detail_dict(run)
        data["series"] = {name: self.store.metric_series(run.id, name) for name in run.metrics}
        data["lab_path"] = self.lab_path(run.notebook)
        self.reply(data)

    def lab_path(self, notebook: str | None) -> str | None:
        """The notebook's path as JupyterLab opens it (relative to the server's root), or None
        when the run came from elsewhere."""
        root = self.settings.get("server_root_dir")
        if not notebook or not root:
            return None
        path = Path(notebook) if os.path.isabs(notebook) else Path(root, notebook)
        try:
            relative = path.resolve().relative_to(Path(root).expanduser().resolve())
        except ValueError:
            return None
        return relative.as_posix() if path.exists() else None


class DiffHandler(XPHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        from ..queries import diff_runs

        a = self.int_argument("a", None, 1, 2**62)
        b = self.int_argument("b", None, 1, 2**62)
        self.reply(diff_runs(self.store, a, b).to_dict())


class StudiesHandler(XPHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        from ..cli import StudiesInfo

        self.reply({"studies": StudiesInfo(self.store).to_dict()})


class StudyActionHandler(XPHandler):
    """Steering from the sidebar: a control request the study's own kernel applies."""

    @tornado.web.authenticated
    def post(self, name: str, action: str) -> None:
        if action not in STEERING:
            raise UsageError(f"action must be one of {sorted(STEERING)}")
        self.name_argument("study", name)
        payload: dict[str, Any] = {}
        if action == "budget":
            try:
                body = json.loads(self.request.body or b"{}")
                add = int(body["add"])
            except (ValueError, KeyError, TypeError):
                raise UsageError('budget takes a JSON body like {"add": 10}') from None
            if not 1 <= add <= 100_000:
                raise UsageError("add must be between 1 and 100000")
            payload = {"add": add}
        study = self.store.study(name)
        control = self.store.request_control(study["id"], action, payload, "sidebar", utc_now())
        self.set_status(202)
        self.reply({"control": control, "study": study["name"], "action": action, "state": "requested"})


class ControlHandler(XPHandler):
    @tornado.web.authenticated
    def get(self, control_id: str) -> None:
        applied, result = self.store.control_result(int(control_id))
        self.reply({"control": int(control_id), "applied_at": applied, "result": result})


class PhasesHandler(XPHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        from ..phasetrack import PhaseFilter, build_report

        filters = PhaseFilter(user=self.name_argument("user"), experiment=self.name_argument("experiment"),
                              since=self.moment_argument("since"), until=self.moment_argument("until"))
        self.reply(build_report(self.store, filters, self.settings["xpmagic_idle_cutoff"]).to_dict())


class RecommendHandler(XPHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        from ..recommend import for_experiment

        experiment = self.name_argument("experiment")
        if experiment is None:
            raise UsageError("experiment is required")
        self.reply(for_experiment(self.store, self.settings["xpmagic_knowledge"](), experiment).to_dict())


class KnowledgeHandler(XPHandler):
    """What the knowledge table holds for an experiment, newest first."""

    @tornado.web.authenticated
    def get(self) -> None:
        experiment = self.name_argument("experiment")
        if experiment is None:
            raise UsageError("experiment is required")
        limit = self.int_argument("limit", 50, 1, 500)
        knowledge = self.settings["xpmagic_knowledge"]()
        rows = knowledge.knowledge_rows(experiment=experiment, limit=limit, newest_first=True)
        for row in rows:
            row.pop("meta", None)  # task meta-features: large, and the task fingerprint names it
        self.reply({"experiment": experiment, "total": knowledge.knowledge_count(), "rows": rows})


class ReplayHandler(XPHandler):
    """POST runs/ID/replay starts a replay in a fresh kernel; GET replays/JOB polls it."""

    @tornado.web.authenticated
    def post(self, run_id: str) -> None:
        run = self.store.get_run(int(run_id))  # 404 before starting anything
        job = self.settings["xpmagic_replays"].start(run.id)
        self.set_status(202)
        self.reply(job.to_dict())


class ReplayJobHandler(XPHandler):
    @tornado.web.authenticated
    def get(self, job_id: str) -> None:
        job = self.settings["xpmagic_replays"].get(int(job_id))
        if job is None:
            raise RunNotFound(f"no replay job {job_id} (jobs are kept while the server runs)")
        self.reply(job.to_dict())


class DisplayHandler(XPHandler):
    """A figure a run's cell displayed, as the image it was: raster images only (an SVG opened as a
    page could run its scripts in the server's origin), with a type from a fixed list."""

    @tornado.web.authenticated
    def get(self, run_id: str, position: str) -> None:
        images = {mime: data for at, mime, data in self.store.display_data(int(run_id), "image/")
                  if at == int(position) and mime in RASTER_IMAGES}
        mime = next((m for m in RASTER_IMAGES if m in images), None)
        if mime is None:
            raise RunNotFound(f"run {run_id} kept no image for its display {position}")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "private, max-age=86400")  # a run's records do not change
        self.finish(images[mime], set_content_type=mime)  # APIHandler's finish would say JSON


def routes(base: str) -> list[tuple[str, type]]:
    prefix = base.rstrip("/") + "/xpmagic/api"
    return [
        (prefix + "/experiments", ExperimentsHandler),
        (prefix + "/runs", RunsHandler),
        (prefix + r"/runs/(\d{1,18})", RunHandler),
        (prefix + "/diff", DiffHandler),
        (prefix + "/studies", StudiesHandler),
        (prefix + r"/studies/([^/]{1,200})/([a-z]{1,20})", StudyActionHandler),
        (prefix + r"/controls/(\d{1,18})", ControlHandler),
        (prefix + "/phases", PhasesHandler),
        (prefix + "/recommend", RecommendHandler),
        (prefix + "/knowledge", KnowledgeHandler),
        (prefix + r"/runs/(\d{1,18})/replay", ReplayHandler),
        (prefix + r"/replays/(\d{1,18})", ReplayJobHandler),
        (prefix + r"/runs/(\d{1,18})/displays/(\d{1,6})", DisplayHandler),
    ]

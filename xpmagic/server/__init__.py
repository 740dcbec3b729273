"""The jupyter_server extension behind the JupyterLab sidebar."""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Float, Unicode
from traitlets.config import Configurable


class XPMagicServer(Configurable):
    """Server settings: ``jupyter lab --XPMagicServer.db_path=...``."""

    db_path = Unicode("", help="Database file. Default: $XPMAGIC_DB, else ./xpmagic.db "
                               "in the server's root directory").tag(config=True)
    idle_cutoff_minutes = Float(30.0, help="Idle cut-off for phase time").tag(config=True)
    knowledge_path = Unicode("", help="Knowledge table file. Default: $XPMAGIC_KNOWLEDGE, else the "
                                      "database itself").tag(config=True)
    trust_replay = Bool(False, help="Let the sidebar replay runs of a database another user or machine "
                                    "created (replay runs the code stored in it)").tag(config=True)


def _load_jupyter_server_extension(serverapp: Any) -> None:
    import os
    from pathlib import Path

    from ..knowledge import knowledge_path
    from ..magics import DB_ENV, DEFAULT_DB
    from ..store import Store
    from ._handlers import routes
    from ._replays import ReplayJobs

    settings = XPMagicServer(parent=serverapp)
    path = settings.db_path or os.environ.get(DB_ENV) or os.path.join(serverapp.root_dir, DEFAULT_DB)
    knowledge_file = str(knowledge_path(settings.knowledge_path, Path(path).resolve()))
    cache: dict[str, Store] = {}

    def opened(file: str) -> Store:
        # Opened on first use: the database may not exist until a kernel records a run.
        if file not in cache:
            cache[file] = Store(file, create=False)
        return cache[file]

    web_app = serverapp.web_app
    web_app.settings["xpmagic_store"] = lambda: opened(str(Path(path).resolve()))
    web_app.settings["xpmagic_knowledge"] = lambda: opened(knowledge_file)
    web_app.settings["xpmagic_replays"] = ReplayJobs(path, settings.trust_replay)
    web_app.settings["xpmagic_idle_cutoff"] = settings.idle_cutoff_minutes
    web_app.add_handlers(".*$", routes(web_app.settings["base_url"]))
    serverapp.log.info("xpmagic server extension: database %s", path)

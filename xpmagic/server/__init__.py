"""The jupyter_server extension behind the JupyterLab sidebar."""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Float, TraitError, Unicode, validate
from traitlets.config import Configurable


class XPMagicServer(Configurable):
    """Server settings: ``jupyter lab --XPMagicServer.db_path=...``."""

    db_path = Unicode("", help="Database file. Default: $XPMAGIC_DB, else ./xpmagic.db "
                               "in the server's root directory").tag(config=True)
    idle_cutoff_minutes = Float(30.0, help="Idle cut-off for phase time").tag(config=True)
    knowledge_path = Unicode("", help="Knowledge table: a file or a postgresql:// URL. Default: "
                                      "$XPMAGIC_KNOWLEDGE, else the database itself").tag(config=True)
    trust_replay = Bool(False, help="Let the sidebar replay runs of a database another user or machine "
                                    "created (replay runs the code stored in it)").tag(config=True)

    @validate("idle_cutoff_minutes")
    def _not_negative(self, proposal: Any) -> Any:
        if proposal["value"] < 0:
            raise TraitError(f"XPMagicServer.idle_cutoff_minutes must be 0 or more, got {proposal['value']}")
        return proposal["value"]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    import os
    from pathlib import Path

    from ..magics import DB_ENV, DEFAULT_DB
    from ..store import Store, file_identity
    from ..teamknowledge import open_knowledge
    from ._handlers import routes
    from ._replays import ReplayJobs

    settings = XPMagicServer(parent=serverapp)
    path = settings.db_path or os.environ.get(DB_ENV) or os.path.join(serverapp.root_dir, DEFAULT_DB)
    cache: dict[str, Any] = {}

    def store() -> Store:
        # Opened on first use: the database may not exist until a kernel records a run. Opened
        # again when the file at the path is another one (deleted and made anew by a kernel).
        resolved = Path(path).resolve()
        if "store" in cache and file_identity(resolved) != cache["file"]:
            old = cache.pop("store")
            if cache.get("knowledge") is old:
                cache.pop("knowledge")
            old.close()
        if "store" not in cache:
            cache["store"] = Store(resolved, create=False)
            cache["file"] = file_identity(resolved)
        return cache["store"]

    def knowledge() -> Any:
        if "knowledge" not in cache:
            cache["knowledge"] = open_knowledge(store(), settings.knowledge_path)
        return cache["knowledge"]

    web_app = serverapp.web_app
    web_app.settings["xpmagic_store"] = store
    web_app.settings["xpmagic_knowledge"] = knowledge
    web_app.settings["xpmagic_replays"] = ReplayJobs(path, settings.trust_replay)
    web_app.settings["xpmagic_idle_cutoff"] = settings.idle_cutoff_minutes
    web_app.add_handlers(".*$", routes(web_app.settings["base_url"]))
    serverapp.log.info("xpmagic server extension: database %s", path)

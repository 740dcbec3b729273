"""Root conftest: loaded for tests and for the notebooks nbval runs.

Notebook kernels inherit the environment of pytest, so the database they write
is chosen here, before any kernel starts: never the user's ./xpmagic.db.
"""

from __future__ import annotations

import os
import tempfile


def pytest_configure(config):
    if "XPMAGIC_DB" not in os.environ:
        folder = tempfile.mkdtemp(prefix="xpmagic-tests-")
        os.environ["XPMAGIC_DB"] = os.path.join(folder, "notebooks.db")

"""xpmagic: traceable, steerable, cumulative ML experiments in Jupyter.

``%load_ext xpmagic`` registers ``%%experiment`` and ``%xp`` and puts an ``xp``
handle in the namespace. See the README for every option.
"""

from __future__ import annotations

import atexit
import sys
from typing import Any

from .errors import XPError

__version__ = "0.1.0"
__all__ = ["XPError", "__version__", "load_ipython_extension", "unload_ipython_extension"]


def __getattr__(name: str) -> Any:
    """``from xpmagic import xp``: the session's handle, for a script run with %run from an
    experiment cell (it does not see the notebook's namespace) or a module of the person's own."""
    if name != "xp":
        raise AttributeError(f"module 'xpmagic' has no attribute {name!r}")
    from IPython import get_ipython

    shell = get_ipython()
    magics = None if shell is None else shell.magics_manager.registry.get("XPMagics")
    if magics is None or magics.recorder.handle is None:
        raise ImportError("xpmagic's xp handle exists in an IPython session that ran %load_ext xpmagic; "
                          "a worker process (joblib, multiprocessing) has none: return its values to the "
                          "cell and record them there")
    return magics.recorder.handle


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "xpmagic.server"}]


def load_ipython_extension(shell: Any) -> None:
    from .api import XPHandle
    from .magics import XPMagics, experiment_transformer

    if "XPMagics" in shell.magics_manager.registry:
        return  # already loaded
    magics = XPMagics(shell)
    shell.register_magics(magics)
    shell.configurables.append(magics)
    shell.input_transformers_cleanup.append(experiment_transformer)
    magics.recorder.register()
    atexit.register(magics.recorder.git.wait_idle, 5.0)  # a short-lived kernel still gets its git state
    atexit.register(magics.recorder.write_unwritten_at_exit)
    replaced = shell.user_ns.get("xp")
    if replaced is not None and not isinstance(replaced, XPHandle):
        from .api import describe_other_xp

        print(f"xpmagic: `xp` was {describe_other_xp(replaced)}; it is now xpmagic's handle. Bind yours to "
              "another name (e.g. `import numpy as xnp`)", file=sys.stderr)
    magics.recorder.handle = shell.user_ns["xp"] = XPHandle(magics.recorder, magics.store)


def unload_ipython_extension(shell: Any) -> None:
    from .magics import experiment_transformer

    magics = shell.magics_manager.registry.pop("XPMagics", None)
    shell.magics_manager.magics["cell"].pop("experiment", None)
    shell.magics_manager.magics["line"].pop("xp", None)
    if experiment_transformer in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(experiment_transformer)
    if magics is not None:
        magics.recorder.unregister()
        magics.close()
        if magics in shell.configurables:
            shell.configurables.remove(magics)
    shell.user_ns.pop("xp", None)

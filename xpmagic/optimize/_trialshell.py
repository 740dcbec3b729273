"""What ``get_ipython()`` is inside a background trial.

IPython's ``%run script.py`` copies the script's variables into the notebook's namespace when it
ends. In a trial, that meant a background thread overwrote the person's variables (their own
``x``) at any moment, with values from a trial. Here ``%run`` fills the trial's namespace instead,
as it would fill the notebook's; every other magic is the shell's own.
"""

from __future__ import annotations

import builtins
import shlex
import sys
from typing import Any

from ..errors import UsageError


class TrialShell:
    """The notebook's shell, except for where ``%run`` puts what the script defined."""

    def __init__(self, shell: Any, namespace: dict[str, Any]):
        self._shell = shell
        self._namespace = namespace

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shell, name)

    def run_line_magic(self, magic_name: str, line: str, _stack_depth: int = 1) -> Any:
        if magic_name == "run":
            return run_script(line, self._namespace)
        # One frame deeper than the caller thinks: magics that read the caller's variables (%time) find them.
        return self._shell.run_line_magic(magic_name, line, _stack_depth=_stack_depth + 1)


def with_trial_shell(namespace: dict[str, Any]) -> dict[str, Any]:
    """The trial's namespace, whose ``get_ipython()`` runs scripts into it."""
    shell = _shell_of(namespace)
    if shell is not None:
        trial_shell = TrialShell(shell, namespace)
        namespace["get_ipython"] = lambda: trial_shell
    return namespace


def _shell_of(namespace: dict[str, Any]) -> Any:
    get_ipython = namespace.get("get_ipython")
    try:
        return get_ipython() if callable(get_ipython) else None
    except Exception:
        return None


def run_script(line: str, namespace: dict[str, Any]) -> None:
    """``%run [-i] script.py [args]`` as IPython runs it, into ``namespace``: the script in a fresh
    namespace (or, with -i, in this one), then what it defined copied in."""
    from IPython.utils.path import get_py_filename

    words = shlex.split(line)
    interactive = words[:1] == ["-i"]
    words = words[1:] if interactive else words
    if not words or words[0].startswith("-"):
        raise UsageError(f"%run {line}: in an optimization trial, %run takes a script and its arguments: "
                         "%run [-i] train.py [args]")
    try:
        filename = get_py_filename(words[0])
    except OSError as exc:
        raise UsageError(f"%run: {exc}") from None
    with open(filename, encoding="utf-8") as handle:
        code = compile(handle.read(), filename, "exec")
    target = namespace if interactive else {"__name__": "__main__", "__file__": filename, "__builtins__": builtins}
    argv = sys.argv
    sys.argv = [filename, *words[1:]]  # process-wide, as %run sets it: trials at once share it
    try:
        exec(code, target)
    finally:
        sys.argv = argv
    if not interactive:
        namespace.update({name: value for name, value in target.items()
                          if name not in ("__name__", "__file__", "__builtins__")})

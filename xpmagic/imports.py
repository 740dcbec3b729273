"""The import statement that binds a name to what a cell read from it.

Cells mostly read modules, classes and functions imported in a plain cell at the top of the
notebook. A run records the statements that bring back those names, so a replay rebuilt from
the records alone (replay.py) can import them before the run's cell, without the plain cell.
"""

from __future__ import annotations

import sys
import types
from typing import Any

_NOT_IMPORTABLE = frozenset({"__main__", "builtins", "__mp_main__"})


def import_statement(name: str, value: Any) -> str | None:
    """``import numpy as np`` for np, ``from sklearn.svm import SVC`` for SVC, or None when the
    value is not something a module binds (data, or a function defined in the notebook)."""
    try:
        if isinstance(value, types.ModuleType):
            return _module_import(name, value.__name__)
        return _attribute_import(name, value)
    except Exception:  # an object's own __getattr__ may raise anything
        return None


def _module_import(name: str, module: str) -> str:
    return f"import {module}" if name == module else f"import {module} as {name}"


def _attribute_import(name: str, value: Any) -> str | None:
    module_name = getattr(value, "__module__", None)
    attribute = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if not isinstance(module_name, str) or module_name in _NOT_IMPORTABLE or not isinstance(attribute, str):
        return None  # data (instances have no __qualname__), or defined in the notebook
    if "." in attribute or "<" in attribute:
        return None  # a method or a nested function: no module binds it
    home = _public_home(module_name, attribute, value)
    if home is None:
        return None
    return f"from {home} import {attribute}" + ("" if name == attribute else f" as {name}")


def _public_home(module_name: str, attribute: str, value: Any) -> str | None:
    """The shortest loaded package path that binds the value: sklearn.linear_model rather
    than sklearn.linear_model._logistic, where the class is defined."""
    parts = module_name.split(".")
    for end in range(1, len(parts) + 1):
        module = sys.modules.get(".".join(parts[:end]))
        if module is not None and getattr(module, attribute, None) is value:
            return ".".join(parts[:end])
    return None

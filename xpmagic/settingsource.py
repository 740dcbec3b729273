"""Source that makes a configuration object again: ``cv = KFold(n_splits=5, shuffle=True,
random_state=0)`` or ``cfg = Config(lr=0.1, layers=(64, 32))``.

Notebooks build these in a plain cell at the top and read them in experiment cells. A replay,
rebuilt from the records alone, had no such cell and failed on the name; the run now records
this line (with the class's import or definition, bindings.py) when every argument is a literal
that reads back equal. Nothing is evaluated here: the replay runs the line, and its verdict
compares the object's fingerprint with the original's, so a line that rebuilt something else
shows as a changed input.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import types
from typing import Any

from .recordhash import is_argparse_namespace
from .redaction import is_secret_variable

MAX_ARGUMENTS = 50
MAX_SOURCE_CHARS = 1000


def setting_source(name: str, value: Any) -> tuple[str, type] | None:
    """(``name = Class(arg=literal, ...)``, Class), or None when it cannot be written so."""
    arguments = _constructor_arguments(value)
    if arguments is None or len(arguments) > MAX_ARGUMENTS:
        return None
    parts = []
    for key, item in arguments.items():
        if isinstance(item, str) and is_secret_variable(key):
            return None  # Namespace(api_key='...'): the line would hold the secret
        text = _literal(item)
        if text is None or not key.isidentifier():
            return None
        parts.append(f"{key}={text}")
    cls = type(value)
    source = f"{name} = {cls.__name__}({', '.join(parts)})"
    return (source, cls) if len(source) <= MAX_SOURCE_CHARS else None


def _constructor_arguments(value: Any) -> dict[str, Any] | None:
    cls = type(value)
    try:
        if dataclasses.is_dataclass(cls):
            return _dataclass_arguments(value)
        if isinstance(value, types.SimpleNamespace) or is_argparse_namespace(value):
            return dict(vars(value))
        attributes = getattr(cls, "__attrs_attrs__", None)
        if attributes is not None:
            return {getattr(a, "alias", None) or a.name: getattr(value, a.name) for a in attributes if a.init}
        if cls.__module__.startswith("sklearn.") and not hasattr(value, "fit"):
            return _sklearn_arguments(value)
    except AttributeError:  # a field not kept as an attribute (an InitVar)
        return None
    return None


def _dataclass_arguments(value: Any) -> dict[str, Any] | None:
    """The fields __init__ takes; None when it takes more (an InitVar: consumed by __post_init__
    and not kept, so the object cannot be made again from its fields)."""
    cls = type(value)
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    try:
        taken = list(inspect.signature(cls.__init__).parameters)[1:]
    except (TypeError, ValueError):
        return None
    if sorted(taken) != sorted(fields):
        return None
    return {name: getattr(value, name) for name in fields}


def _sklearn_arguments(value: Any) -> dict[str, Any] | None:
    """A splitter keeps each argument of its __init__ under the same name (as its models do)."""
    try:
        parameters = inspect.signature(type(value).__init__).parameters
    except (TypeError, ValueError):
        return None
    arguments = {}
    for parameter in list(parameters.values())[1:]:  # after self
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or not hasattr(value, parameter.name):
            return None
        arguments[parameter.name] = getattr(value, parameter.name)
    return arguments


def _literal(item: Any) -> str | None:
    """The repr of a literal that reads back as the same value (of the same type), or None."""
    text = repr(item)
    try:
        back = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None  # an object, nan, inf
    return text if type(back) is type(item) and back == item else None

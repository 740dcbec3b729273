"""Configuration objects by their fields: a dataclass ``Config(lr=0.1, layers=[64, 32])``, an
``argparse.Namespace`` of script arguments, a ``types.SimpleNamespace``, an attrs class or a
pydantic model. Notebooks keep their settings in these; without a fingerprint a run that read
other settings recorded no change, and none of their values showed in ``xpmagic show``.

Also scikit-learn's settings that are not models: cross-validation splitters
(``StratifiedKFold(5, shuffle=True, random_state=0)``), scorers (``make_scorer(f1_score,
average="macro")``) and parameter grids, by their attributes: another cv or scorer gives other
results.

Only these classes are read this way (any object's ``__dict__`` could be a database client or a
model of gigabytes).
"""

from __future__ import annotations

import dataclasses
import re
import sys
import types
from typing import Any

SHOWN_FIELDS = 20
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # "<function f1_score at 0x7f...>": other in every session


def record_fields(value: Any) -> dict[str, Any] | None:
    """The declared fields of a configuration object, or None for any other value."""
    cls = type(value)
    if dataclasses.is_dataclass(cls):
        return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(cls)}
    if isinstance(value, types.SimpleNamespace) or is_argparse_namespace(value):
        return dict(vars(value))
    attributes = getattr(cls, "__attrs_attrs__", None)  # attrs
    if attributes is not None:
        return {a.name: getattr(value, a.name, None) for a in attributes}
    fields = getattr(cls, "model_fields", None)  # pydantic 2
    if isinstance(fields, dict) and hasattr(value, "model_dump"):
        return {name: getattr(value, name, None) for name in fields}
    if cls.__module__.startswith("sklearn.") and hasattr(value, "__dict__") and not hasattr(value, "fit"):
        return dict(vars(value))  # a splitter, scorer or grid (models are fingerprinted as models)
    return None


def is_argparse_namespace(value: Any) -> bool:
    argparse = sys.modules.get("argparse")
    return argparse is not None and isinstance(value, argparse.Namespace)


def without_secrets(fields: dict[str, Any]) -> dict[str, Any]:
    """A text field named like a secret (`api_key`, `db_password`) is neither shown nor hashed: a
    digest of the other fields and a guessed password could be checked against the record."""
    from .redaction import REDACTED, is_secret_variable

    return {name: REDACTED if isinstance(item, str) and is_secret_variable(name) else item
            for name, item in fields.items()}


def record_summary(value: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """What `xpmagic show` prints: the class and the first fields' values (a password in a
    `scheme://user:password@host` value as ***)."""
    from .environment import redact_url

    shown = dict(list(fields.items())[:SHOWN_FIELDS])
    return {"type": f"{type(value).__module__}.{type(value).__qualname__}",
            "fields": {name: redact_url(_ADDRESS.sub("", repr(item)))[:60] for name, item in shown.items()}}

"""JSON for people, scripts and browsers: strict, so any parser reads it.

Python's json writes NaN and Infinity as bare words that JSON does not have (a browser's
JSON.parse refuses the whole reply). NaN becomes null; an infinity (a loss that diverged) is
written 1e999, a number that JavaScript and Python both read back as an infinity.
"""

from __future__ import annotations

import json
import math
from typing import Any

_INFINITY = "\x00xpmagic:+inf\x00"  # a control character: never in a value worth keeping
_MINUS_INFINITY = "\x00xpmagic:-inf\x00"


def strict_json(value: Any, **options: Any) -> str:
    """json.dumps(value, **options), with NaN as null and infinities as ±1e999."""
    text = json.dumps(_finite(value), allow_nan=False, **options)
    if "xpmagic:" not in text:
        return text
    return (text.replace(json.dumps(_INFINITY), "1e999")
                .replace(json.dumps(_MINUS_INFINITY), "-1e999"))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return _INFINITY if value > 0 else _MINUS_INFINITY
        return value
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value

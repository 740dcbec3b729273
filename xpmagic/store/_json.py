"""Compact JSON for the store's JSON columns."""

from __future__ import annotations

import json
from typing import Any

# One encoder for every call: json.dumps builds a new one whenever options are given.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


def dumps(value: Any) -> str:
    return _ENCODER.encode(value)

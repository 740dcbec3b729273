"""Keeping secrets out of the record.

The environment's secrets (variables named like TOKEN, PASSWORD, KEY, ...) are never stored
(environment.py). A cell can still carry one into a run: it prints a token, reads one into
a variable, or an error message quotes it. Before a run is written, every text it produced
(output, displayed text and HTML, error, result, parameter values, variable summaries) has the values of those
environment variables replaced by ``[redacted]``, and a string variable named like a secret
(``api_token``, ``db_password``) is kept only by type and length: no value, and no
fingerprint, which could be matched against guessed passwords. The cell's code is kept as
written: it is in the notebook too, and replay needs it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import time
from typing import Any

from .environment import is_secret_name
from .records import DisplayRecord, ErrorInfo, ParamSpec, RunOutcome, VariableRecord

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true", "dev") would redact ordinary text
# Stricter than environment variable names: 'max_tokens' and 'sort_key' are not secrets.
SECRET_VARIABLE = re.compile(
    r"(^|_)(token|secret|password|passwd|pwd|api_?key|apikey|secret_?key|access_?key|private_?key|"
    r"credentials?|auth)$", re.IGNORECASE)
_RECHECK_S = 2.0  # how long the environment's secret values are reused before being read again

_cached: tuple[float, int, tuple[str, ...]] = (-1e9, -1, ())


def is_secret_variable(name: str) -> bool:
    return bool(SECRET_VARIABLE.search(name))


def secret_values() -> tuple[str, ...]:
    """Values of environment variables whose names look secret, longest first (so a secret that
    contains another is replaced whole). Read again after a couple of seconds, or at once when
    a variable was added or removed."""
    global _cached
    now = time.monotonic()
    checked_at, count, values = _cached
    if now - checked_at < _RECHECK_S and count == len(os.environ):
        return values
    found = {value for name, value in os.environ.items()
             if is_secret_name(name) and len(value) >= MIN_SECRET_LENGTH and not _is_path(value)}
    values = tuple(sorted(found, key=len, reverse=True))
    _cached = (now, len(os.environ), values)
    return values


def _is_path(value: str) -> bool:
    """PWD, SSH_AUTH_SOCK, GOOGLE_APPLICATION_CREDENTIALS: a secret-sounding name whose value is a
    path that exists. The path is not the secret (the file may hold one), and redacting it would
    blank the working folder out of every traceback."""
    return os.path.isabs(value) and os.path.exists(value)


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def scrub(outcome: RunOutcome) -> RunOutcome:
    """The outcome with no secret left in it (a copy; the same object when there is nothing to do)."""
    secrets = secret_values()
    if not secrets and not _secret_named(outcome):
        return outcome  # the usual case, on every run: kept cheap
    variables = [_scrub_variable(v, secrets) for v in outcome.variables]
    params = [_scrub_param(p, secrets) for p in outcome.params]
    error = outcome.error
    if error is not None and secrets:
        error = ErrorInfo(error.type, redact(error.message, secrets), redact(error.traceback, secrets))
    return dataclasses.replace(
        outcome, stdout=redact(outcome.stdout, secrets), stderr=redact(outcome.stderr, secrets),
        result=None if outcome.result is None else redact(outcome.result, secrets), error=error,
        params=params, variables=variables, displays=[_scrub_display(d, secrets) for d in outcome.displays])


def _scrub_display(record: DisplayRecord, secrets: tuple[str, ...]) -> DisplayRecord:
    """A displayed text (a dict shown as text/plain, a table's HTML) without the secrets' values;
    its sha256 is the kept text's. An image is kept as it is."""
    if record.data is None or not secrets or record.mime.startswith("image/") and record.mime != "image/svg+xml":
        return record
    text = record.data.decode("utf-8", "surrogateescape")
    kept = redact(text, secrets)
    if kept == text:
        return record
    data = kept.encode("utf-8", "surrogateescape")
    return dataclasses.replace(record, data=data, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def _secret_named(outcome: RunOutcome) -> bool:
    """Whether a string parameter or variable is named like a secret."""
    return (any(_secret_string_param(p) for p in outcome.params)
            or any(_secret_string_variable(v) for v in outcome.variables))


def _secret_string_param(param: ParamSpec) -> bool:
    return isinstance(param.value, str) and is_secret_variable(param.name)


def _secret_string_variable(record: VariableRecord) -> bool:
    return record.kind == "scalar" and record.summary.get("type") == "str" and is_secret_variable(record.name)


def scrub_config(config: dict[str, Any]) -> dict[str, Any]:
    """Parameter values as a knowledge row keeps them."""
    secrets = secret_values()
    return {name: _scrub_value(name, value, secrets) for name, value in config.items()}


def _scrub_param(param: ParamSpec, secrets: tuple[str, ...]) -> ParamSpec:
    value = _scrub_value(param.name, param.value, secrets)
    return param if value is param.value else dataclasses.replace(param, value=value)


def _scrub_value(name: str, value: Any, secrets: tuple[str, ...]) -> Any:
    if not isinstance(value, str):
        return value
    return REDACTED if is_secret_variable(name) else redact(value, secrets)


def _scrub_variable(record: VariableRecord, secrets: tuple[str, ...]) -> VariableRecord:
    summary = record.summary
    if _secret_string_variable(record):
        kept = {key: summary[key] for key in ("type", "len") if key in summary}
        return dataclasses.replace(record, fingerprint=None, summary={**kept, "redacted": True})
    shown = summary.get("value")
    if secrets and isinstance(shown, str) and redact(shown, secrets) != shown:
        return dataclasses.replace(record, summary={**summary, "value": redact(shown, secrets)})
    fields = summary.get("fields")  # a configuration object's (recordhash.py)
    if secrets and isinstance(fields, dict):
        cleaned = {name: redact(text, secrets) if isinstance(text, str) else text for name, text in fields.items()}
        if cleaned != fields:
            return dataclasses.replace(record, summary={**summary, "fields": cleaned})
    return record

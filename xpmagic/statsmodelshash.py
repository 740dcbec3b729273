"""Fingerprints of statsmodels' models and fitted results (OLS, GLM, ARIMA, a formula's model).

statsmodels follows no estimator API (no get_params), so its models had no fingerprint: a
regression fitted on other data or with another formula was no change to a replay or a diff. A
model is its class, its formula, its data (endog and exog, hashed as arrays are) and the other
arguments it was made with (a GLM's family and link, an ARIMA's order); fitted results are their
model, their class (the fit method's), their parameters and covariance type. The summary lists
the first parameters, as `show` prints them.
"""

from __future__ import annotations

import re
from typing import Any

import xxhash

from .fingerprint import Fingerprint, fingerprint, is_ndarray

SHOWN_PARAMS = 12
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def statsmodels_fingerprint(value: Any, sample_bytes: int) -> Fingerprint | None:
    """The fingerprint of a statsmodels model or results object; None for other statsmodels objects."""
    from statsmodels.base.model import Model, Results
    from statsmodels.base.wrapper import ResultsWrapper

    results = value._results if isinstance(value, ResultsWrapper) else value
    if isinstance(results, Results) and isinstance(getattr(results, "model", None), Model):
        model_digest = _model_digest(results.model, sample_bytes)
        params = fingerprint(results.params, sample_bytes).digest
        key = f"{_qualified(results)}|{model_digest}|{params}|{getattr(results, 'cov_type', None)}"
        summary = {"type": f"statsmodels.{type(results).__name__}", "model": type(results.model).__name__,
                   "nobs": _nobs(results.model), "params": _shown_params(results)}
        return Fingerprint(xxhash.xxh3_128_hexdigest(key.encode()), "model", summary)
    if isinstance(value, Model):
        summary = {"type": f"statsmodels.{type(value).__name__}", "nobs": _nobs(value)}
        formula = getattr(value, "formula", None)
        if formula:
            summary["formula"] = str(formula)
        return Fingerprint(_model_digest(value, sample_bytes), "model", summary)
    return None


def _model_digest(model: Any, sample_bytes: int) -> str:
    hasher = xxhash.xxh3_128(_qualified(model).encode())
    hasher.update(repr(getattr(model, "formula", None)).encode())
    for data in (getattr(model, "endog", None), getattr(model, "exog", None)):
        hasher.update(str(fingerprint(data, sample_bytes).digest).encode())
    hasher.update(repr((getattr(model, "endog_names", None), getattr(model, "exog_names", None))).encode())
    try:
        arguments = model._get_init_kwds()  # what it was made with besides the data (statsmodels' own record)
    except Exception:
        arguments = {}
    for name in sorted(arguments):
        hasher.update(f"|{name}={_argument(arguments[name], sample_bytes)}".encode())
    return hasher.hexdigest()


def _argument(value: Any, sample_bytes: int) -> str:
    """An array by its digest; a family (GLM) by its class and link's class; else its repr."""
    if is_ndarray(value) or type(value).__module__.partition(".")[0] == "pandas":
        return str(fingerprint(value, sample_bytes).digest)
    link = getattr(value, "link", None)
    if link is not None and type(value).__module__.startswith("statsmodels"):
        return f"{_qualified(value)}({_qualified(link)})"
    return _ADDRESS.sub("", repr(value))


def _qualified(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _nobs(model: Any) -> int | None:
    endog = getattr(model, "endog", None)
    return None if endog is None else int(len(endog))


def _shown_params(results: Any) -> dict[str, str]:
    params = results.params
    names = list(getattr(params, "index", [])) or list(getattr(results.model, "param_names", None)
                                                      or getattr(results.model, "exog_names", None) or [])
    values = list(getattr(params, "values", params))
    if len(names) != len(values):
        names = [f"p{i}" for i in range(len(values))]
    return {str(name): f"{float(value):.6g}" for name, value in list(zip(names, values))[:SHOWN_PARAMS]}

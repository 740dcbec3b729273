"""Fingerprints of xarray's labelled arrays (DataArray, Dataset): each variable's name, dimensions,
attributes and values, coordinates included, so another grid or other units are other data.

Values are hashed only when they are in memory. A variable still on disk (``open_dataset``
reads lazily) would be read whole to be hashed, so the object gets no fingerprint and the
summary says why; a dask-backed variable is its dask token (dask's own content digest).
"""

from __future__ import annotations

from typing import Any

import xxhash


def xarray_fingerprint(value: Any, sample_bytes: int) -> tuple[str | None, dict[str, Any]] | None:
    """(digest, summary) of a DataArray or Dataset; None for other xarray objects."""
    import xarray

    if isinstance(value, xarray.DataArray):
        variables = {"<values>": value.variable, **{name: value.coords[name].variable for name in value.coords}}
        summary: dict[str, Any] = {"type": "DataArray", "name": str(value.name), "dims": dict(value.sizes)}
    elif isinstance(value, xarray.Dataset):
        variables = dict(value.variables)
        summary = {"type": "Dataset", "dims": dict(value.sizes), "data_vars": [str(n) for n in value.data_vars][:50]}
    else:
        return None
    from .fingerprint import fingerprint

    hasher = xxhash.xxh3_128(f"xarray.{summary['type']}:{summary.get('name', '')}".encode())
    hasher.update(str(fingerprint(dict(value.attrs)).digest).encode())
    budget = max(4096, sample_bytes // max(1, len(variables)))
    for name in sorted(variables, key=str):
        digest, why = _variable_digest(variables[name], budget)
        if digest is None:
            summary["unhashed"] = f"{name}: {why}"
            return None, summary
        hasher.update(f"|{name}|{digest}".encode())
    return hasher.hexdigest(), summary


def _variable_digest(variable: Any, budget: int) -> tuple[str | None, str]:
    import numpy
    import xarray

    from .fingerprint import array_digest, fingerprint

    if not getattr(variable, "_in_memory", True) and not _is_dask(getattr(variable, "_data", None)):
        # xarray's own test: asking for .data or .values would read it from the file
        return None, "not loaded yet (.load() it, or record its file with xp.artifact)"
    data = variable.values if isinstance(variable, xarray.IndexVariable) else variable.data  # an index: in memory
    if isinstance(data, numpy.ndarray) and not data.dtype.hasobject:
        values = array_digest(data, budget)
    elif isinstance(data, numpy.ndarray):
        values = str(fingerprint(data, budget).digest)
    elif _is_dask(data):
        from dask.base import tokenize

        values = "dask:" + tokenize(data)
    else:
        return None, f"holds a {type(data).__name__}"
    attrs = fingerprint(dict(variable.attrs)).digest
    return xxhash.xxh3_128_hexdigest(f"{variable.dims}|{attrs}|{values}".encode()), ""


def _is_dask(data: Any) -> bool:
    return type(data).__module__.startswith("dask")

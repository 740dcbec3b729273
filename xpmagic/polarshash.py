"""Content fingerprints of polars frames and series, through Arrow.

A polars column is an Arrow array, so its buffers are hashed (framehash.py does the same for
pandas' Arrow columns): about memory speed, and the same in every process. Longer
frames are sampled on evenly spread rows (and marked). A LazyFrame is a query, not data: it gets
a summary, since computing it to fingerprint it could take as long as the cell.
"""

from __future__ import annotations

from typing import Any

from .fingerprint import Fingerprint, digest_bytes, sample_positions
from .framehash import Digest, hash_arrow


def polars_fingerprint(value: Any, sample_bytes: int) -> Fingerprint:
    import polars

    if isinstance(value, polars.Series):
        kind = "polars.Series"
        summary: dict[str, Any] = {"shape": list(value.shape), "dtype": str(value.dtype)}
        value = value.to_frame()
    elif isinstance(value, polars.DataFrame):
        kind = "polars.DataFrame"
        summary = {"shape": list(value.shape),
                   "dtypes": {name: str(dtype) for name, dtype in list(value.schema.items())[:50]}}
    else:
        return Fingerprint(None, type(value).__name__, {"type": f"polars.{type(value).__name__}"})
    size = value.estimated_size()
    if size > sample_bytes and value.height > 0:
        value = value[sample_positions(value.height, max(1, value.height * sample_bytes // size))]
        summary["sampled"] = True
    digest = Digest()
    digest.update(repr([(name, str(dtype)) for name, dtype in value.schema.items()]).encode())
    for column in value.to_arrow().columns:  # numbers without a copy; text is converted to Arrow strings
        digest.update(f"|{len(column)}|".encode())
        hash_arrow(digest, column)
    return Fingerprint(digest_bytes(b"polars", digest.hasher.hexdigest().encode()), kind, summary)

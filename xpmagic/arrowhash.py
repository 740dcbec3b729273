"""Fingerprints of Arrow data: pyarrow tables, record batches and arrays, and Hugging Face
``datasets`` (a Dataset is an Arrow table, often memory-mapped from its cache, and a DatasetDict
of splits is a dict of them).

Each column's buffers are hashed as framehash does for pandas' Arrow columns; a larger table is
sampled on runs of rows (fingerprint.sample_runs), which reads only those pages of a table on
disk. A Dataset is hashed as its rows are seen: after ``shuffle``, ``select`` or ``filter`` it is a
mapping of indices into its table, which is taken into account, so a shuffled Dataset is other
data. Its own ``_fingerprint`` is not used: where its library cannot hash a ``map`` function it is
random, and would differ in every session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .fingerprint import Fingerprint, digest_bytes, sample_runs
from .framehash import Digest, hash_arrow


def arrow_fingerprint(value: Any, sample_bytes: int) -> Fingerprint | None:
    """The fingerprint of a pyarrow Table, RecordBatch, Array or ChunkedArray; None for other
    pyarrow objects."""
    import pyarrow

    if isinstance(value, (pyarrow.Array, pyarrow.ChunkedArray)):
        table = pyarrow.table({"": value})
        summary: dict[str, Any] = {"type": f"pyarrow.{type(value).__name__}", "len": len(value),
                                   "dtype": str(value.type)}
    elif isinstance(value, (pyarrow.Table, pyarrow.RecordBatch)):
        table = value if isinstance(value, pyarrow.Table) else pyarrow.Table.from_batches([value])  # no copy
        summary = _table_summary(value, f"pyarrow.{type(value).__name__}")
    else:
        return None
    return _rows_fingerprint(table.num_rows, table.nbytes, lambda: table,
                             lambda start, stop: table.slice(start, stop - start), sample_bytes, summary)


def dataset_fingerprint(value: Any, sample_bytes: int) -> Fingerprint | None:
    """The fingerprint of a Hugging Face Dataset; a streaming IterableDataset has no rows to hash."""
    import datasets

    if isinstance(value, datasets.IterableDataset):
        return Fingerprint(None, "data", {"type": "datasets.IterableDataset",
                                          "unhashed": "a streaming dataset: its rows are read as it is iterated"})
    column = getattr(datasets.arrow_dataset, "Column", None)  # ds['label'] (datasets 4 and later): read lazily
    if column is not None and isinstance(value, column) and isinstance(value.source, datasets.Dataset):
        found = dataset_fingerprint(value.source.select_columns([value.column_name]), sample_bytes)
        if found is not None:
            found.summary["type"] = "datasets.Column"
        return found
    if not isinstance(value, datasets.Dataset):
        return None
    table = value.data.table
    summary = _table_summary(table, "datasets.Dataset")
    summary["shape"][0] = len(value)
    size = table.nbytes * len(value) // max(1, table.num_rows)
    mapping = value._indices  # noqa: SLF001 (after shuffle, select or filter: which rows, in which order)
    if mapping is None:
        return _rows_fingerprint(len(value), size, lambda: table, lambda start, stop: table.slice(start, stop - start),
                                 sample_bytes, summary)
    positions = mapping.column(0)  # Arrow's take, not the Dataset's: 500 times faster on a million rows
    return _rows_fingerprint(len(value), size, lambda: table.take(positions),
                             lambda start, stop: table.take(positions.slice(start, stop - start)),
                             sample_bytes, summary)


def _table_summary(table: Any, kind: str) -> dict[str, Any]:
    return {"type": kind, "shape": [table.num_rows, table.num_columns],
            "dtypes": {name: str(dtype) for name, dtype in list(zip(table.schema.names, table.schema.types))[:50]}}


def _rows_fingerprint(rows: int, size: int, whole: Callable[[], Any], cut: Callable[[int, int], Any],
                      sample_bytes: int, summary: dict[str, Any]) -> Fingerprint:
    """Every row (``whole()``), or, past ``sample_bytes``, runs of rows (``cut(start, stop)``)."""
    if size > sample_bytes and rows > 0:
        import pyarrow

        starts, length = sample_runs(rows, max(1, rows * sample_bytes // size))
        table = pyarrow.concat_tables([cut(start, start + length) for start in starts])
        summary["sampled"] = True
    else:
        table = whole()
    digest = Digest()
    digest.update(repr([(name, str(dtype)) for name, dtype in zip(table.schema.names, table.schema.types)]).encode())
    for column in table.columns:
        digest.update(f"|{len(column)}|".encode())
        hash_arrow(digest, column)
    return Fingerprint(digest_bytes(b"arrow", digest.hasher.hexdigest().encode()), "data", summary)

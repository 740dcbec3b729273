"""Content digests of pandas objects, column by column at memory speed.

``pandas.util.hash_pandas_object`` hashes every value through a per-element hash: about 250 ns
a string, so a 200,000-row frame with one text column took 55 ms to fingerprint, twice a run
(read, then written). Here numeric columns are hashed as their bytes, Arrow-backed columns
(pandas' default ``str`` with pyarrow) as their Arrow buffers, categoricals as codes plus
categories, Python strings through Arrow; only other Python objects go through pandas' hash.
Columns longer than a few milliseconds' work are sampled on evenly spread rows (and marked).
"""

from __future__ import annotations

import functools
import pickle
from typing import Any

import numpy as np
import xxhash

from .fingerprint import dtype_name

MAX_TEXT_VALUES = 200_000  # Python strings: ~10 ms through Arrow; more rows are sampled (and marked)
MAX_OBJECT_VALUES = 10_000  # other objects: ~5 ms of pandas' per-element hash


class Digest:
    def __init__(self) -> None:
        self.hasher = xxhash.xxh3_128()
        self.sampled = False

    def update(self, *parts: bytes | memoryview) -> None:
        for part in parts:
            self.hasher.update(part)


class Rows:
    """The rows a sample hashes: runs of consecutive rows (fingerprint.sample_runs)."""

    def __init__(self, total: int, wanted: int):
        from .fingerprint import run_positions, sample_runs

        self.starts, self.length = sample_runs(total, wanted)
        self.positions = run_positions(self.starts, self.length)


def frame_digest(value: Any, meta: bytes, rows: Rows | None = None) -> tuple[str, bool]:
    """(digest, sampled) of a DataFrame or Series: ``meta`` (names and dtypes), the index and
    every column, of every row or of the sample ``rows``."""
    import pandas

    digest = Digest()
    digest.sampled = rows is not None
    digest.update(meta)
    _index(digest, value.index if rows is None else value.index.take(rows.positions))
    if isinstance(value, pandas.Series):
        _column(digest, value, rows)
        return digest.hasher.hexdigest(), digest.sampled
    plain = _plain_columns(value, rows)
    length = len(value) if rows is None else len(rows.positions)
    for position in range(value.shape[1]):
        array = plain.get(position)
        if array is None:
            _column(digest, value.iloc[:, position], rows)
        else:  # as _column hashes it, without making a Series (~25 us a column; a frame has hundreds)
            digest.update(f"|{length}|{dtype_name(array.dtype)}|".encode(), _contiguous(array))
    return digest.hasher.hexdigest(), digest.sampled


def _plain_columns(frame: Any, rows: Rows | None) -> dict[int, Any]:
    """Column position -> values (of the sampled rows), for the columns pandas keeps in 2-D
    numpy blocks of numbers (most columns of most frames). Read from pandas' block manager,
    which is internal: if it ever changes shape, every column takes the general way, with the
    same digest."""
    try:
        found = {}
        for block in frame._mgr.blocks:
            values = block.values
            if isinstance(values, np.ndarray) and values.ndim == 2 and values.dtype.kind in "biufc":
                if rows is not None:  # the runs of every column of the block, in one copy
                    values = np.concatenate([values[:, start:start + rows.length] for start in rows.starts], axis=1)
                for row, position in enumerate(block.mgr_locs.as_array):
                    found[int(position)] = values[row]
        return found
    except Exception:
        return {}


def _index(digest: Digest, index: Any) -> None:
    """By its values: a RangeIndex and the same numbers in an Index are the same content."""
    import pandas

    if isinstance(index, pandas.RangeIndex):  # as _column hashes its numbers, without a Series
        numbers = np.arange(index.start, index.stop, index.step, dtype=np.int64)
        digest.update(f"|{len(index)}|int64|".encode(), _contiguous(numbers))
        return
    for level in range(index.nlevels):  # a MultiIndex level by level
        values = index.get_level_values(level) if index.nlevels > 1 else index
        _column(digest, pandas.Series(values, copy=False))


def _column(digest: Digest, column: Any, rows: Rows | None = None) -> None:
    import pandas

    array = column.array
    arrow = hasattr(array, "__arrow_array__") and _pyarrow() is not None
    if rows is not None and not arrow:  # an Arrow column is sliced by its runs instead (hash_arrow)
        column = column.take(rows.positions)
        array = column.array
    digest.update(f"|{len(column) if rows is None else len(rows.positions)}|{column.dtype}|".encode())
    if isinstance(column.dtype, pandas.CategoricalDtype):
        digest.update(_contiguous(array.codes))
        _column(digest, pandas.Series(array.categories, copy=False))
    elif arrow:
        hash_arrow(digest, array, rows)
    elif isinstance(array, (pandas.arrays.NumpyExtensionArray, pandas.arrays.DatetimeArray,
                            pandas.arrays.TimedeltaArray)) and column.dtype.kind in "biufcmM":
        # Dates and durations as their int64 ticks (their unit and time zone are in the dtype
        # above): to_numpy() makes a tz-aware column Timestamp objects, a second per 3M rows.
        digest.update(_contiguous(array.asi8 if column.dtype.kind in "mM" else np.asarray(array)))
    elif hasattr(array, "_data") and hasattr(array, "_mask"):  # nullable Int64, boolean, Float64
        digest.update(_contiguous(array._data), _contiguous(array._mask))
    else:
        _objects(digest, column)


def _objects(digest: Digest, column: Any) -> None:
    """Python objects: strings through Arrow (~50 ns each), others through pandas' per-element
    hash, each on evenly spread rows when there are more than it can do in a few milliseconds."""
    import pandas

    pyarrow = _pyarrow()
    if pyarrow is not None:
        column = _spread(digest, column, MAX_TEXT_VALUES)
        try:
            hash_arrow(digest, pyarrow.array(column.to_numpy(dtype=object), from_pandas=True))
            return
        except (pyarrow.ArrowException, TypeError, ValueError):  # mixed types: not one Arrow type
            pass
    column = _spread(digest, column, MAX_OBJECT_VALUES)
    try:
        digest.update(_contiguous(pandas.util.hash_pandas_object(column, index=False).to_numpy()))
    except TypeError:  # unhashable values (dicts, lists): their pickle instead
        digest.update(pickle.dumps(column.tolist(), protocol=5))


@functools.lru_cache(maxsize=1)
def _pyarrow() -> Any:
    """pyarrow, a dependency of xpmagic; without it (a platform with no wheel) text goes through
    pandas' per-element hash, sampled sooner, rather than going without a fingerprint. Looked up
    once: a failed import searches the path again on every call, and this runs per column."""
    try:
        import pyarrow
    except ImportError:
        return None
    return pyarrow


def _spread(digest: Digest, column: Any, most: int) -> Any:
    if len(column) <= most:
        return column
    digest.sampled = True
    return column.iloc[::len(column) // most + 1]


def hash_arrow(digest: Digest, array: Any, rows: Rows | None = None) -> None:
    import pyarrow

    arrow = array if isinstance(array, (pyarrow.Array, pyarrow.ChunkedArray)) else pyarrow.array(array)
    pieces = [arrow] if rows is None else [arrow.slice(start, rows.length) for start in rows.starts]
    # A slice shares its parent's buffers and starts at an offset: concatenating makes a copy of
    # just its values, so the same values give the same bytes however they were cut (and a
    # sample's runs cost a copy of themselves, where taking rows one by one took 6 times longer).
    chunks = [chunk for piece in pieces for chunk in
              (piece.chunks if isinstance(piece, pyarrow.ChunkedArray) else [piece])]
    arrow = pyarrow.concat_arrays(chunks) if chunks else pyarrow.array([], type=arrow.type)
    digest.update(f"nulls{arrow.null_count}".encode())
    if arrow.null_count:
        digest.update(_contiguous(arrow.is_null().to_numpy(zero_copy_only=False)))
    for position, buffer in enumerate(arrow.buffers()):
        if buffer is not None and not (position == 0 and arrow.type.num_buffers > 1):  # validity: above
            digest.update(memoryview(buffer))


def _contiguous(array: Any) -> memoryview:
    return np.ascontiguousarray(array).data

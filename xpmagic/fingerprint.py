"""Cheap content fingerprints of values, for lineage and data provenance.

A fingerprint is a short hex digest of a value's content, so the same data
read in another session can be traced to the run that produced it. Large
arrays and frames are sampled (recorded as such) to keep a cell's overhead
small; a value we cannot hash gets a summary and no fingerprint, never an error.
"""

from __future__ import annotations

import array
import datetime
import decimal
import enum
import fractions
import functools
import pathlib
import pickle
import random
import sys
import types
import uuid
from dataclasses import dataclass, field
from typing import Any

import xxhash

from .recordhash import record_fields, record_summary, without_secrets

# Which way values are fingerprinted, recorded with each run (runs.fingerprint_scheme): digests
# of different schemes are not compared. 2: dates and durations by their ticks, containers of
# data element by element, models with the models and data inside them (estimatorhash.py).
# 3: pandas indexes (`features = X.columns`), polars frames, functools.partial and frames and arrays of
# classes derived in other packages (a GeoDataFrame), which had none.
# 4: configuration objects (dataclasses, argparse namespaces, scikit-learn's splitters and scorers:
# recordhash.py), pandas arrays (pd.Categorical), lists and dicts of more
# than 10,000 items (sampled), namedtuples pickle cannot find, bytearrays and arrays, which had none.
SCHEME = 7
# A scheme that only gave digests to values an earlier one could not hash: both agree wherever
# both made a digest, so their runs' data can still be compared (4: settings objects, 5: torch).
# 6 samples large values in runs of consecutive values: their digests (marked sampled) differ
# from those of 2 to 5, every other digest is the same (sampling_differs).
# 7 hashes an XGBoost, LightGBM or CatBoost model's trees (boosterhash.py): those models' digests
# (marked booster) differ from those of 2 to 6 (booster_hashing_differs); boosters, DMatrix,
# LightGBM Datasets, Arrow tables, Hugging Face datasets and statsmodels' models had none.
_ADDS_TO = {3: 2, 4: 2, 5: 2, 6: 2, 7: 2}
SAMPLE_RUNS = 256  # a sample reads this many runs of consecutive values, evenly spread
# Kinds whose summary is a class and its fields, which `show` prints and `diff` compares.
SETTING_KINDS = ("record", "module", "optimizer", "loader", "scheduler")


def digests_comparable(scheme_a: int, scheme_b: int) -> bool:
    """Whether runs fingerprinted with these schemes made the same digest of the same value
    (of a sampled one, only if not sampling_differs as well)."""
    return _ADDS_TO.get(scheme_a, scheme_a) == _ADDS_TO.get(scheme_b, scheme_b)


def sampling_differs(scheme_a: int | None, scheme_b: int | None) -> bool:
    """Whether one of the schemes sampled large values another way than the other."""
    return ((scheme_a or 1) >= 6) != ((scheme_b or 1) >= 6)


def booster_hashing_differs(scheme_a: int | None, scheme_b: int | None) -> bool:
    """Whether one of the schemes hashed an XGBoost or LightGBM model without its booster."""
    return ((scheme_a or 1) >= 7) != ((scheme_b or 1) >= 7)


DEFAULT_SAMPLE_BYTES = 8 * 1024 * 1024
_MAX_PICKLE_ITEMS = 10_000
_MAX_SAMPLED_DICT = 200_000  # listing its keys and values takes about 4 ms
_LARGE_TEXT = 1 << 20  # characters; a longer string is hashed as UTF-8 (_large_text)
_SKIPPED_TYPES = (types.ModuleType, type)
# Settings a notebook keeps in variables: DATA = Path("train.csv"), CUTOFF = date(2024, 1, 1).
_VALUE_TYPES = (pathlib.PurePath, datetime.date, datetime.time, datetime.timedelta, decimal.Decimal,
                fractions.Fraction, uuid.UUID, enum.Enum, range, slice)


@dataclass(frozen=True)
class Fingerprint:
    digest: str | None
    kind: str
    summary: dict[str, Any] = field(default_factory=dict)


def _hasher() -> Any:
    # xxh3 hashes at memory speed (~10 GB/s); fingerprints need no cryptographic strength
    return xxhash.xxh3_128()


def digest_bytes(*parts: bytes | memoryview) -> str:
    hasher = _hasher()
    for part in parts:
        hasher.update(part)
    return hasher.hexdigest()


def sample_runs(n: int, wanted: int) -> tuple[list[int], int]:
    """(starts, length) of the runs of consecutive positions that sample ``wanted`` of ``n``:
    the first at the start, the last at the end. One position in every k would read a cache
    line for each value, eight times the sample's bytes; a run reads only what it hashes."""
    runs = max(1, min(SAMPLE_RUNS, wanted))
    length = max(1, wanted // runs)
    if runs == 1 or n <= length:
        return [0], min(n, length)
    last = n - length
    return [last * i // (runs - 1) for i in range(runs)], length


def sample_positions(n: int, wanted: int) -> Any:
    """The positions of sample_runs, as one numpy array (to take rows of a frame)."""
    return run_positions(*sample_runs(n, wanted))


def run_positions(starts: list[int], length: int) -> Any:
    import numpy

    return (numpy.asarray(starts)[:, None] + numpy.arange(length)).reshape(-1)


def is_recordable(value: Any) -> bool:
    """Modules and classes are code, not data: they are never recorded as variables."""
    return not isinstance(value, _SKIPPED_TYPES)


def fingerprint(value: Any, sample_bytes: int = DEFAULT_SAMPLE_BYTES) -> Fingerprint:
    """Fingerprint any value; never raises."""
    try:
        return _fingerprint(value, sample_bytes)
    except Exception as exc:  # a value's own __eq__/__reduce__ may raise anything
        return Fingerprint(None, type(value).__name__, {"error": f"{type(exc).__name__}: {exc}"[:200]})


def _fingerprint(value: Any, sample_bytes: int) -> Fingerprint:
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return _scalar(value, sample_bytes)
    module = type(value).__module__.partition(".")[0]
    if module == "numpy" and is_ndarray(value):
        return _ndarray(value, sample_bytes)
    if module == "pandas":
        frame = _pandas(value, sample_bytes)
        if frame is not None:
            return frame
    if module == "scipy" and is_sparse(value):
        return _sparse(value, sample_bytes)
    if module == "xarray":
        from .xarrayhash import xarray_fingerprint  # each variable, coordinates too

        found = xarray_fingerprint(value, sample_bytes)
        if found is not None:
            return Fingerprint(found[0], found[1]["type"], found[1])
    if module == "polars":
        from .polarshash import polars_fingerprint  # through Arrow, as pandas' Arrow columns

        return polars_fingerprint(value, sample_bytes)
    if module in ("pyarrow", "datasets"):
        from . import arrowhash  # Arrow tables; Hugging Face datasets, which are Arrow tables

        found = (arrowhash.arrow_fingerprint if module == "pyarrow" else arrowhash.dataset_fingerprint)(
            value, sample_bytes)
        if found is not None:
            return found
    if module == "statsmodels":
        from .statsmodelshash import statsmodels_fingerprint  # models and fitted results: no estimator API

        found = statsmodels_fingerprint(value, sample_bytes)
        if found is not None:
            return found
    if module in ("xgboost", "lightgbm"):
        from .boosterhash import booster_fingerprint  # trees and data held in C++

        found = booster_fingerprint(value, sample_bytes)
        if found is not None:
            return found
    if hasattr(value, "get_params") and hasattr(value, "fit"):
        from .estimatorhash import estimator_fingerprint  # a model and the models and data inside it

        return estimator_fingerprint(value, sample_bytes)
    if isinstance(value, (types.FunctionType, types.MethodType)):
        return _function(value)
    if isinstance(value, functools.partial):
        return _partial(value, sample_bytes)
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return _container(value, sample_bytes)
    if isinstance(value, (bytearray, memoryview, array.array)):
        return _buffer(value)
    if module == "numpy" and getattr(value, "shape", None) == ():  # numpy scalars
        return Fingerprint(digest_bytes(repr(value).encode()), "scalar",
                           {"type": type(value).__name__, "value": repr(value)[:80]})
    if isinstance(value, random.Random) or (module == "numpy" and (hasattr(value, "bit_generator")
                                                                   or type(value).__name__ == "RandomState")):
        return _random_generator(value)
    if isinstance(value, _VALUE_TYPES):  # immutable, and their repr is their content
        return Fingerprint(digest_bytes(f"{type(value).__module__}.{type(value).__qualname__}:{value!r}".encode()),
                           "scalar", {"type": type(value).__name__, "value": repr(value)[:80]})
    torch_value = _torch(value, sample_bytes)  # by class: a network is often the notebook's own nn.Module
    if torch_value is not None:
        return torch_value
    subclassed = _subclassed_data(value, sample_bytes)  # a GeoDataFrame, an astropy Quantity
    if subclassed is not None:
        return subclassed
    fields = record_fields(value)
    if fields is not None:
        return _record(value, without_secrets(fields), sample_bytes)
    return Fingerprint(None, type(value).__name__,
                       {"type": f"{type(value).__module__}.{type(value).__qualname__}"})


def _torch(value: Any, sample_bytes: int) -> Fingerprint | None:
    if "torch" not in sys.modules:
        return None
    from . import torchhash

    kind = torchhash.torch_kind(value)
    if kind == "tensor":
        digest, sampled = torchhash.tensor_digest(value, sample_bytes)
        summary = torchhash.tensor_summary(value)
        if sampled:
            summary["sampled"] = True
        return Fingerprint(digest, "tensor", summary)
    if kind == "value":
        return Fingerprint(digest_bytes(f"torch:{value!r}".encode()), "scalar",
                           {"type": type(value).__name__, "value": repr(value)})
    if kind == "random":
        digest, summary = torchhash.generator_fingerprint(value)
        return Fingerprint(digest, "random", summary)
    makers = {"module": torchhash.module_fingerprint, "optimizer": torchhash.optimizer_fingerprint,
              "loader": torchhash.loader_fingerprint, "dataset": torchhash.dataset_fingerprint,
              "scheduler": torchhash.scheduler_fingerprint}
    if kind in makers:
        digest, summary = makers[kind](value, sample_bytes)
        return Fingerprint(digest, kind, summary)
    return None


def _subclassed_data(value: Any, sample_bytes: int) -> Fingerprint | None:
    """Frames and arrays whose class another package derived (GeoDataFrame from pandas' DataFrame):
    the dispatch above goes by module, which keeps the common case to a string comparison."""
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, (pandas.DataFrame, pandas.Series, pandas.Index)):
        return _pandas(value, sample_bytes)
    if is_ndarray(value):
        return _ndarray(value, sample_bytes)
    return None


def _scalar(value: Any, sample_bytes: int = DEFAULT_SAMPLE_BYTES) -> Fingerprint:
    if isinstance(value, str) and len(value) > _LARGE_TEXT:
        return _large_text(value, sample_bytes)
    raw = value if isinstance(value, bytes) else repr(value).encode()
    summary: dict[str, Any] = {"type": type(value).__name__}
    if isinstance(value, (str, bytes)):
        summary["len"] = len(value)
        if len(value) <= 80:
            summary["value"] = value if isinstance(value, str) else repr(value)
    else:
        summary["value"] = value if not isinstance(value, complex) else repr(value)
    return Fingerprint(xxhash.xxh3_128_hexdigest(type(value).__name__.encode() + b":" + raw), "scalar", summary)


def _large_text(text: str, sample_bytes: int) -> Fingerprint:
    """A long string (a file read into memory) by its UTF-8 bytes, not its repr: escaping
    100 MB of text costs half a second on every cell that reads it. Sampled like an array."""
    summary: dict[str, Any] = {"type": "str", "len": len(text)}
    if len(text) > sample_bytes:
        text = text[::len(text) // max(1, sample_bytes) + 1]
        summary["sampled"] = True
    raw = text.encode("utf-8", "surrogatepass")
    return Fingerprint(digest_bytes(b"str-utf8:", str(summary["len"]).encode(), raw), "scalar", summary)


def is_ndarray(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


def _ndarray(array: Any, sample_bytes: int) -> Fingerprint:
    summary: dict[str, Any] = {"shape": list(array.shape), "dtype": dtype_name(array.dtype)}
    if array.dtype.hasobject:
        items = array.reshape(-1)
        if items.size > _MAX_PICKLE_ITEMS * 10:  # pickling a million strings costs a tenth of a second
            items = items[::items.size // (_MAX_PICKLE_ITEMS * 10) + 1]
            summary["sampled"] = True
            return Fingerprint(_pickle_digest([list(array.shape), items.tolist()]), "ndarray", summary)
        return Fingerprint(_pickle_digest(array.tolist()), "ndarray", summary)
    if array.nbytes > sample_bytes:
        summary["sampled"] = True
    return Fingerprint(array_digest(array, sample_bytes), "ndarray", summary)


def _approx_bytes(rows: int, dtypes: list[Any]) -> int:
    """Rows times the width of a row: what decides the sample. (memory_usage() builds a Series,
    half the time of fingerprinting a small frame; a list of 2,000 frames took 1.8 s.)"""
    return rows * sum(getattr(dtype, "itemsize", 8) for dtype in dtypes)


def array_digest(array: Any, sample_bytes: int) -> str:
    """Digest of a numeric array's dtype, shape and bytes (of a sample, sample_runs in C
    order, when larger than ``sample_bytes``)."""
    import numpy

    header = f"{array.dtype.str}{array.shape}".encode()
    mask = numpy.ma.getmask(array)  # a masked array: which values are hidden is content too
    if mask is not numpy.ma.nomask:
        header += array_digest(numpy.asarray(mask), sample_bytes).encode()
    if array.nbytes <= sample_bytes:
        return digest_bytes(header, _raw(array))
    starts, length = sample_runs(array.size, max(1, sample_bytes // max(1, array.itemsize)))
    hasher = _hasher()
    hasher.update(header)
    if array.flags.c_contiguous:
        flat = array.reshape(-1)
        for start in starts:  # the same bytes as hashing the runs joined, without joining them
            hasher.update(_raw(flat[start:start + length]))
    else:  # a view (a transpose, X[:, :10]): gathered, never copied whole
        hasher.update(_raw(array.flat[run_positions(starts, length)]))
    return hasher.hexdigest()


def _raw(array: Any) -> memoryview:
    """The array's bytes; datetime64 and timedelta64 (which have no buffer) as their int64 ticks,
    their unit being in the dtype already hashed."""
    import numpy

    contiguous = numpy.ascontiguousarray(array)
    if contiguous.dtype.kind in "mM":
        contiguous = contiguous.view(numpy.int64)
    return contiguous.data


def is_sparse(value: Any) -> bool:
    """A scipy.sparse matrix or array (text features, one-hot encodings)."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(value)


def _sparse(matrix: Any, sample_bytes: int) -> Fingerprint:
    """Digest of the stored entries: for CSR/CSC/BSR their data, indices and pointers as stored, so
    the same matrix in another format is other content (the summary names the format)."""
    summary: dict[str, Any] = {"shape": list(matrix.shape), "dtype": dtype_name(matrix.dtype),
                               "format": matrix.format, "nnz": int(matrix.nnz)}
    if matrix.format not in ("csr", "csc", "bsr"):
        matrix = matrix.tocsr()
    parts = (matrix.data, matrix.indices, matrix.indptr)
    if sum(part.nbytes for part in parts) > sample_bytes:
        summary["sampled"] = True
    share = max(1, sample_bytes // 3)
    header = f"{summary['format']}{matrix.shape}".encode()
    return Fingerprint(digest_bytes(header, *(array_digest(part, share).encode() for part in parts)),
                       "sparse", summary)


_DTYPE_NAMES: dict[Any, str] = {}


def dtype_name(dtype: Any) -> str:
    """str(dtype), cached: numpy builds the name in Python on every call."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype)
    return name


def _pandas_dtype_name(dtype: Any) -> str:
    # numpy's only: hashing a CategoricalDtype, the cache's key, hashes all its categories
    return dtype_name(dtype) if type(dtype).__module__.startswith("numpy") else str(dtype)


def _pandas(value: Any, sample_bytes: int) -> Fingerprint | None:
    import pandas

    if isinstance(value, pandas.Index):
        return _pandas_index(value, sample_bytes)
    if isinstance(value, pandas.api.extensions.ExtensionArray):  # pd.Categorical(labels), pd.array([...])
        print_ = _pandas(pandas.Series(value, copy=False), sample_bytes)
        return None if print_ is None else Fingerprint(print_.digest, type(value).__name__, print_.summary)
    if not isinstance(value, (pandas.DataFrame, pandas.Series)):
        return None
    kind = "DataFrame" if isinstance(value, pandas.DataFrame) else "Series"
    summary: dict[str, Any] = {"shape": list(value.shape)}
    if kind == "DataFrame":
        names = list(map(str, value.columns.tolist()))  # tolist: iterating Arrow-backed names is slow
        frame_dtypes = value.dtypes.tolist()  # a Series each time it is asked for: once
        dtypes = [_pandas_dtype_name(t) for t in frame_dtypes]
        summary["columns"] = names[:50]
        summary["dtypes"] = dict(zip(names[:50], dtypes))
        meta = repr((names, dtypes)).encode()
    else:
        summary["dtype"] = str(value.dtype)
        meta = repr((str(value.name), str(value.dtype))).encode()
    from .framehash import Rows, frame_digest  # imports numpy: only once pandas is in use

    rows = None
    approx_bytes = _approx_bytes(len(value), frame_dtypes) if kind == "DataFrame" else value.nbytes
    if approx_bytes > sample_bytes and len(value) > 0:
        rows = Rows(len(value), max(1, len(value) * sample_bytes // approx_bytes))
    digest, sampled = frame_digest(value, meta, rows)
    if sampled:
        summary["sampled"] = True
    return Fingerprint(digest, kind, summary)


def _pandas_index(index: Any, sample_bytes: int) -> Fingerprint:
    """``features = X.columns`` or ``keep = df.index[mask]``: the values, level by level."""
    import pandas

    from .framehash import Rows, frame_digest

    summary: dict[str, Any] = {"len": len(index), "dtype": str(index.dtype)}
    if len(index) <= 20:
        summary["values"] = [str(v)[:40] for v in index]
    meta = repr((type(index).__name__, [str(n) for n in index.names], str(index.dtype))).encode()
    levels = pandas.DataFrame({level: index.get_level_values(level) for level in range(index.nlevels)})
    rows = None
    if index.nbytes > sample_bytes:
        rows = Rows(len(levels), max(1, len(levels) * sample_bytes // index.nbytes))
    digest, sampled = frame_digest(levels, meta, rows)
    if sampled:
        summary["sampled"] = True
    return Fingerprint(digest, type(index).__name__, summary)


def _function(func: Any) -> Fingerprint:
    code = getattr(func, "__code__", None)
    if code is None:
        return Fingerprint(None, "function", {"name": getattr(func, "__qualname__", "?")})
    hasher = _hasher()
    _hash_code(hasher, code)
    return Fingerprint(hasher.hexdigest(), "function", {"name": func.__qualname__})


def _partial(value: functools.partial, sample_bytes: int) -> Fingerprint:
    """``score = partial(f1_score, average="macro")``: the function and the arguments bound to it."""
    parts = [fingerprint(value.func, sample_bytes), fingerprint((value.args, value.keywords), sample_bytes)]
    summary = {"name": getattr(value.func, "__qualname__", type(value.func).__name__),
               "keywords": sorted(value.keywords)[:20]}
    if any(part.digest is None for part in parts):
        return Fingerprint(None, "partial", summary)
    return Fingerprint(digest_bytes(b"partial", *(part.digest.encode() for part in parts)), "partial", summary)


def _hash_code(hasher: Any, code: types.CodeType) -> None:
    """Bytecode, names and constants; a nested function's (or comprehension's) code by its own
    content, since its repr holds a memory address that differs in every session."""
    hasher.update(code.co_code)
    hasher.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _hash_code(hasher, const)
        else:
            hasher.update(_const_text(const).encode())


def _const_text(const: Any) -> str:
    """A constant's repr, with sets in a fixed order (``x in {'a', 'b'}`` compiles to a frozenset,
    whose repr order changes with each process's string hashing)."""
    if isinstance(const, frozenset):
        return "frozenset(" + repr(sorted(_const_text(c) for c in const)) + ")"
    if isinstance(const, tuple):
        return "(" + ",".join(_const_text(c) for c in const) + ")"
    return repr(const)


def _random_generator(value: Any) -> Fingerprint:
    """A random generator by its state: two seeded alike are the same value (their reprs
    differ by memory address), and one that has drawn numbers is no longer the same."""
    if isinstance(value, random.Random):
        state: Any = value.getstate()
    elif hasattr(value, "bit_generator"):  # numpy.random.Generator
        state = value.bit_generator.state
    else:  # numpy.random.RandomState
        state = value.get_state(legacy=False)
    return Fingerprint(_pickle_digest(state), "random", {"type": type(value).__name__})


def _buffer(value: bytearray | memoryview | array.array) -> Fingerprint:
    view = memoryview(value)
    return Fingerprint(digest_bytes(f"{type(value).__name__}:{view.format}:".encode(), view.cast("B")),
                       "buffer", {"type": type(value).__name__, "len": len(value)})


def _record(value: Any, fields: dict[str, Any], sample_bytes: int) -> Fingerprint:
    inner = fingerprint(fields, sample_bytes)
    summary = record_summary(value, fields)
    if inner.digest is None:
        return Fingerprint(None, "record", summary)
    if inner.summary.get("sampled"):
        summary["sampled"] = True
    return Fingerprint(digest_bytes(f"record:{summary['type']}:".encode(), inner.digest.encode()), "record", summary)


def _container(value: Any, sample_bytes: int) -> Fingerprint:
    from .containerhash import NoDigest, TooLarge, container_digest, holds_only_plain_values

    summary: dict[str, Any] = {"type": type(value).__name__, "len": len(value)}
    if len(value) > _MAX_PICKLE_ITEMS:
        sample = _sample_of_large(value)
        if sample is None:
            return Fingerprint(None, type(value).__name__, {**summary, "too_large": True})
        summary["sampled"] = True
        value = sample
    if isinstance(value, (set, frozenset)):  # iteration order changes with each process's string hashing
        value = (type(value).__name__, sorted(value, key=repr))
    if holds_only_plain_values(value, _MAX_PICKLE_ITEMS):
        digest = _pickle_digest(value)
        if digest is not None:
            return Fingerprint(digest, summary["type"], summary)
        # else a class pickle cannot find by name (namedtuple("P", ...) bound to another name)
    try:  # arrays, frames, nested sets: each element by its own fingerprint (containerhash.py)
        digest, sampled = container_digest(value, lambda item: fingerprint(item, sample_bytes), _MAX_PICKLE_ITEMS)
    except TooLarge:
        return Fingerprint(None, summary["type"], {**summary, "too_large": True})
    except NoDigest:
        return Fingerprint(None, summary["type"], summary)
    if sampled:
        summary["sampled"] = True
    return Fingerprint(digest, summary["type"], summary)


def _sample_of_large(value: Any) -> Any:
    """Every k-th item of a list or tuple, or of a dict of up to _MAX_SAMPLED_DICT items (a
    vocabulary): what is hashed, with the length, in place of the whole. Sets have no order
    that holds across processes, and bigger dicts cost too much to walk: None."""
    step = len(value) // _MAX_PICKLE_ITEMS + 1
    if isinstance(value, (list, tuple)):
        return ("sampled", type(value).__name__, len(value), list(value[::step]))
    if isinstance(value, dict) and len(value) <= _MAX_SAMPLED_DICT:
        return ("sampled", type(value).__name__, len(value), list(value)[::step], list(value.values())[::step])
    return None


def _pickle_digest(value: Any) -> str | None:
    try:
        return digest_bytes(pickle.dumps(value, protocol=5))
    except Exception:
        return None


def why_unhashed(summary: dict[str, Any]) -> str:
    """What the summary of a value with no fingerprint says about why: the reason a hasher gave,
    the error hashing raised, or the value's type (an object xpmagic has no hasher for)."""
    return str(summary.get("unhashed") or summary.get("error") or summary.get("type") or "no hasher for it")


def is_weak_for_lineage(print_: Fingerprint) -> bool:
    """Small scalars, and settings objects built alike in many places (`Config()`), collide by
    chance across sessions; only trust them with the same name."""
    return print_.kind in ("scalar", "record")

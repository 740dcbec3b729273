"""Meta-features of a data set: what makes two learning tasks alike.

A compact, fast set (milliseconds on 2,000 rows) rather than a full meta-feature
library, because ``xp.dataset`` runs inside the user's cell: sizes, class balance,
feature types and missingness, simple statistics, and two cheap landmarkers (a
depth-1 tree and naive Bayes, 3-fold cross-validated on at most 2,000 rows). Only the
sizes and the class balance read every row: the rest reads an evenly spread sample, so
a million rows cost about what 20,000 do. The sample also shrinks as features grow (at most
2 million values, at least 1,000 rows): 10,000 rows of 2,000 features took 4 s.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

LANDMARK_ROWS = 2000
STATISTICS_ROWS = 20_000  # rows the feature statistics and missing share are computed on
SAMPLE_CELLS = 2_000_000  # values either sample holds at most, down to MIN_SAMPLE_ROWS rows
MIN_SAMPLE_ROWS = 1000
SPARSE_DENSE_CELLS = 2_000_000  # a sparse matrix's sample is made dense for the landmarkers up to this size
# Dimensions of the similarity vector, each scaled to a comparable range.
VECTOR_KEYS = ("log_rows", "log_features", "log_classes", "class_entropy", "minority_share",
               "share_categorical", "share_missing", "mean_abs_skew", "stump_accuracy", "nb_accuracy")
_SCALES = {"log_rows": 3.0, "log_features": 2.0, "log_classes": 1.5, "mean_abs_skew": 2.0}


def meta_features(X: Any, y: Any = None) -> dict[str, Any]:
    """Meta-features of X (and y); never raises for odd data, leaves out what it cannot compute.

    Quietly: numpy's and scikit-learn's warnings about odd data (an all-missing column, one
    class per fold) would land in the person's cell output."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _meta_features(X, y)


def _meta_features(X: Any, y: Any) -> dict[str, Any]:
    import numpy as np

    from .fingerprint import is_sparse

    if is_sparse(X):
        return _sparse_meta_features(X, y)
    data = _table(X)
    n_rows, n_features = data.shape
    sample = _rows(data, _spread_index(n_rows, _sample_rows(STATISTICS_ROWS, n_features)))
    categorical = [c for c in sample.columns if not _is_numeric(sample[c])]  # a column's type is the sample's
    numeric = _numeric(sample, categorical)
    meta: dict[str, Any] = {
        "rows": int(n_rows), "features": int(n_features),
        "share_categorical": len(categorical) / n_features if n_features else 0.0,
        "share_missing": float(sample.isna().to_numpy().mean()) if n_rows and n_features else 0.0,
    }
    if numeric.size:
        with np.errstate(all="ignore"):
            centred = numeric - np.nanmean(numeric, axis=0)
            std = np.nanstd(numeric, axis=0)
            std[std == 0] = 1.0
            z = centred / std
            meta["mean_abs_skew"] = float(np.nanmean(np.abs(np.nanmean(z ** 3, axis=0))))
            meta["mean_kurtosis"] = float(np.nanmean(np.nanmean(z ** 4, axis=0) - 3))
    if y is not None:
        meta.update(_target_features(np.asarray(y)))
        if meta.get("task") == "classification" and numeric.size and meta["classes"] > 1:
            index = _spread_index(n_rows, _sample_rows(LANDMARK_ROWS, n_features))
            labels = np.asarray(y) if index is None else np.asarray(y)[index]
            meta.update(_landmarkers(np.nan_to_num(_numeric(_rows(data, index), categorical)), labels))
    return meta


def _sparse_meta_features(X: Any, y: Any) -> dict[str, Any]:
    """Sizes, density and the class balance; the landmarkers too when their sample of rows is
    small enough to make dense (at most SPARSE_DENSE_CELLS cells)."""
    import numpy as np

    n_rows, n_features = X.shape
    meta: dict[str, Any] = {"rows": int(n_rows), "features": int(n_features), "share_categorical": 0.0,
                            "share_missing": 0.0, "density": X.nnz / max(1, n_rows * n_features)}
    if y is None:
        return meta
    meta.update(_target_features(np.asarray(y)))
    index = _spread_index(n_rows, LANDMARK_ROWS)
    sample_size = n_rows if index is None else len(index)
    if meta.get("task") == "classification" and meta["classes"] > 1 and sample_size * n_features <= SPARSE_DENSE_CELLS:
        rows = X.tocsr() if index is None else X.tocsr()[index]
        labels = np.asarray(y) if index is None else np.asarray(y)[index]
        meta.update(_landmarkers(np.nan_to_num(np.asarray(rows.todense(), dtype=float)), labels))
    return meta


def _sample_rows(most: int, n_features: int) -> int:
    """Rows of a sample: ``most``, fewer for wide data, so its values stay within SAMPLE_CELLS."""
    return min(most, max(MIN_SAMPLE_ROWS, SAMPLE_CELLS // max(1, n_features)))


def _spread_index(n_rows: int, most: int) -> Any:
    """At most ``most`` row positions spread evenly from first to last (deterministic), or None for all."""
    import numpy as np

    return None if n_rows <= most else np.linspace(0, n_rows - 1, most).astype(int)


def _rows(data: Any, index: Any) -> Any:
    """The rows at ``index`` (None: all) as a DataFrame; an array is copied into one only for those rows."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data if index is None else data.iloc[index]
    return pd.DataFrame(data if index is None else data[index])


def _numeric(frame: Any, categorical: list) -> Any:
    import numpy as np

    if frame.shape[1] == len(categorical):
        return np.empty((len(frame), 0))
    return frame.drop(columns=categorical).to_numpy(dtype=float)


def similarity_vector(meta: dict[str, Any]) -> list[float]:
    values = {
        "log_rows": math.log10(1 + meta.get("rows", 0)),
        "log_features": math.log10(1 + meta.get("features", 0)),
        "log_classes": math.log2(1 + meta.get("classes", 0)),
        "class_entropy": meta.get("class_entropy", 0.0),
        "minority_share": meta.get("minority_share", 0.0),
        "share_categorical": meta.get("share_categorical", 0.0),
        "share_missing": meta.get("share_missing", 0.0),
        "mean_abs_skew": min(meta.get("mean_abs_skew", 0.0), 10.0),
        "stump_accuracy": meta.get("stump_accuracy", 0.5),
        "nb_accuracy": meta.get("nb_accuracy", 0.5),
    }
    return [values[k] / _SCALES.get(k, 1.0) for k in VECTOR_KEYS]


def distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    return math.dist(similarity_vector(a), similarity_vector(b))


# Each similarity dimension as people read it: label, the meta-feature it comes from, format.
_LABELS = {
    "log_rows": ("rows", "rows", "{:,.0f}"),
    "log_features": ("features", "features", "{:,.0f}"),
    "log_classes": ("classes", "classes", "{:.0f}"),
    "class_entropy": ("class entropy", "class_entropy", "{:.2f}"),
    "minority_share": ("minority class share", "minority_share", "{:.2f}"),
    "share_categorical": ("categorical share", "share_categorical", "{:.2f}"),
    "share_missing": ("missing share", "share_missing", "{:.2f}"),
    "mean_abs_skew": ("skew", "mean_abs_skew", "{:.2f}"),
    "stump_accuracy": ("stump accuracy", "stump_accuracy", "{:.2f}"),
    "nb_accuracy": ("naive Bayes accuracy", "nb_accuracy", "{:.2f}"),
}


def explain_distance(a: dict[str, Any], b: dict[str, Any], top: int = 2) -> str:
    """Why two tasks are as close as they are: the meta-features that differ most, with both
    values (a, then b), e.g. 'differs most in rows (178 vs 2,000) and stump accuracy (0.58 vs 0.91)'."""
    gaps = sorted(((abs(x - y), key) for key, x, y in zip(VECTOR_KEYS, similarity_vector(a), similarity_vector(b))),
                  reverse=True)
    parts = []
    for gap, key in gaps[:top]:
        if gap < 0.01:
            break
        label, name, fmt = _LABELS[key]
        left, right = a.get(name), b.get(name)
        shown = (f" ({fmt.format(left)} vs {fmt.format(right)})"
                 if isinstance(left, (int, float)) and isinstance(right, (int, float)) else "")
        parts.append(label + shown)
    return "differs most in " + " and ".join(parts) if parts else "alike in every meta-feature"


def _table(X: Any) -> Any:
    """X as a DataFrame as given, or as a 2-D array (not yet a frame: that would copy every row)."""
    import numpy as np
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X)
    if array.ndim == 1:
        return array.reshape(-1, 1)
    return array.reshape(len(array), -1) if array.ndim > 2 else array  # images: one feature per pixel


def _is_numeric(column: Any) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _target_features(y: Any) -> dict[str, Any]:
    import numpy as np

    values, counts = np.unique(y[~_isnan(y)] if y.dtype.kind == "f" else y, return_counts=True)
    discrete = y.dtype.kind in "iubOSU" or (y.dtype.kind == "f" and np.all(np.mod(values, 1) == 0))
    if not discrete or len(values) > 100:
        return {"task": "regression", "classes": 0}
    shares = counts / counts.sum()
    entropy = float(-(shares * np.log2(shares)).sum())
    return {"task": "classification", "classes": int(len(values)),
            "class_entropy": entropy / math.log2(len(values)) if len(values) > 1 else 0.0,
            "minority_share": float(shares.min())}


def _isnan(y: Any) -> Any:
    import numpy as np

    return np.isnan(y)


def _landmarkers(X: Any, y: Any) -> dict[str, float]:
    try:
        from sklearn.model_selection import cross_val_score
        from sklearn.naive_bayes import GaussianNB
        from sklearn.tree import DecisionTreeClassifier
    except ImportError:
        return {}
    import numpy as np

    _, counts = np.unique(y, return_counts=True)
    folds = int(min(3, counts.min()))
    if folds < 2:
        return {}
    result = {}
    for name, model in (("stump_accuracy", DecisionTreeClassifier(max_depth=1, random_state=0)),
                        ("nb_accuracy", GaussianNB())):
        try:
            result[name] = float(cross_val_score(model, X, y, cv=folds).mean())
        except Exception:
            continue
    return result

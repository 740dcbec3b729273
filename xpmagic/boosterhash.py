"""Fingerprints of the gradient-boosting libraries' own objects: XGBoost's and LightGBM's
boosters and the containers they train from (DMatrix, Dataset), and CatBoost's trees.

A booster keeps its trees in C++, where neither the estimator walk (estimatorhash) nor pickling's
state reaches cheaply, so an XGBClassifier or LGBMClassifier fitted on other data kept its
fingerprint, and a booster from ``xgb.train`` had none. A booster is hashed from its trees as the
library serializes them: every round of a small model; of a larger one, the first, middle and
last rounds (as a forest's trees are sampled), which another training set or seed changes.

A DMatrix is hashed from its labels, weights, feature names and a sample of its rows (sliced
out in C++; reading all rows back costs 0.4 s per million). A LightGBM Dataset is its raw data,
which LightGBM frees once it has binned it; the digest taken before is kept for that object, so
training on a Dataset does not make it look changed (a label set after that is not seen).
"""

from __future__ import annotations

import weakref
from typing import Any

import xxhash

from .fingerprint import Fingerprint, array_digest, fingerprint, sample_positions

ALL_ROUNDS_UP_TO = 128  # about 1 ms to serialize at depth 6; beyond, rounds are sampled
SAMPLED_ROUNDS = 3  # the first, the middle and the last
SAMPLED_ROWS = 4096  # of a DMatrix, in runs of consecutive rows (fingerprint.sample_runs)
_DIGEST_OF_DATASET: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # lightgbm.Dataset -> digest


def booster_fingerprint(value: Any, sample_bytes: int) -> Fingerprint | None:
    """The fingerprint of an XGBoost or LightGBM booster or training container; None for
    other objects of those libraries."""
    module = type(value).__module__.partition(".")[0]
    if module == "xgboost":
        import xgboost

        if isinstance(value, xgboost.Booster):
            return _xgboost_booster(value)
        if isinstance(value, xgboost.QuantileDMatrix):
            return _unhashed_matrix(value, "a QuantileDMatrix keeps only binned values, and cannot be sliced")
        if isinstance(value, xgboost.DMatrix):
            return _dmatrix(value, sample_bytes)
    if module == "lightgbm":
        import lightgbm

        if isinstance(value, lightgbm.Booster):
            return _lightgbm_booster(value)
        if isinstance(value, lightgbm.Dataset):
            return _lightgbm_dataset(value, sample_bytes)
    return None


def is_booster_library(value: Any) -> bool:
    return type(value).__module__.partition(".")[0] in ("xgboost", "lightgbm")


def catboost_trees(model: Any) -> str | None:
    """A fitted CatBoost model's trees (None before fitting): every leaf value and leaf count,
    and the splits of the first, middle and last tree. Its own serialization is no digest: it
    differs between two fits of the same model."""
    if type(model).__module__.partition(".")[0] != "catboost" or not model.is_fitted():
        return None
    trees = model.tree_count_
    hasher = xxhash.xxh3_128(f"catboost:{trees}".encode())
    for values in (model.get_leaf_values(), model.get_tree_leaf_counts()):
        hasher.update(array_digest(values, 1 << 62).encode())
    for tree in sampled_rounds(trees):
        hasher.update(repr(model._get_tree_splits(tree, None)).encode())
    return hasher.hexdigest()


def sampled_rounds(rounds: int) -> list[int]:
    if rounds <= SAMPLED_ROUNDS:
        return list(range(rounds))
    return [round(i * (rounds - 1) / (SAMPLED_ROUNDS - 1)) for i in range(SAMPLED_ROUNDS)]


# -- XGBoost -------------------------------------------------------------------------------------
def _xgboost_booster(booster: Any) -> Fingerprint:
    rounds = booster.num_boosted_rounds()
    summary: dict[str, Any] = {"type": "xgboost.Booster", "rounds": rounds, "features": booster.num_features()}
    hasher = xxhash.xxh3_128(f"xgboost.Booster:{rounds}:{summary['features']}".encode())
    parts = None
    if rounds > ALL_ROUNDS_UP_TO:
        parts = _xgboost_rounds(booster, sampled_rounds(rounds))
    if parts is None:
        parts = [booster.save_raw(raw_format="ubj")]  # the model's JSON, as binary: trees and learner
    else:
        summary["sampled"] = True
    for part in parts:
        hasher.update(part)
    return Fingerprint(hasher.hexdigest(), "model", summary)


def _xgboost_rounds(booster: Any, rounds: list[int]) -> list[bytes] | None:
    """Each chosen round as its own model; None where slicing is not supported (a linear booster)."""
    import xgboost

    try:
        return [booster[i:i + 1].save_raw(raw_format="ubj") for i in rounds]
    except xgboost.core.XGBoostError:
        return None


def _dmatrix(matrix: Any, sample_bytes: int) -> Fingerprint:
    rows, columns = matrix.num_row(), matrix.num_col()
    summary: dict[str, Any] = {"type": "xgboost.DMatrix", "shape": [rows, columns]}
    hasher = xxhash.xxh3_128(f"xgboost.DMatrix:{rows}:{columns}".encode())
    hasher.update(repr((matrix.feature_names, matrix.feature_types)).encode())
    for field in ("label", "weight", "base_margin", "label_lower_bound", "label_upper_bound"):
        hasher.update(array_digest(matrix.get_float_info(field), sample_bytes).encode())
    hasher.update(array_digest(matrix.get_uint_info("group_ptr"), sample_bytes).encode())
    sample = matrix
    if rows > SAMPLED_ROWS:
        sample = matrix.slice(sample_positions(rows, SAMPLED_ROWS))
        summary["sampled"] = True
    data = sample.get_data()  # CSR: missing values are not stored
    for part in (data.data, data.indices, data.indptr):
        hasher.update(array_digest(part, sample_bytes).encode())
    return Fingerprint(hasher.hexdigest(), "data", summary)


def _unhashed_matrix(matrix: Any, why: str) -> Fingerprint:
    return Fingerprint(None, "data", {"type": f"xgboost.{type(matrix).__name__}",
                                      "shape": [matrix.num_row(), matrix.num_col()], "unhashed": why})


# -- LightGBM ------------------------------------------------------------------------------------
def _lightgbm_booster(booster: Any) -> Fingerprint:
    rounds = booster.current_iteration()
    summary: dict[str, Any] = {"type": "lightgbm.Booster", "rounds": rounds, "features": booster.num_feature()}
    hasher = xxhash.xxh3_128(f"lightgbm.Booster:{rounds}:{summary['features']}".encode())
    chosen = list(range(rounds)) if rounds <= SAMPLED_ROUNDS * 3 else sampled_rounds(rounds)
    if len(chosen) < rounds:
        summary["sampled"] = True
    texts = [booster.model_to_string(start_iteration=i, num_iteration=1) for i in chosen] or [booster.model_to_string()]
    for text in texts:
        hasher.update(_without_parameters(text).encode())
    return Fingerprint(hasher.hexdigest(), "model", summary)


def _without_parameters(model_text: str) -> str:
    """The model's text without its training parameters, which hold settings such as the number of
    threads or verbosity that do not change the trees (those that do are in the trees)."""
    start = model_text.find("\nparameters:\n")
    end = model_text.find("end of parameters", start)
    if start < 0 or end < 0:
        return model_text
    return model_text[:start] + model_text[end:]


def _lightgbm_dataset(dataset: Any, sample_bytes: int) -> Fingerprint:
    summary: dict[str, Any] = {"type": "lightgbm.Dataset"}
    if dataset.data is None:  # built, and its raw data freed: what it was before, if it was seen
        digest = _DIGEST_OF_DATASET.get(dataset)
        if digest is None:
            summary["unhashed"] = "LightGBM freed its raw data when it built the Dataset (free_raw_data=True)"
        return Fingerprint(digest, "data", summary)
    data = fingerprint(dataset.data, sample_bytes)
    if data.digest is None:
        return Fingerprint(None, "data", {**summary, "unhashed": f"its data has no fingerprint ({data.kind})"})
    fields = (dataset.label, dataset.weight, dataset.group, dataset.init_score, dataset.feature_name,
              dataset.categorical_feature, dataset.params)  # as given: building converts them
    key = f"lightgbm.Dataset:{data.digest}:{fingerprint(fields, sample_bytes).digest}"
    digest = xxhash.xxh3_128_hexdigest(key.encode())
    _DIGEST_OF_DATASET[dataset] = digest
    return Fingerprint(digest, "data", summary)


# -- xp.dataset ----------------------------------------------------------------------------------
def unpacked_training_data(X: Any, y: Any) -> tuple[Any, Any]:
    """A DMatrix or LightGBM Dataset given to xp.dataset, as the rows and labels it holds (xp.dataset
    hashes all of them, and takes meta-features from them); other values unchanged."""
    if not is_booster_library(X):
        return X, y
    import_name = type(X).__module__.partition(".")[0]
    if import_name == "xgboost":
        import xgboost

        if isinstance(X, xgboost.QuantileDMatrix):
            raise ValueError("a QuantileDMatrix keeps only binned values: pass the arrays it was built from, "
                             "xp.dataset(X, y)")
        if isinstance(X, xgboost.DMatrix):
            labels = X.get_label()
            return X.get_data(), (labels if len(labels) else None) if y is None else y
    else:
        import lightgbm

        if isinstance(X, lightgbm.Dataset):
            if X.data is None:
                raise ValueError("LightGBM freed this Dataset's raw data when it built it: call xp.dataset before "
                                 "training, pass the arrays it was built from, or build it with free_raw_data=False")
            return X.data, X.label if y is None else y
    return X, y

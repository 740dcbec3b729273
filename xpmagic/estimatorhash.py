"""Fingerprints of models: scikit-learn's estimator API (get_params and fit) and what it holds.

An estimator is its class, its parameters and its fitted state. Parameters are hashed by repr,
without memory addresses. Fitted state is what fitting wrote: attributes ending in ``_`` and
private arrays (a nearest-neighbours model keeps its training data in ``_fit_X``), and the
models inside a model: a forest's trees, a boosting model's trees (``_predictors``), the steps of
a pipeline, a search's best estimator, an XGBoost or LightGBM model's booster (boosterhash).
Before, those were hashed by type and length only, so a forest or a pipeline fitted on other data
kept its fingerprint.

Ensembles are sampled: a forest fitted on other data, or with another seed, changes every tree,
so a few evenly spread members show it, where hashing 500 trees would cost more than a cell.
A tree's structure (scikit-learn's Cython ``Tree``) is hashed from the arrays of its state.
"""

from __future__ import annotations

import re
from typing import Any

from .boosterhash import catboost_trees, is_booster_library
from .fingerprint import Fingerprint, array_digest, fingerprint, is_ndarray

ALL_MEMBERS_UP_TO = 8  # a pipeline's steps, a voting ensemble: every member
SAMPLED_MEMBERS = 3  # of a larger ensemble: the first, the middle and the last
MAX_DEPTH = 6
MAX_PARTS = 400  # bounds the work on deeply nested models
_PRIVATE_MODELS = ("_predictors", "_Booster")  # HistGradientBoosting's trees; XGBoost's and LightGBM's booster
_TIMING = re.compile(r"(^|_)times?(_|$)")  # refit_time_, cv_results_'s mean_fit_time: not content

_PARAM_NAMES: dict[type, tuple[str, ...] | None] = {}
# "<function f at 0x7f...>" in a parameter's repr (score_func=f): the address changes every session.
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def is_estimator(value: Any) -> bool:
    return hasattr(value, "get_params") and hasattr(value, "fit") and not isinstance(value, type)


def estimator_fingerprint(estimator: Any, sample_bytes: int) -> Fingerprint:
    walk = _Walk(sample_bytes)
    params = walk.params_text(estimator)
    digest = walk.estimator(estimator, 0, params)
    summary: dict[str, Any] = {
        "class": type(estimator).__name__,
        "params": {k: text[:60] for k, text in params.items()},
        "fitted": walk.fitted,  # a pipeline is fitted when its steps are
    }
    if walk.sampled:
        summary["sampled"] = True
    if walk.booster:
        summary["booster"] = True  # hashed with it since fingerprint scheme 7
    return Fingerprint(digest, "estimator", summary)


def _estimator_params(estimator: Any) -> dict[str, Any]:
    """get_params(deep=False), without re-inspecting the class signature every time."""
    cls = type(estimator)
    if cls not in _PARAM_NAMES:
        getter = getattr(cls, "_get_param_names", None)
        try:
            _PARAM_NAMES[cls] = tuple(getter()) if getter is not None else None
        except Exception:
            _PARAM_NAMES[cls] = None
    names = _PARAM_NAMES[cls]
    if names is None:
        return estimator.get_params(deep=False)
    return {name: getattr(estimator, name, None) for name in names}


def _holds_models(value: Any) -> bool:
    """A parameter that is a model, or a list of them (a pipeline's (name, model) steps)."""
    if is_estimator(value):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_models(item) for item in value[:ALL_MEMBERS_UP_TO])
    return False


class _Walk:
    def __init__(self, sample_bytes: int):
        self.sample_bytes = sample_bytes
        self.parts_left = MAX_PARTS
        self.sampled = False
        self.fitted = False  # found state that fitting wrote, at any depth
        self.booster = False  # found an XGBoost or LightGBM booster

    def params_text(self, estimator: Any) -> dict[str, str]:
        return {name: _ADDRESS.sub("", repr(value)) for name, value in _estimator_params(estimator).items()}

    def estimator(self, estimator: Any, depth: int, params: dict[str, str] | None = None) -> str:
        """Class, parameters (``params``: the outer model's only; an inner model's are in the
        outer one's repr or derived from it, as a forest's trees are) and fitted state."""
        hasher = _hasher()
        hasher.update(f"{type(estimator).__module__}.{type(estimator).__qualname__}".encode())
        state = vars(estimator)
        if params is None and "tree_" in state:  # a member of a forest: the tree it grew is all it adds
            self.fitted = True
            hasher.update(self.part(state["tree_"], depth + 1).encode())
            return hasher.hexdigest()
        if params is not None:
            hasher.update(repr(sorted(params.items())).encode())
        parts = []
        for name in sorted(state):  # one pass: scikit-learn keeps parameters as attributes too
            value = state[name]
            if name[-1] == "_" and name[0] != "_":  # fitted
                self.fitted = True
                if not _TIMING.search(name):
                    parts.append(f"{name}={self.part(value, depth + 1)}")
            elif name[0] == "_":  # private state that is data, or models
                if name in _PRIVATE_MODELS or (is_ndarray(value) and not value.dtype.hasobject):
                    parts.append(f"{name}={self.part(value, depth + 1)}")
            elif (isinstance(value, (list, tuple)) or hasattr(value, "fit")) and _holds_models(value):
                # a pipeline's steps: their fitted state, which the parameters' repr does not show
                parts.append(f"{name}:{self.part(value, depth + 1)}")
        trees = catboost_trees(estimator) if type(estimator).__module__.startswith("catboost") else None
        if trees is not None:  # CatBoost keeps its trees in C++, out of the walk's reach
            self.booster = self.fitted = True
            parts.append(f"trees={trees}")
        hasher.update(";".join(parts).encode())
        return hasher.hexdigest()

    def part(self, value: Any, depth: int) -> str:
        self.parts_left -= 1
        if depth > MAX_DEPTH or self.parts_left < 0:
            self.sampled = True
            return type(value).__name__
        if value is None or isinstance(value, (bool, int, float, str, bytes)):
            return f"{type(value).__name__}:{value!r}"
        if is_ndarray(value):
            if not value.dtype.hasobject:
                self.sampled = self.sampled or value.nbytes > self.sample_bytes
                return array_digest(value, self.sample_bytes)
            return f"array{value.shape}:{self.members(list(value.reshape(-1)), depth)}"  # a boosting model's trees
        if is_estimator(value):
            return self.estimator(value, depth)
        if isinstance(value, (list, tuple)):
            return f"{type(value).__name__}:{self.members(list(value), depth)}"
        if is_booster_library(value):  # XGBClassifier's booster: its trees are in C++
            self.booster = True
            print_ = fingerprint(value, self.sample_bytes)
            self.sampled = self.sampled or bool(print_.summary.get("sampled"))
            return str(print_.digest)
        if isinstance(value, dict):  # cv_results_: not its timings, which differ in every fit
            value = {key: item for key, item in value.items() if not _TIMING.search(str(key))}
            print_ = fingerprint(value, self.sample_bytes)
            self.sampled = self.sampled or bool(print_.summary.get("sampled"))
            return str(print_.digest)
        return self.object_state(value, depth)

    def members(self, items: list[Any], depth: int) -> str:
        if len(items) <= ALL_MEMBERS_UP_TO:
            chosen = items
        else:
            self.sampled = True
            last = len(items) - 1
            chosen = [items[round(i * last / (SAMPLED_MEMBERS - 1))] for i in range(SAMPLED_MEMBERS)]
        return f"{len(items)}[" + ",".join(self.part(item, depth + 1) for item in chosen) + "]"

    def object_state(self, value: Any, depth: int) -> str:
        """A tree (Cython, pickled through its state), a KD-tree, a predictor: the data in its state."""
        name = type(value).__name__
        try:
            state = value.__getstate__()
        except Exception:
            return name
        if isinstance(state, dict):
            data = [(key, item) for key, item in sorted(state.items(), key=lambda kv: str(kv[0]))
                    if is_ndarray(item) or isinstance(item, (bool, int, float, str, type(None)))]
        elif isinstance(state, tuple):
            data = [(str(i), item) for i, item in enumerate(state) if is_ndarray(item)]
        else:
            return name
        return name + "{" + ",".join(f"{key}={self.part(item, depth + 1)}" for key, item in data) + "}"


def _hasher() -> Any:
    import xxhash

    return xxhash.xxh3_128()

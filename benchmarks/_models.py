"""The model families and search spaces of the transfer benchmark (benchmarks.md section 4).

A configuration is a point in coordinate space (log10 or log2 of each parameter), so
distances and table look-ups treat every parameter on its natural scale.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
N_CONFIGS = 128


@dataclass(frozen=True)
class Dim:
    name: str            # the estimator's parameter
    key: str             # the coordinate's name in the simulated Optuna study
    lo: float            # coordinate range
    hi: float
    base: float = 10.0
    integer: bool = False

    def value(self, coord: float) -> Any:
        value = self.base ** coord
        return int(round(value)) if self.integer else value

    def coord(self, value: float) -> float:
        return math.log(value, self.base)


@dataclass(frozen=True)
class Model:
    key: str
    family: str                      # the estimator class, as xpmagic's knowledge names it
    dims: tuple[Dim, ...]
    default: tuple[float, ...]       # the library's default configuration, in coordinates
    build: Callable[[dict[str, Any]], Any]

    @property
    def cache(self) -> str:
        suffix = "" if self.key == "svc" else f"_{self.key}"  # the SVC table predates the others
        return os.path.join(_HERE, ".cache", f"transfer_table{suffix}.json")

    @property
    def scale(self) -> np.ndarray:
        return np.array([d.hi - d.lo for d in self.dims])

    def configurations(self) -> np.ndarray:
        from scipy.stats import qmc

        unit = qmc.Sobol(d=len(self.dims), scramble=True, seed=0).random(N_CONFIGS)
        return np.column_stack([d.lo + unit[:, i] * (d.hi - d.lo) for i, d in enumerate(self.dims)])

    def to_config(self, coords: Any) -> dict[str, Any]:
        return {d.name: d.value(c) for d, c in zip(self.dims, coords)}

    def to_coords(self, config: dict[str, Any]) -> tuple[float, ...]:
        return tuple(d.coord(config[d.name]) for d in self.dims)

    def specs(self) -> dict[str, Any]:
        from xpmagic.records import ParamSpec

        return {d.name: ParamSpec(d.name, d.value(c), d.value(d.lo), d.value(d.hi), True)
                for d, c in zip(self.dims, self.default)}


def _svc(config: dict[str, Any]) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), SVC(**config))


def _hgb(config: dict[str, Any]) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=50, early_stopping=False, random_state=0, **config)


SVC_MODEL = Model("svc", "SVC", (Dim("C", "log_c", -3.0, 3.0), Dim("gamma", "log_gamma", -4.0, 1.0)),
                  default=(0.0, math.log10(1.0 / 10)), build=_svc)  # C=1, gamma ~ 'scale' when standardized
HGB_MODEL = Model("hgb", "HistGradientBoostingClassifier",
                  (Dim("learning_rate", "log_learning_rate", -2.5, 0.0),
                   Dim("max_leaf_nodes", "log2_max_leaf_nodes", 2.0, 7.0, base=2.0, integer=True),
                   Dim("min_samples_leaf", "log2_min_samples_leaf", 1.0, 6.0, base=2.0, integer=True),
                   Dim("l2_regularization", "log_l2_regularization", -4.0, 1.0)),
                  default=(-1.0, math.log2(31), math.log2(20), -4.0), build=_hgb)
MODELS = {m.key: m for m in (SVC_MODEL, HGB_MODEL)}

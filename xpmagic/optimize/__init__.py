"""Controllable optimization: Optuna studies run in the background and steered by a person."""

from ._controller import StudyConfig, StudyController, TrialInfo
from ._handle import StudyHandle, send
from ._launch import controllers, launch, optuna_path
from ._space import SearchSpace, params_in_cell

__all__ = ["SearchSpace", "StudyConfig", "StudyController", "StudyHandle", "TrialInfo",
           "controllers", "launch", "optuna_path", "params_in_cell", "send"]

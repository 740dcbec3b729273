"""Notebook panels. The view model is pure; the ipywidgets panel renders it."""

from __future__ import annotations

from typing import Any

from ._view import StudyView, history_svg, study_view, view_text

__all__ = ["StudyPanel", "StudyView", "history_svg", "study_display", "study_view", "view_text"]


def __getattr__(name: str) -> Any:
    if name == "StudyPanel":  # ipywidgets is imported only when a panel is made
        from ._panel import StudyPanel

        return StudyPanel
    raise AttributeError(name)


class StudyText:
    """What a terminal shows instead of the panel."""

    def __init__(self, controller: Any):
        self.controller = controller

    def __repr__(self) -> str:
        return view_text(study_view(self.controller))


def study_display(controller: Any) -> Any:
    try:
        from ._panel import StudyPanel
    except ImportError:
        return StudyText(controller)
    return StudyPanel(controller)

"""MLOps phase keys (see shared/phases.md): names people type -> the stored key."""

from __future__ import annotations

import re

from .errors import UsageError

PHASES: dict[str, str] = {
    "problem-definition": "Problem definition",
    "data-acquisition": "Data acquisition",
    "data-preparation": "Data preparation",
    "model-development": "Model development",
    "model-deployment": "Model deployment",
    "monitoring": "Monitoring",
    "management": "Management",
    "scalability": "Scalability",
    "governance": "Governance and compliance",
}

_ALIASES = {
    "data-prep": "data-preparation",
    "governance-and-compliance": "governance",
    "compliance": "governance",
    "deployment": "model-deployment",
    "development": "model-development",
    "problem": "problem-definition",
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")


def normalize_phase(text: str) -> str:
    """The phase key for a spelling such as 'data prep' or 'Model Development'."""
    slug = _slug(text)
    if slug in PHASES:
        return slug
    if slug in _ALIASES:
        return _ALIASES[slug]
    for key, label in PHASES.items():
        if slug == _slug(label):
            return key
    raise UsageError(f"unknown phase {text!r}; valid phases: {', '.join(PHASES)}")

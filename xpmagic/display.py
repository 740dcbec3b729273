"""Renders info objects as text (terminal, CLI) and HTML (notebook)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from html import escape
from typing import Any

from .clock import duration_text
from .queries import _MISSING, DIFF_SECTIONS, Change, LineageNode, RunDiff
from .records import Run


def _value(value: Any) -> str:
    if value is _MISSING:
        return "(absent)"
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value, default=str) if not isinstance(value, str) else value


def _variable(run: Run, name: str, digest: str | None) -> str:
    """A variable's digest, and for a configuration object what it held: `KFold(n_splits=5, ...)`."""
    shown = digest or f"(no fingerprint: {run.unhashed.get(name, 'no hasher for it')})"
    setting = run.settings.get(name)
    if setting:
        shown += "  " + _call_text(setting.get("type"), setting.get("fields", {}))
    model = run.models.get(name)
    if model:  # a statsmodels fit's first parameters; a booster's rounds and features
        shown += "  " + _call_text(model.get("type"), model.get("params") or {
            k: v for k, v in model.items() if k in ("rounds", "features", "nobs")})
    return shown


def _call_text(kind: Any, fields: dict[str, Any]) -> str:
    """`KFold(n_splits=5, shuffle=True)` from a summary's type and fields."""
    return f"{str(kind or '').rpartition('.')[2]}({', '.join(f'{k}={v}' for k, v in fields.items())})"


def _displays_text(run: Run) -> dict[str, str]:
    """What the cell displayed, by position: `1 = image/png 23.1 KB, text/plain 33 B`."""
    shown: dict[str, list[str]] = {}
    for item in run.displays:
        kept = "" if item["kept"] else " (not kept)"
        shown.setdefault(str(item["position"]), []).append(f"{item['mime']} {_size(item['size'])}{kept}")
    return {position: ", ".join(parts) for position, parts in shown.items()}


def _size(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KB" if size < 1024 ** 2 else f"{size / 1024 ** 2:.1f} MB"


def run_text(run: Run) -> str:
    lines = [
        f"run {run.id} · {run.experiment} · {run.status}"
        + (f" · {duration_text(run.duration_s)}" if run.duration_s is not None else ""),
        f"  started {run.started_at}" + (f" on {run.host}" if run.host else ""),
        f"  seed {run.seed if run.seed is not None else '(none set)'}",
    ]
    if run.notebook:
        lines.append(f"  notebook {run.notebook}" + (f" cell {run.cell_id}" if run.cell_id else ""))
    if run.tags:
        lines.append(f"  tags {', '.join(run.tags)}")
    if run.note:
        lines.append(f"  note {run.note}")
    if run.phase:
        lines.append(f"  phase {run.phase}")
    if run.replay_of:
        lines.append(f"  replay of run {run.replay_of}")
    sections = [
        ("params", {k: _value(v) for k, v in run.params.items()}),
        ("metrics", {k: _value(v) for k, v in run.metrics.items()}),
        ("inputs", {k: _variable(run, k, v) for k, v in run.inputs.items()}),
        ("outputs", {k: _variable(run, k, v) for k, v in run.outputs.items()}),
        ("datasets", {d["name"]: f"{d['fingerprint']} shape={d['shape']}" for d in run.datasets}),
        ("artifacts", {a["name"]: f"{a['path']} sha256={a['sha256'][:12]} {a['size']} B"
                       for a in run.artifacts}),
        ("displays", _displays_text(run)),
    ]
    for title, items in sections:
        if items:
            lines.append(f"{title}:")
            lines += [f"  {k} = {v}" for k, v in items.items()]
    if run.lineage:
        lines.append("lineage: read from runs " + ", ".join(map(str, run.lineage)))
    if run.imports:
        lines.append("imports: " + "; ".join(run.imports))
    if run.definitions:
        lines.append("definitions: " + ", ".join(d["name"] for d in run.definitions))
    if run.local_code:
        lines.append("local code: " + _local_code_text(run))
    if run.env:
        lines.append(f"environment: Python {run.env['python']} on {run.env['platform']}, "
                     f"{len(run.env['packages'])} packages")
    if run.git:
        lines.append(f"git: {run.git['commit'] or '(no commit)'} on {run.git['branch']}"
                     + (" (dirty)" if run.git["dirty"] else ""))
    lines.append("code:")
    lines += ["  " + line for line in run.code.splitlines()]
    if run.stdout:
        lines.append("stdout:")
        lines += ["  " + line for line in run.stdout.splitlines()]
    if run.error:
        lines.append(f"error: {run.error.type}: {run.error.message}")
    return "\n".join(lines)


def _table(rows: list[tuple[str, str]], headers: tuple[str, ...]) -> str:
    head = "".join(f"<th style='text-align:left'>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'><code>{escape(str(c))}</code></td>"
                         for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class RunView:
    """``%xp show``: one run in full."""

    def __init__(self, run: Run, display_data: Callable[[int, str], list[tuple[int, str, bytes]]] | None = None):
        self.run = run
        self._display_data = display_data  # Store.display_data: the figures the cell displayed, shown again

    def __repr__(self) -> str:
        return run_text(self.run)

    def _repr_html_(self) -> str:
        run = self.run
        colour = {"ok": "#1a7f37", "failed": "#cf222e"}.get(run.status, "#9a6700")
        parts = [f"<h4>run {run.id} · {escape(run.experiment)} · "
                 f"<span style='color:{colour}'>{run.status}</span></h4>"]
        facts = [("started", run.started_at), ("duration (s)", run.duration_s),
                 ("seed", run.seed if run.seed is not None else "(none set)"),
                 ("notebook", run.notebook or ""), ("cell", run.cell_id or ""),
                 ("tags", ", ".join(run.tags)), ("note", run.note or ""), ("phase", run.phase or "")]
        parts.append(_table([(k, v) for k, v in facts], ("", "")))
        for title, mapping in (("params", {k: _value(v) for k, v in run.params.items()}),
                               ("metrics", {k: _value(v) for k, v in run.metrics.items()}),
                               ("inputs", {k: _variable(run, k, v) for k, v in run.inputs.items()}),
                               ("outputs", {k: _variable(run, k, v) for k, v in run.outputs.items()})):
            if mapping:
                parts.append(f"<b>{title}</b>" + _table(list(mapping.items()), ("name", "value")))
        if run.lineage:
            parts.append("<b>lineage</b>: read from runs " + ", ".join(map(str, run.lineage)))
        if run.imports:
            parts.append("<b>imports</b>: " + escape("; ".join(run.imports)))
        if run.definitions:
            parts.append("<b>definitions</b>: " + escape(", ".join(d["name"] for d in run.definitions)))
        if run.local_code:
            parts.append("<b>local code</b>: " + escape(_local_code_text(run)))
        parts.append(f"<pre>{escape(run.code)}</pre>")
        if self._display_data is not None and any(d["mime"].startswith("image/") and d["kept"] for d in run.displays):
            images = _one_per_position(self._display_data(run.id, "image/"))
            parts += [_image_html(mime, data) for _, mime, data in images]
        if run.error:
            parts.append(f"<pre style='color:#cf222e'>{escape(run.error.traceback)}</pre>")
        return "".join(parts)


def _one_per_position(images: list[tuple[int, str, bytes]]) -> list[tuple[int, str, bytes]]:
    """A figure displayed as PNG and SVG: one of them (PNG first, as a notebook does)."""
    order = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml")
    chosen: dict[int, tuple[int, str, bytes]] = {}
    for item in sorted(images, key=lambda i: (i[0], order.index(i[1]) if i[1] in order else len(order))):
        chosen.setdefault(item[0], item)
    return list(chosen.values())


def _image_html(mime: str, data: bytes) -> str:
    """An <img> of it, inline: an SVG's scripts do not run there."""
    return f"<div><img style='max-width:100%' src='data:{escape(mime)};base64,{base64.b64encode(data).decode()}'></div>"


def _local_code_text(run: Run) -> str:
    """The person's own modules the run's session had loaded: module (path, start of its sha256)."""
    return ", ".join(f"{m['module']} ({m['path']} {m['sha256'][:8]})" for m in run.local_code)


def _changes_text(title: str, changes: list[Change]) -> list[str]:
    if not changes:
        return []
    return [f"{title}:"] + [f"  {c.name}: {_shown(title, c.a)} -> {_shown(title, c.b)}" for c in changes]


def _shown(section: str, value: Any) -> str:
    """A change's value; a module version by the start of its sha256 (the code diff shows the edit)."""
    if section == "local code" and isinstance(value, str):
        return value[:12]
    return _value(value)


class DiffView:
    """``%xp diff A B``: what changed between two runs."""

    def __init__(self, diff: RunDiff):
        self.diff = diff

    def __repr__(self) -> str:
        d = self.diff
        if d.identical:
            return f"runs {d.a.id} and {d.b.id} have the same code, params, metrics, data and environment"
        lines = [f"run {d.a.id} -> run {d.b.id}"]
        for title in DIFF_SECTIONS:
            lines += _changes_text(title.replace("_", " "), getattr(d, title))
        if d.code_diff:
            lines += ["code:", d.code_diff.rstrip("\n")]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        d = self.diff
        if d.identical:
            return f"<p>{escape(repr(self))}</p>"
        parts = [f"<h4>run {d.a.id} → run {d.b.id}</h4>"]
        for title in DIFF_SECTIONS:
            changes = getattr(d, title)
            if changes:
                shown = title.replace("_", " ")
                parts.append(f"<b>{shown}</b>" + _table(
                    [(c.name, _shown(shown, c.a), _shown(shown, c.b)) for c in changes],
                    ("name", f"run {d.a.id}", f"run {d.b.id}")))
        if d.code_diff:
            parts.append(f"<b>code</b><pre>{escape(d.code_diff)}</pre>")
        return "".join(parts)


class LineageView:
    """``%xp lineage RUN``: the runs whose outputs this run read."""

    def __init__(self, root: LineageNode):
        self.root = root

    def __repr__(self) -> str:
        lines = [f"run {self.root.run_id} ({self.root.experiment})"]
        if not self.root.sources:
            lines.append("  read nothing produced by an earlier run")

        def walk(node: LineageNode, indent: str) -> None:
            for child in node.sources:
                lines.append(f"{indent}<- run {child.run_id} ({child.experiment}, {child.status})"
                             f" via {', '.join(child.via)}")
                walk(child, indent + "   ")

        walk(self.root, "  ")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return f"<pre>{escape(repr(self))}</pre>"

"""What an experiment cell displays (a figure, a table's HTML), recorded with its run.

A notebook's result is often a plot rather than a printed line. While an experiment cell runs,
the shell's display publisher is tapped: every MIME type of every bundle the cell displays is
recorded with its sha256 and size, and its data while the run's budget
(``XPMagics.max_display_bytes``) lasts, so ``show`` lists what the cell displayed and the HTML
view of a run shows its figures again. A widget's view, JavaScript or HTML with scripts in it
is listed, not kept: only the kernel (or the page) that made it can show it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
from typing import Any

from .records import DisplayRecord

_BASE64_MIMES = ("image/png", "image/jpeg", "image/gif", "image/webp")  # base64 text in a bundle
_LIVE_ONLY = ("application/vnd.jupyter.widget-view+json", "application/javascript")
_ADDRESS = re.compile(rb" at 0x[0-9a-fA-F]+")
MOST_DISPLAYS = 200  # a loop displaying every step: the first ones are recorded
_UNSET = object()


class DisplayTap:
    """Records what the shell displays from this thread until ``close()``: what is left under
    the cell. A display updated in place (``handle.update(fig)``) keeps its position and its
    latest content; ``clear_output()`` (a live plot redrawn every epoch) forgets what it cleared."""

    def __init__(self, shell: Any, budget_bytes: int):
        self.dropped = 0  # displays past MOST_DISPLAYS
        self._shown: dict[int, list[DisplayRecord]] = {}  # position -> its MIME types
        self._budget = self._full_budget = budget_bytes
        self._by_id: dict[str, int] = {}  # display_id -> position
        self._thread = threading.get_ident()  # a background trial's displays are not this run's
        self._restore: list[tuple[Any, str, Any]] = []
        self._tap(shell.display_pub, "publish", self._on_publish)
        self._tap(shell.display_pub, "clear_output", lambda *args, **kwargs: self._forget_all())
        hook = getattr(shell, "displayhook", None)
        if hook is not None:  # the cell's last expression (`df.head()`) is shown by the display hook
            self._tap(hook, "write_format_data", lambda format_dict, *args, **kwargs: self._record(format_dict))

    @property
    def records(self) -> list[DisplayRecord]:
        """What is shown, numbered from 1 in the order it was first displayed."""
        ordered = [self._shown[position] for position in sorted(self._shown)]
        return [DisplayRecord(number, r.mime, r.sha256, r.size, r.data)
                for number, records in enumerate(ordered, 1) for r in records]

    def close(self) -> list[DisplayRecord]:
        for target, name, own in reversed(self._restore):  # another tool's wrapper on the instance goes back
            if own is _UNSET:
                target.__dict__.pop(name, None)
            else:
                setattr(target, name, own)
        return self.records

    def _tap(self, target: Any, name: str, observe: Any) -> None:
        """Have ``target.name`` call ``observe`` with its arguments (on this thread), then itself."""
        self._restore.append((target, name, target.__dict__.get(name, _UNSET)))
        method = getattr(target, name)

        def tapped(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == self._thread:
                observe(*args, **kwargs)
            return method(*args, **kwargs)

        setattr(target, name, tapped)

    def _on_publish(self, *args: Any, **kwargs: Any) -> None:
        data = kwargs["data"] if "data" in kwargs else args[0] if args else None
        self._record(data, (kwargs.get("transient") or {}).get("display_id"), bool(kwargs.get("update")))

    def _record(self, bundle: Any, display_id: str | None = None, update: bool = False) -> None:
        if not isinstance(bundle, dict):
            return
        position = self._by_id.get(display_id) if update and display_id else None
        if position is None:
            if len(self._shown) >= MOST_DISPLAYS:
                self.dropped += 1
                return
            position = max(self._shown, default=0) + 1
            if display_id:
                self._by_id[display_id] = position
        self._forget(position)
        self._shown[position] = [self._kept(str(mime), _as_bytes(mime, content)) for mime, content in bundle.items()]

    def _kept(self, mime: str, data: bytes) -> DisplayRecord:
        kept = _worth_keeping(mime, data) and len(data) <= self._budget
        if kept:
            self._budget -= len(data)
        return DisplayRecord(0, mime, _content_sha256(mime, data), len(data), data if kept else None)

    def _forget(self, position: int) -> None:
        for record in self._shown.pop(position, []):
            if record.data is not None:
                self._budget += len(record.data)

    def _forget_all(self) -> None:
        self._shown.clear()
        self._by_id.clear()
        self._budget = self._full_budget


def _content_sha256(mime: str, data: bytes) -> str:
    """The sha256 of the data; of plain text without memory addresses, which differ in every
    session (`[<matplotlib.lines.Line2D at 0x7f...>]` under a cell ending in `plt.plot(...)`)."""
    if mime == "text/plain":
        data = _ADDRESS.sub(b" at 0x", data)
    return hashlib.sha256(data).hexdigest()


def _worth_keeping(mime: str, data: bytes) -> bool:
    """Not what only a live kernel can show: a widget's view, JavaScript, and HTML with scripts in
    it (Plotly's first figure carries its 3.5 MB library, Bokeh its loader): listed, not kept."""
    if mime in _LIVE_ONLY:
        return False
    return not (mime == "text/html" and b"<script" in data.lower())


def _as_bytes(mime: str, content: Any) -> bytes:
    """An image as its file's bytes, text as UTF-8, JSON as its text."""
    if isinstance(content, (bytes, bytearray)):
        return bytes(content)
    if isinstance(content, str):
        if mime in _BASE64_MIMES:
            try:
                return base64.b64decode(content, validate=False)
            except (binascii.Error, ValueError):
                pass
        return content.encode("utf-8", "surrogatepass")
    try:
        return json.dumps(content, sort_keys=True, default=str).encode()
    except (TypeError, ValueError):
        return repr(content).encode()

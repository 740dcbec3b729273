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
import threading
from typing import Any

from .records import DisplayRecord

_BASE64_MIMES = ("image/png", "image/jpeg", "image/gif", "image/webp")  # base64 text in a bundle
_LIVE_ONLY = ("application/vnd.jupyter.widget-view+json", "application/javascript")
MOST_DISPLAYS = 200  # a loop displaying every step: the first ones are recorded
_UNSET = object()


class DisplayTap:
    """Records what the shell displays from this thread until ``close()``."""

    def __init__(self, shell: Any, budget_bytes: int):
        self.records: list[DisplayRecord] = []
        self.dropped = 0  # displays past MOST_DISPLAYS
        self._budget = budget_bytes
        self._publisher = shell.display_pub
        self._thread = threading.get_ident()  # a background trial's displays are not this run's
        self._own = self._publisher.__dict__.get("publish", _UNSET)  # another tool's wrapper, put back on close
        self._displays = 0
        original = self._publisher.publish

        def publish(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == self._thread:
                self._record(kwargs["data"] if "data" in kwargs else args[0] if args else None)
            return original(*args, **kwargs)

        self._publisher.publish = publish

    def close(self) -> list[DisplayRecord]:
        if self._own is _UNSET:
            self._publisher.__dict__.pop("publish", None)
        else:
            self._publisher.publish = self._own
        return self.records

    def _record(self, bundle: Any) -> None:
        if not isinstance(bundle, dict):
            return
        if self._displays >= MOST_DISPLAYS:
            self.dropped += 1
            return
        self._displays += 1
        for mime, content in bundle.items():
            data = _as_bytes(mime, content)
            kept = _worth_keeping(mime, data) and len(data) <= self._budget
            if kept:
                self._budget -= len(data)
            self.records.append(DisplayRecord(self._displays, str(mime), hashlib.sha256(data).hexdigest(), len(data),
                                              data if kept else None))


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

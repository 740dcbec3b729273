"""The phase report: heatmap, reasons chart, timeline and summary; CSV, JSON and plot files."""

from __future__ import annotations

import csv
import json
import os
from html import escape
from typing import Any

from .phases import PHASES, PhaseMatrices, Span
from .phases import SHORT_NAMES as _SHORT


def _heat(value: float) -> str:
    """White to dark blue; dark cells get white text."""
    shade = int(255 - 200 * min(max(value, 0.0), 1.0))
    text = "#fff" if value > 0.55 else "#000"
    return f"background:rgb({shade},{shade + 20 if shade < 235 else 255},255);color:{text}"


class PhaseReport:
    def __init__(self, matrices: PhaseMatrices, focus: list[Span], revisits: list[Span], filters: Any):
        self.matrices = matrices
        self.focus = focus
        self.revisits = revisits
        self.filters = filters

    def to_dict(self) -> dict[str, Any]:
        data = self.matrices.to_dict()
        data["summary"] = self.summary()
        return data

    def __repr__(self) -> str:
        m = self.matrices
        width = 1 + max(len(name) for name in _SHORT.values())  # whole names: "acquisiti" read badly
        lines = ["overlap (rows: phase in focus, columns: phase worked on)",
                 " " * width + "".join(_SHORT[k].rjust(width) for k in m.phases)]
        for i, key in enumerate(m.phases):
            if any(m.overlap[i]):
                lines.append(_SHORT[key].ljust(width) + "".join(f"{v:{width}.3f}" for v in m.overlap[i]))
        lines.append("")
        lines.append(self.summary())
        return "\n".join(lines)

    def summary(self) -> str:
        chosen = ("user", "experiment", "since", "until")
        narrowed = self.filters is not None and any(getattr(self.filters, f, None) for f in chosen)
        return self.matrices.summary(narrowed)

    # -- HTML for the notebook -------------------------------------------------------------
    def _repr_html_(self) -> str:
        return "".join([self.heatmap_html(), self.reasons_html(), self.timeline_svg(),
                        f"<p>{escape(self.summary())}</p>"])

    def heatmap_html(self) -> str:
        m = self.matrices
        head = "".join(f"<th style='font-size:11px'>{_SHORT[k]}</th>" for k in m.phases)
        rows = []
        for i, key in enumerate(m.phases):
            cells = "".join(
                f"<td style='{_heat(v)};text-align:center;min-width:64px'>{v:.3f}</td>" if v else
                "<td style='text-align:center;min-width:64px;color:#bbb'>·</td>"
                for v in m.overlap[i])
            rows.append(f"<tr><th style='text-align:right;font-size:11px'>{_SHORT[key]}</th>{cells}"
                        f"<td style='font-size:11px'>{m.iteration_index[key]:.2f}</td></tr>")
        return ("<b>Overlap between phases</b> (row: phase in focus; column: share of its effort;"
                f" last column: iteration index; based on {m.based_on})"
                f"<table class='xpmagic-overlap'><tr><th></th>{head}<th>iter.</th></tr>{''.join(rows)}</table>")

    def reasons_html(self) -> str:
        if not self.matrices.reasons:
            return "<p>No revisits yet.</p>"
        by_focus: dict[str, dict[str, int]] = {}
        for r in self.matrices.reasons:
            by_focus.setdefault(r["from"], {}).setdefault(r["reason"], 0)
            by_focus[r["from"]][r["reason"]] += r["count"]
        biggest = max(c for reasons in by_focus.values() for c in reasons.values())
        parts = ["<b>Reasons for revisits, per phase in focus</b>"]
        for focus, reasons in by_focus.items():
            parts.append(f"<div style='margin-top:4px'><i>{escape(PHASES[focus])}</i></div>")
            for reason, count in sorted(reasons.items(), key=lambda r: -r[1]):
                width = int(240 * count / biggest)
                parts.append(f"<div style='font-size:11px'><span style='display:inline-block;width:170px'>"
                             f"{escape(reason)}</span><span style='display:inline-block;width:{width}px;"
                             f"background:#1f77b4;height:10px'></span> {count}</div>")
        return "".join(parts)

    def timeline_svg(self, width: int = 640) -> str:
        spans = self.focus + self.revisits
        if not spans:
            return ""
        start = min(s.start for s in spans)
        end = max(s.end for s in spans)
        total = max((end - start).total_seconds(), 1.0)
        keys = list(PHASES)
        row_h, left = 16, 90

        def x(moment: Any) -> float:
            return left + (moment - start).total_seconds() / total * (width - left - 10)

        bars = []
        for span in spans:
            y = 20 + keys.index(span.phase) * row_h
            colour = "#1f77b4" if span.from_phase is None else "#ff7f0e"
            bars.append(f"<rect x='{x(span.start):.1f}' y='{y}' width='{max(x(span.end) - x(span.start), 1):.1f}'"
                        f" height='{row_h - 4}' fill='{colour}'><title>{escape(span.phase)}"
                        f"{' from ' + escape(span.from_phase) if span.from_phase else ''}</title></rect>")
        labels = "".join(f"<text x='2' y='{20 + i * row_h + 10}' font-size='10'>{_SHORT[k]}</text>"
                         for i, k in enumerate(keys))
        height = 24 + len(keys) * row_h
        return (f"<div><b>Timeline</b> (blue: focus, orange: revisits)</div>"
                f"<svg width='{width}' height='{height}'>{labels}{''.join(bars)}</svg>")

    # -- files -------------------------------------------------------------------------------
    def write_csv(self, folder: str) -> list[str]:
        os.makedirs(folder, exist_ok=True)
        m = self.matrices
        written = []
        for name, matrix in (("count", m.count), ("time_minutes", m.time_minutes), ("overlap", m.overlap)):
            path = os.path.join(folder, f"{name}.csv")
            with open(path, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["focus", *m.phases])
                for key, row in zip(m.phases, matrix):
                    writer.writerow([key, *row])
            written.append(path)
        path = os.path.join(folder, "reasons.csv")
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["from", "to", "reason", "count"])
            writer.writeheader()
            writer.writerows(m.reasons)
        written.append(path)
        path = os.path.join(folder, "phases.json")
        with open(path, "w") as handle:
            json.dump(self.to_dict(), handle, indent=2)
        return written + [path]

    def plot(self, path: str) -> None:
        """Heatmap, reasons and timeline in one figure (PNG or SVG by the file's ending)."""
        from .errors import MissingDependency

        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise MissingDependency("matplotlib", "phase plots", extra="plot") from None
        m = self.matrices
        labels = [_SHORT[k] for k in m.phases]
        fig, axes = plt.subplots(1, 3, figsize=(18, 6), gridspec_kw={"width_ratios": [1.2, 1, 1.2]})
        ax = axes[0]
        ax.imshow(m.overlap, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        for i, row in enumerate(m.overlap):
            for j, value in enumerate(row):
                if value:
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center",
                            color="white" if value > 0.55 else "black", fontsize=8)
        ax.set_title("Overlap (row: focus, column: share of effort)")
        ax = axes[1]
        pairs = {}
        for r in m.reasons:
            key = f"{_SHORT[r['from']]}: {r['reason']}"
            pairs[key] = pairs.get(key, 0) + r["count"]
        ax.barh(list(pairs), list(pairs.values()), color="#1f77b4")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("revisits")
        ax.set_title("Reasons for revisits, per focus phase")
        ax = axes[2]
        keys = list(PHASES)
        spans = self.focus + self.revisits
        origin = min((s.start for s in spans), default=None)
        for span in spans:  # revisits drawn after focus periods, so they show on top
            ax.barh(keys.index(span.phase), (span.end - span.start).total_seconds() / 60,
                    left=(span.start - origin).total_seconds() / 60,
                    color="#1f77b4" if span.from_phase is None else "#ff7f0e")
        ax.set_yticks(range(len(keys)), labels)
        ax.set_xlabel(f"minutes since {origin:%Y-%m-%d %H:%M} UTC" if origin else "minutes")
        ax.set_title("Timeline (blue: focus, orange: revisits)")
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)

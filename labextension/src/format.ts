/** Pure formatting and timing helpers (unit-tested without a browser). */

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) {
    return '—';
  }
  if (seconds < 1) {
    return `${(seconds * 1000).toFixed(1)} ms`;
  }
  if (seconds < 120) {
    return `${seconds.toFixed(2)} s`;
  }
  if (seconds < 7200) {
    return `${(seconds / 60).toFixed(1)} min`;
  }
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** 512 -> '512 B', 23552 -> '23.0 KB', 3145728 -> '3.0 MB'. */
export function formatBytes(size: number): string {
  if (size < 1024) {
    return `${size} B`;
  }
  if (size < 1024 * 1024) {
    return `${(size / 1024).toFixed(1)} KB`;
  }
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}

export function formatValue(value: unknown): string {
  if (value === null || value === undefined) {
    return '—';
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) {
      return String(value);
    }
    return Number.isInteger(value) ? String(value) : value.toPrecision(4).replace(/\.?0+$/, '');
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export function relativeTime(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) {
    return 'never';
  }
  const seconds = Math.max(0, (now.getTime() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) {
    return 'just now';
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min ago`;
  }
  if (seconds < 86400) {
    return `${Math.floor(seconds / 3600)} h ago`;
  }
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** When a run started, as people read it: the date and time to the second (UTC, like the
 * recorded timestamps, so it does not depend on the browser), then how long ago. */
export function formatWhen(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) {
    return '—';
  }
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return iso;
  }
  const text = date.toISOString().slice(0, 19).replace('T', ' ');
  return `${text} UTC (${relativeTime(iso, now)})`;
}

/** A unified diff as HTML: added lines green, removed lines red, hunk headers muted. */
export function diffHtml(diff: string): string {
  return diff
    .split('\n')
    .map(line => {
      const text = escapeHtml(line);
      if (line.startsWith('+++') || line.startsWith('---')) {
        return `<span class="xp-diff-file">${text}</span>`;
      }
      if (line.startsWith('@@')) {
        return `<span class="xp-diff-hunk">${text}</span>`;
      }
      if (line.startsWith('+')) {
        return `<span class="xp-diff-add">${text}</span>`;
      }
      if (line.startsWith('-')) {
        return `<span class="xp-diff-del">${text}</span>`;
      }
      return text;
    })
    .join('\n');
}

/** Polling delay: the base interval while requests succeed, doubling (capped) while they fail. */
export function nextDelay(previous: number, ok: boolean, base: number, max: number): number {
  if (ok) {
    return base;
  }
  return Math.min(max, Math.max(base, previous) * 2);
}

export function progressText(done: number, budget: number | null): string {
  return budget ? `${done}/${budget} trials` : `${done} trials`;
}

/** Toggle a run in a selection of at most two (for compare); the oldest choice drops out. */
export function toggleCompare(selected: number[], id: number): number[] {
  if (selected.includes(id)) {
    return selected.filter(x => x !== id);
  }
  return [...selected, id].slice(-2);
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** A light syntax highlighter for Python: keywords, strings, comments, numbers. */
export function highlightPython(code: string): string {
  const pattern =
    /(#[^\n]*)|("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|\b(def|class|return|import|from|as|for|in|if|elif|else|while|with|try|except|finally|raise|lambda|and|or|not|None|True|False|yield|pass|break|continue)\b|\b(\d+(?:\.\d+)?(?:e[-+]?\d+)?)\b|(%%?\w+)/g;
  let out = '';
  let last = 0;
  for (const match of code.matchAll(pattern)) {
    out += escapeHtml(code.slice(last, match.index));
    const [text, comment, str, keyword, number, magic] = match;
    const kind = comment ? 'comment' : str ? 'string' : keyword ? 'keyword' : number ? 'number' : magic ? 'magic' : '';
    out += `<span class="xp-${kind}">${escapeHtml(text)}</span>`;
    last = (match.index ?? 0) + text.length;
  }
  return out + escapeHtml(code.slice(last));
}

/** An SVG polyline of a metric series. */
export function sparkline(steps: number[], values: number[], width = 220, height = 50): string {
  const points = steps.map((s, i) => [s, values[i]]).filter(([, v]) => Number.isFinite(v));
  if (points.length < 2) {
    return '';
  }
  const xs = points.map(p => p[0]);
  const ys = points.map(p => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x: number) => 2 + ((x - x0) / (x1 - x0 || 1)) * (width - 4);
  const sy = (y: number) => height - 2 - ((y - y0) / (y1 - y0 || 1)) * (height - 4);
  const line = points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
  return `<svg class="xp-spark" width="${width}" height="${height}"><polyline points="${line}" fill="none" stroke="var(--jp-brand-color1, #1976d2)" stroke-width="1.5"/></svg>`;
}

/** A heat-map cell's background: white at 0, full blue at 1 (values clamped to [0, 1]). */
export function heatColor(share: number | null | undefined): string {
  const v = Math.max(0, Math.min(1, Number.isFinite(share as number) ? (share as number) : 0));
  const channel = (full: number) => Math.round(255 - (255 - full) * v);
  return `rgb(${channel(9)}, ${channel(105)}, ${channel(218)})`;
}

/** Text colour that stays readable on heatColor(share). */
export function heatTextColor(share: number | null | undefined): string {
  return (share ?? 0) > 0.55 ? '#fff' : 'inherit';
}

export interface IVerdict {
  run: number | null;
  replay_run: number | null;
  experiment: string;
  verdict: string;
  differences: { metric?: string; output?: string; artifact?: string; old: unknown; new: unknown }[];
  changes: string[];
  error: { cell?: number; type?: string; message?: string } | null;
}

/** One line per replayed run: what the verdict was and, briefly, why. */
export function verdictLine(v: IVerdict): string {
  const head = `run ${v.run ?? '—'} (${v.experiment}): ${v.verdict}`;
  if (v.error) {
    return `${head}: ${v.error.type ?? 'error'}: ${v.error.message ?? ''}`.trim();
  }
  const metrics = (v.differences || []).map(d => {
    const name = d.metric ?? d.output ?? (d.artifact ? `artifact ${d.artifact}` : '?');
    const show = (x: unknown) => (d.output || d.artifact ? String(x).slice(0, 12) : formatValue(x));
    return `${name} ${show(d.old)} → ${show(d.new)}`;
  });
  const why = [...metrics, ...(v.changes || []).slice(0, 3)];
  const more = (v.changes || []).length > 3 ? ` (+${v.changes.length - 3} more)` : '';
  return why.length ? `${head}: ${why.join('; ')}${more}` : head;
}

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

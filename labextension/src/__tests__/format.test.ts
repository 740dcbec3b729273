import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  diffHtml, escapeHtml, formatBytes, formatDuration, formatValue, formatWhen, heatColor, heatTextColor, highlightPython, nextDelay,
  progressText, relativeTime, sparkline, toggleCompare, verdictLine
} from '../format';

test('durations read naturally', () => {
  assert.equal(formatDuration(0.0123), '12.3 ms');
  assert.equal(formatDuration(3.456), '3.46 s');
  assert.equal(formatDuration(600), '10.0 min');
  assert.equal(formatDuration(null), '—');
});

test('sizes read naturally', () => {
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(23552), '23.0 KB');
  assert.equal(formatBytes(3 * 1024 * 1024), '3.0 MB');
});

test('values keep four significant digits', () => {
  assert.equal(formatValue(0.98305084), '0.9831');
  assert.equal(formatValue(12), '12');
  assert.equal(formatValue('rbf'), 'rbf');
  assert.equal(formatValue(null), '—');
});

test('relative times', () => {
  const now = new Date('2026-11-23T12:00:00Z');
  assert.equal(relativeTime('2026-11-23T11:59:30Z', now), 'just now');
  assert.equal(relativeTime('2026-11-23T11:45:00Z', now), '15 min ago');
  assert.equal(relativeTime('2026-11-21T12:00:00Z', now), '2 d ago');
});

test('start times read as a date and how long ago', () => {
  const now = new Date('2026-11-23T12:00:00Z');
  assert.equal(formatWhen('2026-11-23T11:44:59.500+00:00', now), '2026-11-23 11:44:59 UTC (15 min ago)');
  assert.equal(formatWhen('2026-11-23T12:45:00+01:00', now), '2026-11-23 11:45:00 UTC (15 min ago)');
  assert.equal(formatWhen(null, now), '—');
  assert.equal(formatWhen('not a date', now), 'not a date');
});

test('diffs colour added and removed lines and escape the code', () => {
  const html = diffHtml('--- run 1\n+++ run 2\n@@ -1 +1 @@\n-x = 1 < 2\n+x = 2\n same');
  assert.equal(html.split('\n').length, 6);
  assert.ok(html.includes('<span class="xp-diff-del">-x = 1 &lt; 2</span>'));
  assert.ok(html.includes('<span class="xp-diff-add">+x = 2</span>'));
  assert.ok(html.includes('<span class="xp-diff-file">+++ run 2</span>') && html.endsWith('\n same'));
});

test('polling backs off on failure and recovers', () => {
  assert.equal(nextDelay(3, false, 3, 60), 6);
  assert.equal(nextDelay(48, false, 3, 60), 60);
  assert.equal(nextDelay(60, true, 3, 60), 3);
});

test('compare keeps the last two runs chosen', () => {
  assert.deepEqual(toggleCompare([1, 2], 3), [2, 3]);
  assert.deepEqual(toggleCompare([2, 3], 3), [2]);
  assert.equal(progressText(4, 20), '4/20 trials');
});

test('code is escaped and highlighted', () => {
  const html = highlightPython("x = 1  # <b>\nif x: print('a')");
  assert.ok(html.includes('<span class="xp-keyword">if</span>'));
  assert.ok(html.includes('&lt;b&gt;'));
  assert.equal(escapeHtml('<a href="x">'), '&lt;a href=&quot;x&quot;&gt;');
});

test('sparkline draws one point per finite value', () => {
  const svg = sparkline([0, 1, 2], [1, NaN, 3]);
  const points = /points="([^"]*)"/.exec(svg)![1].split(' ');
  assert.equal(points.length, 2);
  assert.equal(sparkline([0], [1]), '');
});

test('heat-map colours run from white to blue and clamp', () => {
  assert.equal(heatColor(0), 'rgb(255, 255, 255)');
  assert.equal(heatColor(1), 'rgb(9, 105, 218)');
  assert.equal(heatColor(2), heatColor(1));
  assert.equal(heatColor(null), heatColor(0));
  assert.equal(heatTextColor(0.9), '#fff');
  assert.equal(heatTextColor(0.1), 'inherit');
});

test('verdict lines say what changed', () => {
  const base = { run: 3, replay_run: 9, experiment: 'train', changes: [], differences: [], error: null };
  assert.equal(verdictLine({ ...base, verdict: 'reproduced' }), 'run 3 (train): reproduced');
  assert.equal(
    verdictLine({ ...base, verdict: 'differs', differences: [{ metric: 'acc', old: 0.9, new: 0.85 }],
      changes: ['data table: 1a2b -> 3c4d', 'a', 'b', 'c'] }),
    'run 3 (train): differs: acc 0.9 → 0.85; data table: 1a2b -> 3c4d; a; b (+1 more)');
  assert.equal(
    verdictLine({ ...base, verdict: 'differs', differences: [{ artifact: 'model.pkl', old: 'fe61937c0be9b50a', new: 'e567e4bc89dc74c9' }] }),
    'run 3 (train): differs: artifact model.pkl fe61937c0be9 → e567e4bc89dc');
  assert.equal(
    verdictLine({ ...base, verdict: 'failed', error: { cell: 2, type: 'NameError', message: "name 'x' is not defined" } }),
    "run 3 (train): failed: NameError: name 'x' is not defined");
});

/** The sidebar: experiments, runs, a run (with replay), a comparison, studies, knowledge and
 * recommendations, the phase heat-map. Plain DOM over JSON. */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Widget } from '@lumino/widgets';

import { IExperiment, IRunPage, IStudy, requestAPI, requestImageURL } from './api';
import {
  diffHtml, escapeHtml, formatBytes, formatDuration, formatValue, formatWhen, heatColor, heatTextColor, highlightPython, IVerdict,
  progressText, relativeTime, sparkline, toggleCompare, verdictLine
} from './format';
import { Poller } from './model';

type View = 'experiments' | 'run' | 'compare' | 'knowledge' | 'phases';

const REPLAY_POLL_MS = 1000;
const RASTER_IMAGES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp']; // what the server sends back

export class XPSidebar extends Widget {
  constructor(private app: JupyterFrontEnd) {
    super();
    this.id = 'xpmagic-sidebar';
    this.addClass('xp-sidebar');
    this.title.caption = 'Experiments (xpmagic)';
    this.poller = new Poller(() => this.refresh());
  }

  readonly poller: Poller;
  private view: View = 'experiments';
  private experiment: string | null = null;
  private sort = 'id';
  private order: 'asc' | 'desc' = 'desc';
  private offset = 0;
  private readonly limit = 20;
  private compare: number[] = [];
  private runId: number | null = null;
  private message = '';
  private replays = new Map<number, string>(); // run id -> HTML of its latest replay status

  protected onAfterShow(): void {
    this.poller.setVisible(true);
  }

  protected onAfterHide(): void {
    this.poller.setVisible(false);
  }

  async refresh(): Promise<void> {
    try {
      if (this.view === 'run' && this.runId !== null) {
        await this.renderRun(this.runId);
      } else if (this.view === 'compare' && this.compare.length === 2) {
        await this.renderCompare(this.compare[0], this.compare[1]);
      } else if (this.view === 'knowledge' && this.experiment) {
        await this.renderKnowledge(this.experiment);
      } else if (this.view === 'phases') {
        await this.renderPhases(null);
      } else {
        await this.renderExperiments();
      }
    } catch (error) {
      this.node.innerHTML = `<div class="xp-error">xpmagic: ${escapeHtml(String((error as Error).message))}</div>`;
      throw error;
    }
  }

  private async renderExperiments(): Promise<void> {
    const { experiments } = await requestAPI<{ experiments: IExperiment[] }>('experiments');
    const rows = experiments.map(e => {
      const studies = e.studies.map(s => this.studyHtml(s)).join('');
      return `<li class="xp-experiment${e.name === this.experiment ? ' xp-selected' : ''}" data-experiment="${escapeHtml(e.name)}">
        <div class="xp-row"><b>${escapeHtml(e.name)}</b><span>${e.runs} runs</span></div>
        <div class="xp-muted">${e.metric ? `best ${escapeHtml(e.metric)} ${formatValue(e.best)} · ` : ''}${relativeTime(e.last_activity)}</div>
        ${studies}</li>`;
    }).join('');
    let runs = '';
    if (this.experiment) {
      runs = await this.runsHtml(this.experiment);
    }
    this.node.innerHTML = `<div class="xp-header">Experiments <button class="xp-phases">Phases</button></div>
      ${this.message ? `<div class="xp-message">${escapeHtml(this.message)}</div>` : ''}
      <ul class="xp-experiments">${rows || '<li class="xp-muted">No experiments yet: run an %%experiment cell.</li>'}</ul>${runs}`;
    this.wireExperiments();
  }

  private studyHtml(s: IStudy): string {
    const active = s.state === 'running' || s.state === 'paused';
    const buttons = active
      ? ['pause', 'resume', 'stop'].map(a => `<button class="xp-action" data-study="${escapeHtml(s.name)}" data-action="${a}">${a}</button>`).join('') +
        `<button class="xp-action" data-study="${escapeHtml(s.name)}" data-action="budget">+10</button>`
      : '';
    return `<div class="xp-study" data-study-row="${escapeHtml(s.name)}"><span class="xp-state xp-${s.state}" title="${escapeHtml(s.message ?? '')}">${s.state}</span>
      ${escapeHtml(s.name)} · ${progressText(s.n_done, s.budget)} · best ${formatValue(s.best_value)} ${buttons}</div>`;
  }

  private async runsHtml(experiment: string): Promise<string> {
    const query = new URLSearchParams({
      experiment, sort: this.sort, order: this.order, limit: String(this.limit), offset: String(this.offset)
    });
    const page = await requestAPI<IRunPage>(`runs?${query}`);
    const metricNames = Array.from(new Set(page.runs.flatMap(r => Object.keys(r.metrics)))).slice(0, 3);
    const head = ['id', 'status', 'duration_s', ...metricNames.map(m => `metrics.${m}`)]
      .map(k => `<th class="xp-sort" data-sort="${escapeHtml(k)}">${escapeHtml(k.replace('metrics.', ''))}${this.sort === k ? (this.order === 'asc' ? ' ▲' : ' ▼') : ''}</th>`).join('');
    const rows = page.runs.map(r => `<tr class="xp-run" data-run="${r.id}">
      <td><input type="checkbox" class="xp-compare" data-run="${r.id}" ${this.compare.includes(r.id) ? 'checked' : ''}> ${r.id}</td>
      <td class="xp-${r.status}">${r.status}</td><td>${formatDuration(r.duration_s)}</td>
      ${metricNames.map(m => `<td>${formatValue(r.metrics[m])}</td>`).join('')}</tr>`).join('');
    const pages = `<div class="xp-pager"><button class="xp-prev" ${this.offset === 0 ? 'disabled' : ''}>‹</button>
      ${page.total ? this.offset + 1 : 0}–${Math.min(this.offset + this.limit, page.total)} of ${page.total}
      <button class="xp-next" ${this.offset + this.limit >= page.total ? 'disabled' : ''}>›</button>
      <button class="xp-do-compare" ${this.compare.length === 2 ? '' : 'disabled'}>Compare</button></div>`;
    return `<div class="xp-header">Runs of ${escapeHtml(experiment)}
      <button class="xp-knowledge">Knowledge</button></div>
      <table class="xp-runs"><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>${pages}`;
  }

  private wireExperiments(): void {
    this.node.querySelectorAll<HTMLElement>('.xp-experiment').forEach(el =>
      el.addEventListener('click', event => {
        if ((event.target as HTMLElement).closest('button')) {
          return;
        }
        this.experiment = el.dataset.experiment ?? null;
        this.offset = 0;
        void this.refresh();
      }));
    this.node.querySelectorAll<HTMLButtonElement>('.xp-action').forEach(button =>
      button.addEventListener('click', () => void this.steer(button.dataset.study!, button.dataset.action!)));
    this.node.querySelectorAll<HTMLElement>('.xp-sort').forEach(th =>
      th.addEventListener('click', () => {
        const key = th.dataset.sort!;
        this.order = this.sort === key && this.order === 'desc' ? 'asc' : 'desc';
        this.sort = key;
        void this.refresh();
      }));
    this.node.querySelectorAll<HTMLInputElement>('.xp-compare').forEach(box =>
      box.addEventListener('click', event => {
        event.stopPropagation();
        this.compare = toggleCompare(this.compare, Number(box.dataset.run));
        void this.refresh();
      }));
    this.node.querySelectorAll<HTMLElement>('.xp-run').forEach(row =>
      row.addEventListener('click', () => this.goTo('run', Number(row.dataset.run))));
    this.node.querySelector('.xp-prev')?.addEventListener('click', () => { this.offset = Math.max(0, this.offset - this.limit); void this.refresh(); });
    this.node.querySelector('.xp-next')?.addEventListener('click', () => { this.offset += this.limit; void this.refresh(); });
    this.node.querySelector('.xp-do-compare')?.addEventListener('click', () => this.goTo('compare', null));
    this.node.querySelector('.xp-knowledge')?.addEventListener('click', () => this.goTo('knowledge', null));
    this.node.querySelector('.xp-phases')?.addEventListener('click', () => this.goTo('phases', null));
  }

  private goTo(view: View, runId: number | null): void {
    this.view = view;
    this.runId = runId;
    void this.refresh();
  }

  async steer(study: string, action: string): Promise<void> {
    const body = action === 'budget' ? JSON.stringify({ add: 10 }) : '{}';
    try {
      await requestAPI(`studies/${encodeURIComponent(study)}/${action}`, { method: 'POST', body });
      this.message = `${action} requested for ${study}`;
    } catch (error) {
      this.message = String((error as Error).message);
    }
    await this.refresh();
  }

  private backButton(): string {
    return '<button class="xp-back">‹ Experiments</button>';
  }

  private wireBack(): void {
    this.node.querySelector('.xp-back')?.addEventListener('click', () => this.goTo('experiments', null));
  }

  private table(data: Record<string, unknown>): string {
    const rows = Object.entries(data).map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(formatValue(v))}</td></tr>`).join('');
    return rows ? `<table class="xp-kv">${rows}</table>` : '<div class="xp-muted">none</div>';
  }

  /** What the run read from plain cells: the imports and the notebook's own definitions a replay runs first. */
  private setupCode(run: any): string {
    const imports = (run.imports ?? []) as string[];
    const definitions = ((run.definitions ?? []) as { source: string }[]).map(d => d.source.replace(/\n+$/, ''));
    const setup = [imports.join('\n'), ...definitions].filter(part => part).join('\n\n');
    return setup ? `<h4>Read from plain cells</h4><pre class="xp-code xp-setup">${highlightPython(setup)}</pre>` : '';
  }

  /** What the cell displayed: its figures (loaded by loadFigures), and the rest by type and size. */
  private displays(run: any): string {
    const byPosition = new Map<number, any[]>();
    for (const item of (run.displays ?? []) as any[]) {
      byPosition.set(item.position, [...(byPosition.get(item.position) ?? []), item]);
    }
    if (!byPosition.size) {
      return '';
    }
    const shown = [...byPosition.entries()].map(([position, items]) => {
      const figure = items.some(i => i.kept && RASTER_IMAGES.includes(i.mime));
      const types = items.map(i => `${escapeHtml(i.mime)} ${formatBytes(i.size)}${i.kept ? '' : ' (not kept)'}`).join(', ');
      return figure
        ? `<div class="xp-display"><img class="xp-figure" data-position="${position}" alt="display ${position}"></div>`
        : `<div class="xp-display xp-muted">${position}: ${types}</div>`;
    });
    return `<h4>Displayed</h4>${shown.join('')}`;
  }

  private loadFigures(runId: number): void {
    this.node.querySelectorAll<HTMLImageElement>('img.xp-figure').forEach(img => {
      requestImageURL(`runs/${runId}/displays/${img.dataset.position}`)
        .then(url => { img.src = url; img.onload = () => URL.revokeObjectURL(url); })
        .catch(error => { img.alt = `display ${img.dataset.position}: ${(error as Error).message}`; });
    });
  }

  private async renderRun(id: number): Promise<void> {
    const run = await requestAPI<any>(`runs/${id}`);
    const series = Object.entries(run.series as Record<string, [number[], number[]]>)
      .map(([name, [steps, values]]) => steps.length > 1 ? `<div>${escapeHtml(name)} ${sparkline(steps, values)}</div>` : '').join('');
    const lineage = (run.lineage as number[]).map(r => `<a class="xp-lineage" data-run="${r}">run ${r}</a>`).join(', ');
    const error = run.error ? `<pre class="xp-error">${escapeHtml(run.error.traceback || run.error.message)}</pre>` : '';
    const env = run.env ? `Python ${escapeHtml(run.env.python)} · ${Object.keys(run.env.packages).length} packages` : '—';
    const git = run.git ? `${escapeHtml((run.git.commit || '').slice(0, 10))} ${escapeHtml(run.git.branch || '')}${run.git.dirty ? ' (dirty)' : ''}` : '—';
    const datasets = (run.datasets as any[]).map(d => `${escapeHtml(d.name)}: ${escapeHtml(d.fingerprint.slice(0, 12))} ${escapeHtml(JSON.stringify(d.shape))}`).join('<br>');
    const localCode = ((run.local_code ?? []) as any[]).map(m => `${escapeHtml(m.module)} <span class="xp-muted">${escapeHtml(m.path)} ${escapeHtml(m.sha256.slice(0, 8))}</span>`).join('<br>');
    this.node.innerHTML = `${this.backButton()}
      <div class="xp-header">run ${run.id} · ${escapeHtml(run.experiment)} · <span class="xp-${run.status}">${run.status}</span></div>
      <div class="xp-muted">${escapeHtml(formatWhen(run.started_at))} · ${formatDuration(run.duration_s)} · seed ${run.seed ?? 'none'}</div>
      ${run.lab_path ? `<button class="xp-open" data-path="${escapeHtml(run.lab_path)}" data-cell="${escapeHtml(run.cell_id || '')}">Open in notebook</button>` : ''}
      <button class="xp-replay" data-run="${run.id}">Replay</button>
      <div class="xp-replay-status">${this.replays.get(run.id) ?? ''}</div>
      <h4>Params</h4>${this.table(run.params)}<h4>Metrics</h4>${this.table(run.metrics)}${series}
      <h4>Data</h4>${datasets || '<div class="xp-muted">none</div>'}
      <h4>Environment</h4><div>${env}</div><h4>Git</h4><div>${git}</div>
      ${localCode ? `<h4>Your modules</h4><div class="xp-local-code">${localCode}</div>` : ''}
      <h4>Lineage</h4><div>${lineage || '<span class="xp-muted">read nothing from earlier runs</span>'}</div>
      <h4>Code</h4><pre class="xp-code">${highlightPython(run.code)}</pre>${error}${this.displays(run)}${this.setupCode(run)}`;
    this.wireBack();
    this.loadFigures(run.id);
    this.node.querySelectorAll<HTMLElement>('.xp-lineage').forEach(a => a.addEventListener('click', () => this.goTo('run', Number(a.dataset.run))));
    this.node.querySelector<HTMLButtonElement>('.xp-replay')?.addEventListener('click', () => void this.replay(id));
    this.node.querySelector<HTMLButtonElement>('.xp-open')?.addEventListener('click', event => {
      const button = event.currentTarget as HTMLButtonElement;
      void this.openInNotebook(button.dataset.path!, button.dataset.cell || '');
    });
  }

  private async openInNotebook(path: string, cellId: string): Promise<void> {
    const widget: any = await this.app.commands.execute('docmanager:open', { path });
    await widget?.context?.ready;
    const notebook = widget?.content;
    if (!notebook || !cellId) {
      return;
    }
    const index = notebook.widgets.findIndex((cell: any) => cell.model.id === cellId);
    if (index >= 0) {
      notebook.activeCellIndex = index;
      notebook.scrollToItem?.(index);
    }
  }

  private async renderCompare(a: number, b: number): Promise<void> {
    const diff = await requestAPI<any>(`diff?a=${a}&b=${b}`);
    // A module's version by the start of its sha256: the code diff below shows the edit.
    const shown = (title: string, value: any) => title === 'local code' && typeof value === 'string' ? value.slice(0, 8) : formatValue(value);
    const section = (title: string, changes: any[]) => changes.length
      ? `<h4>${title}</h4><table class="xp-kv"><tr><th></th><th>run ${a}</th><th>run ${b}</th></tr>${changes.map(c => `<tr><td>${escapeHtml(c.name)}</td><td>${escapeHtml(shown(title, c.a))}</td><td>${escapeHtml(shown(title, c.b))}</td></tr>`).join('')}</table>` : '';
    this.node.innerHTML = `${this.backButton()}<div class="xp-header">run ${a} ↔ run ${b}</div>
      ${['params', 'metrics', 'datasets', 'inputs', 'settings', 'local_code', 'environment', 'git', 'displays', 'other'].map(k => section(k.replace('_', ' '), diff[k] ?? [])).join('')}
      ${diff.code_diff ? `<h4>Code</h4><pre class="xp-code">${diffHtml(diff.code_diff)}</pre>` : '<div class="xp-muted">same code</div>'}`;
    this.wireBack();
  }

  /** Start a replay in a fresh kernel on the server and follow it until its verdict. */
  async replay(runId: number): Promise<void> {
    const show = (html: string) => {
      this.replays.set(runId, html);
      const status = this.node.querySelector<HTMLElement>('.xp-replay-status');
      if (status && this.view === 'run' && this.runId === runId) {
        status.innerHTML = html;
      }
    };
    let job: any;
    try {
      job = await requestAPI<any>(`runs/${runId}/replay`, { method: 'POST', body: '{}' });
    } catch (error) {
      show(`<div class="xp-error">${escapeHtml(String((error as Error).message))}</div>`);
      return;
    }
    const started = Date.now();
    while (job.state === 'running') {
      show(`<div class="xp-muted">replaying in a fresh kernel… ${Math.round((Date.now() - started) / 1000)} s</div>`);
      await new Promise(resolve => setTimeout(resolve, REPLAY_POLL_MS));
      try {
        job = await requestAPI<any>(`replays/${job.id}`);
      } catch (error) {
        show(`<div class="xp-error">${escapeHtml(String((error as Error).message))}</div>`);
        return;
      }
    }
    if (job.state === 'failed') {
      show(`<div class="xp-error">replay failed: ${escapeHtml(job.error ?? 'unknown error')}</div>`);
      return;
    }
    const lines = (job.verdicts as IVerdict[]).map(v =>
      `<li class="xp-verdict xp-${escapeHtml(v.verdict)}">${escapeHtml(verdictLine(v))}</li>`).join('');
    show(`<div class="xp-verdict-head">${job.ok ? 'Reproduced' : 'Not reproduced'}</div><ul class="xp-verdicts">${lines}</ul>`);
  }

  private async renderKnowledge(experiment: string): Promise<void> {
    const [knowledge, rec] = await Promise.all([
      requestAPI<any>(`knowledge?${new URLSearchParams({ experiment, limit: '20' })}`),
      requestAPI<any>(`recommend?${new URLSearchParams({ experiment })}`)
    ]);
    const rows = (knowledge.rows as any[]).map(r => `<tr title="${escapeHtml(`${r.model_family ?? ''} · ${relativeTime(r.created_at)} · ${formatDuration(r.cost_s)}`)}">
      <td>${escapeHtml(r.task_name ?? r.task.slice(0, 8))}</td>
      <td>${escapeHtml(formatValue(r.config))}</td><td>${escapeHtml(formatValue(r.score))}</td>
      <td>${r.rating ? '★'.repeat(r.rating) : ''}</td></tr>`).join('');
    const warm = (rec.warm_start as any[]).map((c, i) => `<li>${escapeHtml(formatValue(c))}
      <span class="xp-muted">${escapeHtml(rec.warm_start_reasons[i] ?? '')}</span></li>`).join('');
    const space = Object.entries(rec.space as Record<string, any>).map(([name, s]) =>
      `<li>${escapeHtml(name)}: [${formatValue(s.low)}, ${formatValue(s.high)}]${s.log ? ' log' : ''}</li>`).join('');
    const similar = (rec.similar_tasks as any[] ?? []).map(t => `<li>${escapeHtml(t.name ?? t.task.slice(0, 8))}
      <span class="xp-muted">distance ${formatValue(t.distance)}, best ${formatValue(t.best_score)}; ${escapeHtml(t.why ?? '')}</span></li>`).join('');
    const recommendation = warm || space
      ? `<h4>Warm-start configurations</h4><ol class="xp-warm">${warm}</ol>
         ${rec.similarity_reason ? `<div class="xp-muted xp-similarity">${escapeHtml(rec.similarity_reason)}</div>` : ''}
         ${rec.adaptation_reason ? `<div class="xp-muted xp-adaptation">${escapeHtml(rec.adaptation_reason)}</div>` : ''}
         ${space ? `<h4>Narrowed space (offered: --narrow or the panel's Apply searches only it)</h4><ul>${space}</ul><div class="xp-muted">${escapeHtml(rec.space_reasons.join(' '))}</div>` : ''}
         <h4>Sampler</h4><div>${escapeHtml(rec.sampler)} <span class="xp-muted">${escapeHtml(rec.sampler_reason)}</span></div>
         ${rec.budget ? `<h4>Budget</h4><div>${rec.budget} trials <span class="xp-muted">${escapeHtml(rec.budget_reason)}</span></div>` : ''}
         ${similar ? `<h4>Most similar past tasks (this task's value first)</h4><ul class="xp-similar">${similar}</ul>` : ''}`
      : '<div class="xp-muted">No recommendation yet: the knowledge table has nothing on this model family and metric.</div>';
    this.node.innerHTML = `${this.backButton()}<div class="xp-header">Knowledge · ${escapeHtml(experiment)}</div>
      <h3>Recommendations for the next optimization</h3><div class="xp-recommendation">${recommendation}</div>
      <h3>What its runs taught (${knowledge.rows.length} newest of ${knowledge.total} rows in the table)</h3>
      ${rows ? `<div class="xp-scroll"><table class="xp-runs xp-knowledge-rows"><thead><tr><th>task</th><th>config</th><th>score</th><th>rating</th></tr></thead><tbody>${rows}</tbody></table></div>`
        : '<div class="xp-muted">No knowledge rows yet: log a metric and call xp.dataset(X, y) in a run.</div>'}`;
    this.wireBack();
  }

  private async renderPhases(experiment: string | null): Promise<void> {
    const query = experiment ? `?${new URLSearchParams({ experiment })}` : '';
    const report = await requestAPI<any>(`phases${query}`);
    const phases: string[] = report.phases;
    const worked = phases.map((_, i) => i).filter(i => report.overlap[i].some((v: number) => v > 0) ||
      report.overlap.some((row: number[]) => row[i] > 0));
    const head = worked.map(j => `<th class="xp-phase-col" title="${escapeHtml(phases[j])}">${escapeHtml(phases[j])}</th>`).join('');
    const body = worked.map(i => `<tr><th>${escapeHtml(phases[i])}</th>${worked.map(j => {
      const share = report.overlap[i][j];
      return `<td class="xp-heat" style="background:${heatColor(share)};color:${heatTextColor(share)}" title="${escapeHtml(`${phases[i]} → ${phases[j]}: ${(share * 100).toFixed(0)}% (${report.count[i][j]} revisits)`)}">${share ? (share * 100).toFixed(0) : ''}</td>`;
    }).join('')}</tr>`).join('');
    const reasons = (report.reasons as any[]).slice(0, 8).map(r =>
      `<li>${escapeHtml(r.from)} → ${escapeHtml(r.to)}: ${escapeHtml(r.reason)} ×${r.count}</li>`).join('');
    this.node.innerHTML = `${this.backButton()}<div class="xp-header">Phases${experiment ? ` · ${escapeHtml(experiment)}` : ''}</div>
      <div class="xp-muted">Overlap: the share of each focus phase's effort (${escapeHtml(report.overlap_based_on)}) spent on each phase.</div>
      ${worked.length ? `<table class="xp-heatmap"><thead><tr><th>focus ↓ / worked on →</th>${head}</tr></thead><tbody>${body}</tbody></table>`
        : '<div class="xp-muted">No phase in focus yet: %xp phase KEY.</div>'}
      <p class="xp-phase-summary">${escapeHtml(report.summary)}</p>
      ${reasons ? `<h4>Reasons for revisits</h4><ul>${reasons}</ul>` : ''}`;
    this.wireBack();
  }
}

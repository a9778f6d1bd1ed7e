// Jobs page: the queue with its actions (cancel, stop-and-save, resume, retry, reorder) and the
// selected job's live step, it/s, ETA, loss chart, samples and log, refreshed every second.
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError } from '../api.js';
import { html } from '../html.js';
import { t } from '../i18n.js';
import { LossChart } from '../loss-chart.js';
import { showError } from '../toast.js';

const fmtEta = (s: number | null) => (s === null || s === undefined ? '—' : s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`);

export function JobsPage() {
  const [jobs, setJobs] = useState<any[]>([]);
  const [sel, setSel] = useState<number | null>(null);
  const [detail, setDetail] = useState<any>(null);
  const refresh = async () => {
    const list = (await api('GET', '/api/jobs')).jobs;
    setJobs(list);
    const id = sel ?? list.at(-1)?.id ?? null;
    if (sel === null && id !== null) setSel(id);
    if (id !== null) setDetail(await api('GET', `/api/jobs/${id}`));
  };
  useEffect(() => {
    void refresh().catch(showError);
    const h = setInterval(() => void refresh().catch(() => undefined), 1000);
    return () => clearInterval(h);
  }, [sel]);
  const act = async (id: number, action: string, body: Record<string, unknown> = {}) => {
    try { await api('POST', `/api/jobs/${id}/${action}`, body); await refresh(); } catch (e) {
      if (e instanceof ApiError && e.status === 409 && e.body.exists && confirm(`${e.message}\n\n${t('train.confirmOverwrite')}`)) return act(id, action, { ...body, overwrite: true });
      showError(e);
    }
  };
  const j = detail?.job;
  return html`<div class="split">
    <aside><h2>${t('nav.jobs')}</h2>
      <ul class="list jobs">${jobs.map((x) => html`<li class=${x.id === sel ? 'sel' : ''} data-testid="job-item" data-status=${x.status}>
        <a href="#/jobs" onClick=${() => setSel(x.id)}>#${x.id} ${x.name}</a> <span class=${`status s-${x.status}`}>${t(`status.${x.status}`)}</span>
        <progress max=${x.maxSteps || 1} value=${x.step}></progress>
        <div class="actions">
          ${x.status === 'queued' ? html`<button class="small" title=${t('jobs.up')} onClick=${() => act(x.id, 'move', { direction: 'up' })}>↑</button><button class="small" title=${t('jobs.down')} onClick=${() => act(x.id, 'move', { direction: 'down' })}>↓</button>` : null}
          ${['queued', 'running', 'stopping'].includes(x.status) ? html`<button class="small" onClick=${() => act(x.id, 'cancel')}>${t('jobs.cancel')}</button>` : null}
          ${x.status === 'running' ? html`<button class="small" data-testid="stop" onClick=${() => act(x.id, 'stop')}>${t('jobs.stop')}</button>` : null}
          ${['stopped', 'failed', 'cancelled'].includes(x.status) && x.stateDir ? html`<button class="small" onClick=${() => act(x.id, 'resume')}>${t('jobs.resume')}</button>` : null}
          ${['done', 'failed', 'cancelled', 'stopped'].includes(x.status) ? html`<button class="small" onClick=${() => act(x.id, 'retry')}>${t('jobs.retry')}</button>` : null}
        </div></li>`)}</ul>
      ${jobs.length ? null : html`<p class="hint">${t('jobs.none')}</p>`}
    </aside>
    <section class="content">${!j ? null : html`
      <h2>#${j.id} ${j.name} <span class=${`status s-${j.status}`} data-testid="job-status">${t(`status.${j.status}`)}</span></h2>
      <dl class="stats">
        <dt>${t('jobs.step')}</dt><dd data-testid="job-step">${j.step} / ${j.maxSteps}</dd>
        <dt>${t('jobs.epoch')}</dt><dd>${j.epoch} / ${j.epochs}</dd>
        <dt>it/s</dt><dd data-testid="job-its">${j.itPerSec ? j.itPerSec.toFixed(2) : '—'}</dd>
        <dt>ETA</dt><dd>${fmtEta(j.etaSec)}</dd>
        <dt>${t('jobs.loss')}</dt><dd>${j.loss === null ? '—' : j.loss.toFixed(4)}</dd>
        <dt>${t('jobs.device')}</dt><dd>${j.device}</dd>
      </dl>
      ${j.error ? html`<p class="bad">${j.error}</p>` : null}
      ${j.output ? html`<p>${t('jobs.output')}: <code data-testid="job-output">${j.output}</code> <a href="#/library">${t('nav.library')}</a></p>` : null}
      <${LossChart} points=${detail.loss} />
      ${detail.samples.length ? html`<h3>${t('jobs.samples')}</h3><div class="samples">${detail.samples.slice(-12).map((f: string) => html`<figure><img src=${`/api/jobs/${j.id}/samples/${encodeURIComponent(f)}`} /><figcaption>${f}</figcaption></figure>`)}</div>` : null}
      <h3>${t('jobs.log')}</h3><pre class="log" data-testid="job-log">${detail.log.join('\n')}</pre>
    `}</section></div>`;
}

// Library page: LoRA cards (preview, family, algorithm, dim/alpha, trigger tags, hash) from the
// workspace's nested LoRA folders; search and family filter; rename/move that never overwrite;
// delete to the trash; "use" sends the LoRA to the Generate page.
import { useEffect, useState } from 'preact/hooks';
import { api, enc } from '../api.js';
import { html } from '../html.js';
import { t } from '../i18n.js';
import { showError, showOk } from '../toast.js';

export function LibraryPage() {
  const [q, setQ] = useState('');
  const [family, setFamily] = useState('');
  const [data, setData] = useState<{ loras: any[]; problems: string[] }>({ loras: [], problems: [] });
  const load = () => api('GET', `/api/library?q=${enc(q)}&family=${enc(family)}`).then(setData).catch(showError);
  useEffect(() => { void load(); }, [q, family]);
  const rename = async (c: any) => {
    const to = prompt(t('library.renamePrompt'), c.relName);
    if (!to || to === c.relName) return;
    try { await api('POST', '/api/library/move', { from: c.relName, to }); showOk(t('library.moved', { name: to })); await load(); } catch (e) { showError(e); }
  };
  const del = async (c: any) => {
    if (!confirm(t('library.deleteConfirm', { name: c.relName }))) return;
    try { await api('POST', '/api/library/delete', { name: c.relName }); await load(); } catch (e) { showError(e); }
  };
  return html`<section class="content">
    <h2>${t('nav.library')}</h2>
    <div class="row"><input type="search" data-testid="library-search" placeholder=${t('library.search')} value=${q} onInput=${(e: Event) => setQ((e.target as HTMLInputElement).value)} />
      <select value=${family} onChange=${(e: Event) => setFamily((e.target as HTMLSelectElement).value)}><option value="">${t('library.allFamilies')}</option><option value="sd1">SD 1.x</option><option value="sd2">SD 2.x</option><option value="sdxl">SDXL</option></select></div>
    <div class="cards">${data.loras.map((c) => html`<article class="card" data-testid="lora-card" data-name=${c.relName}>
      ${c.preview ? html`<img src=${`/api/library/preview?path=${enc(c.preview)}`} alt="" />` : html`<div class="noimg">${t('library.noPreview')}</div>`}
      <h3>${c.relName}</h3>
      <dl><dt>${t('library.family')}</dt><dd>${c.family}</dd><dt>${t('library.algorithm')}</dt><dd>${c.algorithms.join(', ')}</dd>
        <dt>dim / alpha</dt><dd>${c.dim} / ${c.alpha}</dd>${c.epoch !== null ? html`<dt>${t('library.epoch')}</dt><dd>${c.epoch} (${c.steps} ${t('jobs.step')})</dd>` : null}
        <dt>${t('library.hash')}</dt><dd><code>${String(c.hash).slice(0, 12)}</code></dd></dl>
      <div class="tags">${c.triggerTags.map((x: string) => html`<span class="chip">${x}</span>`)}</div>
      <div class="actions">
        <a class="button small" data-testid="use-lora" href=${`#/generate?lora=${enc(c.relName)}`}>${t('library.use')}</a>
        <button class="small" onClick=${() => rename(c)}>${t('library.rename')}</button>
        <button class="small" onClick=${() => del(c)}>${t('library.delete')}</button>
      </div></article>`)}</div>
    ${data.loras.length ? null : html`<p class="hint">${t('library.empty')}</p>`}
    ${data.problems.length ? html`<ul class="notes">${data.problems.map((p) => html`<li>${p}</li>`)}</ul>` : null}
  </section>`;
}

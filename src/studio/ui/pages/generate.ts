// Generate page: txt2img with LoRA chips (weight slider, separate te/unet weights) kept in sync
// with the prompt's <lora:...> tags, sampler/steps/CFG/seed/size, a gallery with each image's
// infotext, and the LoRA weight x saved epoch grid used to pick the best epoch.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
import { html } from '../html.js';
import { t } from '../i18n.js';
import { type LoraTag, readLoraTags, removeLoraTag, writeLoraTag } from '../lora-tags.js';
import { showError } from '../toast.js';

const SAMPLERS = ['euler_a', 'euler', 'ddim', 'ddpm', 'dpmpp_2m', 'dpmpp_2m_karras'];

function Chip({ tag, onChange, onRemove }: { tag: LoraTag; onChange: (t: LoraTag) => void; onRemove: () => void }) {
  const [split, setSplit] = useState(tag.te !== tag.unet);
  return html`<div class="lora-chip" data-testid="lora-chip" data-name=${tag.name}>
    <b>${tag.name}</b>
    ${split ? html`
      <label>te <input type="range" min="-1" max="2" step="0.05" value=${tag.te} onInput=${(e: Event) => onChange({ ...tag, te: Number((e.target as HTMLInputElement).value) })} /> ${tag.te}</label>
      <label>unet <input type="range" min="-1" max="2" step="0.05" value=${tag.unet} onInput=${(e: Event) => onChange({ ...tag, unet: Number((e.target as HTMLInputElement).value) })} /> ${tag.unet}</label>`
    : html`<input type="range" data-testid="lora-weight" min="-1" max="2" step="0.05" value=${tag.te} onInput=${(e: Event) => { const w = Number((e.target as HTMLInputElement).value); onChange({ ...tag, te: w, unet: w }); }} /> <span>${tag.te}</span>`}
    <label class="small"><input type="checkbox" checked=${split} onChange=${() => { setSplit(!split); if (split) onChange({ ...tag, unet: tag.te }); }} /> te/unet</label>
    <button class="small" onClick=${onRemove} aria-label=${t('common.remove')}>×</button>
  </div>`;
}

export function GeneratePage({ params }: { params: URLSearchParams }) {
  const [f, setF] = useState(() => ({ model: 'tiny', prompt: '', negativePrompt: '', sampler: 'euler_a', steps: 20, cfgScale: 7, seed: -1, width: 512, height: 512, ...JSON.parse(localStorage.getItem('sdlora-generate') ?? '{}') }));
  const [library, setLibrary] = useState<any[]>([]);
  const [gallery, setGallery] = useState<any[]>([]);
  const [busy, setBusy] = useState(false);
  const [grid, setGrid] = useState<{ loras: string[]; weights: string; result: any[] | null }>({ loras: [], weights: '0.5, 1', result: null });
  const set = (k: string, v: unknown) => setF((o: any) => ({ ...o, [k]: v }));
  useEffect(() => { localStorage.setItem('sdlora-generate', JSON.stringify(f)); }, [f]);
  useEffect(() => {
    api('GET', '/api/library').then((r) => setLibrary(r.loras)).catch(showError);
    api('GET', '/api/gallery').then((r) => setGallery(r.images)).catch(showError);
    const l = params.get('lora');
    if (l) setF((o: any) => ({ ...o, prompt: writeLoraTag(o.prompt, { name: l, te: 1, unet: 1 }) }));
  }, []);
  const tags = readLoraTags(f.prompt);
  const body = () => ({ ...f, seed: Number(f.seed) < 0 ? undefined : Number(f.seed) });
  const generate = async () => {
    setBusy(true);
    try { await api('POST', '/api/generate', body()); setGallery((await api('GET', '/api/gallery')).images); } catch (e) { showError(e); } finally { setBusy(false); }
  };
  const runGrid = async () => {
    setBusy(true);
    try {
      const weights = grid.weights.split(',').map((w) => Number(w.trim()));
      const prompt = f.prompt.includes('<lora:GRID') ? f.prompt : `${f.prompt} <lora:GRID>`;
      const r = await api('POST', '/api/generate', { ...body(), prompt, seed: Number(f.seed) < 0 ? 1 : Number(f.seed), grid: { loras: grid.loras, weights } });
      setGrid({ ...grid, result: r.images });
    } catch (e) { showError(e); } finally { setBusy(false); }
  };
  const weights = grid.weights.split(',').map((w) => Number(w.trim()));
  const num = (k: string) => (e: Event) => set(k, Number((e.target as HTMLInputElement).value));
  return html`<div class="split">
    <section class="content">
      <h2>${t('nav.generate')}</h2>
      <label class="field wide"><span>${t('generate.prompt')}</span><textarea data-testid="prompt" rows="3" value=${f.prompt} onInput=${(e: Event) => set('prompt', (e.target as HTMLTextAreaElement).value)}></textarea></label>
      <div class="chips">${tags.map((tag) => html`<${Chip} key=${tag.name} tag=${tag} onChange=${(n: LoraTag) => set('prompt', writeLoraTag(f.prompt, n))} onRemove=${() => set('prompt', removeLoraTag(f.prompt, tag.name))} />`)}
        <select data-testid="add-lora" onChange=${(e: Event) => { const v = (e.target as HTMLSelectElement).value; if (v) set('prompt', writeLoraTag(f.prompt, { name: v, te: 1, unet: 1 })); (e.target as HTMLSelectElement).value = ''; }}>
          <option value="">${t('generate.addLora')}</option>${library.map((l) => html`<option value=${l.relName}>${l.relName}</option>`)}</select></div>
      <label class="field wide"><span>${t('generate.negative')}</span><textarea rows="2" value=${f.negativePrompt} onInput=${(e: Event) => set('negativePrompt', (e.target as HTMLTextAreaElement).value)}></textarea></label>
      <div class="row params">
        <label>${t('generate.model')} <input value=${f.model} onInput=${(e: Event) => set('model', (e.target as HTMLInputElement).value)} /></label>
        <label>${t('generate.sampler')} <select value=${f.sampler} onChange=${(e: Event) => set('sampler', (e.target as HTMLSelectElement).value)}>${SAMPLERS.map((s) => html`<option>${s}</option>`)}</select></label>
        <label>${t('generate.steps')} <input type="number" class="num" data-testid="gen-steps" min="1" max="150" value=${f.steps} onInput=${num('steps')} /></label>
        <label>CFG <input type="number" class="num" step="0.5" value=${f.cfgScale} onInput=${num('cfgScale')} /></label>
        <label>${t('generate.seed')} <input type="number" class="num" value=${f.seed} onInput=${num('seed')} /></label>
        <label>${t('generate.width')} <input type="number" class="num" data-testid="gen-width" step="8" value=${f.width} onInput=${num('width')} /></label>
        <label>${t('generate.height')} <input type="number" class="num" data-testid="gen-height" step="8" value=${f.height} onInput=${num('height')} /></label>
        <button class="primary" data-testid="generate" disabled=${busy || !f.prompt.trim()} onClick=${generate}>${busy ? t('generate.busy') : t('generate.go')}</button>
      </div>
      <details><summary>${t('generate.grid')}</summary>
        <p class="hint">${t('generate.gridHint')}</p>
        <div class="checks">${library.map((l) => html`<label><input type="checkbox" checked=${grid.loras.includes(l.relName)} onChange=${(e: Event) => setGrid({ ...grid, loras: (e.target as HTMLInputElement).checked ? [...grid.loras, l.relName] : grid.loras.filter((x) => x !== l.relName) })} /> ${l.relName}${l.epoch !== null ? ` (${t('library.epoch')} ${l.epoch})` : ''}</label>`)}</div>
        <label>${t('generate.weights')} <input value=${grid.weights} onInput=${(e: Event) => setGrid({ ...grid, weights: (e.target as HTMLInputElement).value })} /></label>
        <button disabled=${busy || !grid.loras.length} onClick=${runGrid}>${t('generate.runGrid')}</button>
        ${grid.result ? html`<table class="xy"><tr><th></th>${weights.map((w) => html`<th>${w}</th>`)}</tr>
          ${grid.loras.map((l) => html`<tr><th>${l}</th>${weights.map((w) => { const im = grid.result!.find((x) => x.cell?.lora === l && x.cell?.weight === w); return html`<td>${im ? html`<img src=${`/api/gallery/${encodeURIComponent(im.file)}`} title=${im.infotext} />` : null}</td>`; })}</tr>`)}</table>` : null}
      </details>
    </section>
    <aside class="gallery"><h3>${t('generate.gallery')}</h3>
      ${gallery.map((g) => html`<figure data-testid="gallery-item"><img src=${`/api/gallery/${encodeURIComponent(g.file)}`} alt="" /><figcaption><pre class="infotext" data-testid="infotext">${g.infotext}</pre></figcaption></figure>`)}
      ${gallery.length ? null : html`<p class="hint">${t('generate.empty')}</p>`}
    </aside></div>`;
}

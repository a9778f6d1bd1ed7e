// Train page: the form generated from the CLI's option schema, presets, import/export of
// sd-scripts JSON/TOML and kohya_ss GUI configs, the estimator's VRAM/RAM/time updated as fields
// change, and "start", which the server refuses with the reason when the run cannot fit.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from '../api.js';
import { html } from '../html.js';
import { t } from '../i18n.js';
import { showError, showOk } from '../toast.js';

interface Opt { key: string; type: string; default?: unknown; doc: string; choices?: string[]; min?: number; max?: number }

/** The fields shown first; the rest are under "all options". */
const MAIN = ['pretrained_model_name_or_path', 'resolution', 'train_batch_size', 'max_train_steps', 'max_train_epochs', 'learning_rate', 'network_dim', 'network_alpha', 'optimizer_type', 'lr_scheduler', 'mixed_precision', 'gradient_checkpointing', 'cache_latents', 'save_every_n_steps', 'save_every_n_epochs', 'sample_every_n_steps', 'seed', 'device'];

function Field({ o, value, set }: { o: Opt; value: unknown; set: (v: unknown) => void }) {
  const id = `opt-${o.key}`;
  const shown = value ?? '';
  let input;
  if (o.type === 'boolean') input = html`<input type="checkbox" id=${id} data-testid=${id} checked=${Boolean(value ?? o.default)} onChange=${(e: Event) => set((e.target as HTMLInputElement).checked)} />`;
  else if (o.choices) input = html`<select id=${id} data-testid=${id} value=${String(value ?? o.default ?? '')} onChange=${(e: Event) => set((e.target as HTMLSelectElement).value)}>${o.choices.map((c) => html`<option value=${c}>${c}</option>`)}</select>`;
  else if (o.type === 'number' || o.type === 'integer' || o.type === 'number?') input = html`<input type="number" id=${id} data-testid=${id} step="any" min=${o.min} max=${o.max} placeholder=${o.default === undefined ? '' : String(o.default)} value=${String(shown)} onInput=${(e: Event) => { const v = (e.target as HTMLInputElement).value; set(v === '' ? undefined : Number(v)); }} />`;
  else input = html`<input id=${id} data-testid=${id} placeholder=${o.default === undefined ? '' : String(o.default)} value=${Array.isArray(shown) ? shown.join(', ') : String(shown)} onInput=${(e: Event) => { const v = (e.target as HTMLInputElement).value; set(v === '' ? undefined : o.type === 'string[]' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v); }} />`;
  return html`<label class="field" title=${o.doc}><span>${o.key}</span>${input}<small>${o.doc}</small></label>`;
}

export function TrainPage() {
  const [schema, setSchema] = useState<{ options: Opt[]; presets: { id: string; values: Record<string, unknown> }[]; devices: { id: string; name: string; memoryGB: number }[] } | null>(null);
  const [values, setValues] = useState<Record<string, unknown>>(() => JSON.parse(localStorage.getItem('sdlora-train-values') ?? 'null') ?? {});
  const [datasets, setDatasets] = useState<string[]>([]);
  const [device, setDevice] = useState(localStorage.getItem('sdlora-estimate-device') ?? 'cpu');
  const [est, setEst] = useState<any>(null);
  const [estErr, setEstErr] = useState<string | null>(null);
  const [notes, setNotes] = useState<string[]>([]);
  const [showAll, setShowAll] = useState(false);
  const timer = useRef<number>();

  useEffect(() => {
    api('GET', '/api/train/schema').then((s) => { setSchema(s); if (!Object.keys(values).length) setValues({ ...s.presets[0].values }); }).catch(showError);
    api('GET', '/api/datasets').then((r) => setDatasets(r.datasets.map((d: any) => d.name))).catch(showError);
  }, []);
  useEffect(() => {
    localStorage.setItem('sdlora-train-values', JSON.stringify(values));
    localStorage.setItem('sdlora-estimate-device', device);
    clearTimeout(timer.current);
    timer.current = setTimeout(() => {
      api('POST', '/api/train/estimate', { values: clean(values), device }).then((e) => { setEst(e); setEstErr(null); }).catch((e) => { setEst(null); setEstErr(e.message); });
    }, 250) as unknown as number;
  }, [values, device]);
  if (!schema) return html`<p>…</p>`;

  const set = (k: string) => (v: unknown) => setValues((old) => { const n = { ...old }; if (v === undefined) delete n[k]; else n[k] = v; return n; });
  const clean = (v: Record<string, unknown>) => Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined && x !== ''));
  const applyPreset = (id: string) => { const p = schema.presets.find((x) => x.id === id); if (p) setValues((old) => ({ pretrained_model_name_or_path: old.pretrained_model_name_or_path, train_data_dir: old.train_data_dir, output_name: old.output_name, ...p.values })); };
  const importFile = async (f: File) => {
    try { const r = await api('POST', '/api/train/import', { filename: f.name, text: await f.text() }); setValues((old) => ({ ...old, ...r.values })); setNotes(r.notes); showOk(t('train.imported', { n: Object.keys(r.values).length })); } catch (e) { showError(e); }
  };
  const exportAs = async (format: string) => {
    const res = await fetch('/api/train/export', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ values: clean(values), format }) });
    const a = document.createElement('a');
    if (!res.ok) { showError(new Error((await res.json()).error)); return; }
    const notes = res.headers.get('x-sdlora-notes');
    if (notes) setNotes(JSON.parse(decodeURIComponent(notes)));
    a.href = URL.createObjectURL(await res.blob()); a.download = `${values.output_name || 'config'}${format === 'kohya-gui' ? '-kohya_ss' : ''}.${format === 'toml' ? 'toml' : 'json'}`; a.click();
  };
  const start = async (overwrite = false) => {
    try {
      await api('POST', '/api/jobs', { values: clean(values), estimateDevice: device, overwrite });
      showOk(t('train.queued')); location.hash = '#/jobs';
    } catch (e) {
      if (e instanceof ApiError && e.status === 409 && e.body.exists && confirm(`${e.message}\n\n${t('train.confirmOverwrite')}`)) return start(true);
      showError(e);
    }
  };
  const opts = schema.options.filter((o) => !['train_data_dir', 'reg_data_dir', 'output_name', 'sample_prompts'].includes(o.key));
  const main = MAIN.map((k) => opts.find((o) => o.key === k)).filter(Boolean) as Opt[];
  const rest = opts.filter((o) => !MAIN.includes(o.key));

  return html`<div class="train">
    <section class="content">
      <h2>${t('nav.train')}</h2>
      <div class="row">
        <label>${t('train.preset')} <select data-testid="preset" onChange=${(e: Event) => applyPreset((e.target as HTMLSelectElement).value)}>
          <option value="">—</option>${schema.presets.map((p) => html`<option value=${p.id}>${t(`preset.${p.id}`)}</option>`)}</select></label>
        <label class="filebtn">${t('train.import')} <input type="file" accept=".json,.toml" data-testid="import" onChange=${(e: Event) => { const f = (e.target as HTMLInputElement).files?.[0]; if (f) void importFile(f); }} /></label>
        <button onClick=${() => exportAs('json')}>${t('train.exportJson')}</button><button onClick=${() => exportAs('toml')}>${t('train.exportToml')}</button><button onClick=${() => exportAs('kohya-gui')}>${t('train.exportGui')}</button>
      </div>
      ${notes.length ? html`<ul class="notes">${notes.map((n) => html`<li>${n}</li>`)}</ul>` : null}
      <div class="fields">
        <label class="field"><span>${t('train.dataset')}</span><select data-testid="train-dataset" value=${String(values.train_data_dir ?? '')} onChange=${(e: Event) => set('train_data_dir')((e.target as HTMLSelectElement).value || undefined)}>
          <option value="">—</option>${datasets.map((d) => html`<option value=${d}>${d}</option>`)}</select><small>${t('train.datasetDoc')}</small></label>
        <label class="field"><span>output_name</span><input data-testid="opt-output_name" value=${String(values.output_name ?? '')} onInput=${(e: Event) => set('output_name')((e.target as HTMLInputElement).value || undefined)} /><small>${t('train.outputDoc')}</small></label>
        <label class="field wide"><span>${t('train.samplePrompts')}</span><textarea data-testid="opt-sample_prompts" rows="2" value=${String(values.sample_prompts ?? '')} onInput=${(e: Event) => set('sample_prompts')((e.target as HTMLTextAreaElement).value || undefined)}></textarea><small>${t('train.samplePromptsDoc')}</small></label>
        ${main.map((o) => html`<${Field} key=${o.key} o=${o} value=${values[o.key]} set=${set(o.key)} />`)}
      </div>
      <button class="link" onClick=${() => setShowAll(!showAll)}>${showAll ? t('train.fewer') : t('train.allOptions', { n: rest.length })}</button>
      ${showAll ? html`<div class="fields">${rest.map((o) => html`<${Field} key=${o.key} o=${o} value=${values[o.key]} set=${set(o.key)} />`)}</div>` : null}
    </section>
    <aside class="estimate" data-testid="estimate">
      <h3>${t('train.estimate')}</h3>
      <label>${t('train.device')} <select value=${device} onChange=${(e: Event) => setDevice((e.target as HTMLSelectElement).value)}>${schema.devices.map((d) => html`<option value=${d.id}>${d.name} (${d.memoryGB} GB)</option>`)}</select></label>
      ${est ? html`<dl>
        <dt>VRAM</dt><dd data-testid="est-vram">${est.vramGB.toFixed(2)} GB</dd><dt>RAM</dt><dd>${est.ramGB.toFixed(2)} GB</dd>
        <dt>${t('train.perStep')}</dt><dd>${est.secondsPerStep.toFixed(2)} s</dd><dt>${t('train.total')}</dt><dd>${est.totalHours >= 1 ? `${est.totalHours.toFixed(1)} h` : `${(est.totalHours * 60).toFixed(1)} min`}</dd></dl>
        <p class=${est.fits ? 'ok' : 'bad'} data-testid="est-fits">${est.fits ? t('train.fits') : t('train.noFit')}</p>` : null}
      ${estErr ? html`<p class="bad">${estErr}</p>` : null}
      <button class="primary" data-testid="start-training" onClick=${() => start()} disabled=${!est?.fits}>${t('train.start')}</button>
    </aside></div>`;
}

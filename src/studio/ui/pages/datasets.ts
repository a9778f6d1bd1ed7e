// Datasets page: kohya-layout datasets, concept folders with repeats, drag-and-drop uploads,
// thumbnails with inline caption editing, tag chips with counts and bulk tag operations, and the
// dataset check report with the offending images highlighted.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, enc } from '../api.js';
import { html } from '../html.js';
import { t } from '../i18n.js';
import { showError, showOk } from '../toast.js';

interface Concept { folder: string; name: string; repeats: number; images: number }
interface Dataset { name: string; concepts: Concept[] }
interface Img { concept: string; file: string; caption: string; version: string }

const imgUrl = (ds: string, im: { concept: string; file: string }, thumb = true) => `/api/datasets/${enc(ds)}/concepts/${enc(im.concept)}/images/${enc(im.file)}${thumb ? '?thumb=1' : ''}`;

/** Uploads files into a concept; an existing name is replaced only after the user says so. */
async function upload(ds: string, concept: string, files: File[]): Promise<number> {
  let n = 0;
  for (const f of files) {
    const url = `/api/datasets/${enc(ds)}/concepts/${enc(concept)}/images/${enc(f.name)}`;
    try {
      await api('PUT', url, undefined, f);
      n++;
    } catch (e) {
      if (e instanceof ApiError && e.status === 409 && confirm(t('datasets.overwrite', { file: f.name }))) { await api('PUT', `${url}?overwrite=1`, undefined, f); n++; }
      else if (!(e instanceof ApiError && e.status === 409)) showError(e);
    }
  }
  return n;
}

function CaptionEditor({ ds, im, onSaved, onDeleted, flagged }: { ds: string; im: Img; onSaved: () => void; onDeleted: () => void; flagged: string[] }) {
  const [text, setText] = useState(im.caption);
  // The version and text last saved live in refs: blur and the save button both fire one after
  // the other, and the second save must see what the first one wrote (or skip, nothing changed).
  const saved = useRef({ text: im.caption, version: im.version });
  const chain = useRef<Promise<void>>(Promise.resolve());
  useEffect(() => { setText(im.caption); saved.current = { text: im.caption, version: im.version }; }, [im.caption, im.version]);
  const save = () => {
    chain.current = chain.current.then(async () => {
      const current = textRef.current;
      if (current === saved.current.text) return;
      try {
        const r = await api('PUT', `/api/datasets/${enc(ds)}/concepts/${enc(im.concept)}/captions/${enc(im.file)}`, { text: current, version: saved.current.version });
        saved.current = { text: current, version: r.version };
        showOk(t('datasets.captionSaved', { file: im.file }));
        onSaved();
      } catch (e) {
        if (e instanceof ApiError && e.status === 409) {
          showError(t('datasets.captionConflict', { file: im.file }));
          saved.current = { text: String(e.body.caption), version: String(e.body.version) };
          setText(String(e.body.caption));
        } else showError(e);
      }
    });
    return chain.current;
  };
  const remove = async () => {
    if (!confirm(t('datasets.deleteConfirm', { file: im.file }))) return;
    try { await api('DELETE', `/api/datasets/${enc(ds)}/concepts/${enc(im.concept)}/images/${enc(im.file)}`); onDeleted(); } catch (e) { showError(e); }
  };
  const textRef = useRef(text);
  textRef.current = text;
  return html`<figure class=${`thumb ${flagged.length ? 'flagged' : ''}`} data-testid="thumb" data-file=${im.file} title=${flagged.join(', ')}>
    <img src=${imgUrl(ds, im)} alt=${im.file} loading="lazy" />
    <figcaption><small>${im.concept}/${im.file}</small>
      ${flagged.length ? html`<div class="flags">${flagged.map((f) => html`<span class="chip warn">${f}</span>`)}</div>` : null}
      <textarea data-testid="caption" rows="3" value=${text} onInput=${(e: Event) => setText((e.target as HTMLTextAreaElement).value)} onBlur=${save}
        onKeyDown=${(e: KeyboardEvent) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void save(); }} placeholder=${t('datasets.captionPlaceholder')}></textarea>
      <div class="actions"><button class="small" data-testid="save-caption" onClick=${save}>${t('common.save')}</button>
        <button class="small" data-testid="delete-image" onClick=${remove}>${t('datasets.deleteImage')}</button></div>
    </figcaption></figure>`;
}

function CheckReport({ report }: { report: any }) {
  return html`<section class="report" data-testid="check-report"><h3>${t('datasets.checkTitle')}</h3>
    <p class="hint">${t('datasets.guidance')}</p>
    ${report.concepts.map((c: any) => html`<div class="concept-report">
      <b>${c.folder}</b>: ${t('datasets.imagesCount', { n: c.images })} · <span class=${`verdict v-${c.verdict.replace(/ /g, '-')}`}>${t(`verdict.${c.verdict}`)}</span>
      · ${t('datasets.repeats')} ${c.repeats}
      ${c.missingCaptions.length ? html`<div class="warn">${t('datasets.missingCaptions')}: ${c.missingCaptions.map((f: string) => f.split('/').pop()).join(', ')}</div>` : null}
      ${c.duplicates.length ? html`<div class="warn">${t('datasets.duplicates')}: ${c.duplicates.map((d: any) => `${d[0].split('/').pop()} ≈ ${d[1].split('/').pop()}`).join('; ')}</div>` : null}
      ${c.tiny.length ? html`<div class="warn">${t('datasets.tiny')}: ${c.tiny.map((f: string) => f.split('/').pop()).join(', ')}</div>` : null}
      ${c.similarBackgrounds ? html`<div class="warn">${t('datasets.similarBackgrounds')}</div>` : null}
      <div class="hint">${c.flipAdvice}</div>
    </div>`)}
    ${report.advice.length ? html`<ul>${report.advice.map((a: string) => html`<li>${a}</li>`)}</ul>` : null}
  </section>`;
}

export function DatasetsPage() {
  const [datasets, setDatasets] = useState<Dataset[]>([]);
  const [current, setCurrent] = useState<string | null>(localStorage.getItem('sdlora-dataset'));
  const [images, setImages] = useState<Img[]>([]);
  const [tags, setTags] = useState<{ tag: string; count: number }[]>([]);
  const [report, setReport] = useState<any>(null);
  const [newName, setNewName] = useState('');
  const [concept, setConcept] = useState({ name: '', repeats: 10 });
  const [bulk, setBulk] = useState({ op: 'add', tag: '', to: '', position: 0 });
  const [dragOver, setDragOver] = useState<string | null>(null);

  const loadList = async () => setDatasets((await api('GET', '/api/datasets')).datasets);
  const loadCurrent = async () => {
    if (!current) return;
    try {
      setImages((await api('GET', `/api/datasets/${enc(current)}/images`)).images);
      setTags((await api('GET', `/api/datasets/${enc(current)}/tags`)).tags);
    } catch (e) { if (e instanceof ApiError && e.status === 404) setCurrent(null); else showError(e); }
  };
  useEffect(() => { void loadList().catch(showError); }, []);
  useEffect(() => { if (current) localStorage.setItem('sdlora-dataset', current); setReport(null); void loadCurrent(); }, [current]);
  const ds = datasets.find((d) => d.name === current);

  const create = async () => {
    try { await api('POST', '/api/datasets', { name: newName.trim() }); setCurrent(newName.trim()); setNewName(''); await loadList(); } catch (e) { showError(e); }
  };
  const addConcept = async () => {
    try { await api('POST', `/api/datasets/${enc(current!)}/concepts`, { name: concept.name.trim(), repeats: Number(concept.repeats) }); setConcept({ ...concept, name: '' }); await loadList(); } catch (e) { showError(e); }
  };
  const onFiles = async (folder: string, files: File[]) => {
    const n = await upload(current!, folder, files);
    if (n) showOk(t('datasets.uploaded', { n }));
    await loadList(); await loadCurrent();
  };
  const runBulk = async () => {
    try { const r = await api('POST', `/api/datasets/${enc(current!)}/tags`, bulk); showOk(t('datasets.bulkDone', { n: r.changed })); await loadCurrent(); } catch (e) { showError(e); }
  };
  const check = async () => {
    try { setReport((await api('GET', `/api/datasets/${enc(current!)}/check`)).report); } catch (e) { showError(e); }
  };
  const flagsOf = (im: Img): string[] => {
    if (!report) return [];
    const c = report.concepts.find((x: any) => x.folder === im.concept);
    if (!c) return [];
    // Entries name the file, some with a note after it ("a.png (64x64)", "b.png (bad header)").
    const names = (f: string) => { const n = f.split('/').pop()!; return n === im.file || n.startsWith(`${im.file} (`); };
    const has = (list: string[]) => list.some(names);
    return [
      ...(has(c.missingCaptions) ? [t('datasets.missingCaptions')] : []), ...(has(c.emptyCaptions) ? [t('datasets.emptyCaption')] : []),
      ...(has(c.unreadable) ? [t('datasets.unreadable')] : []), ...(has(c.tiny) ? [t('datasets.tiny')] : []),
      ...(c.duplicates.some((d: string[]) => d[0].split('/').pop() === im.file || d[1].split('/').pop() === im.file) ? [t('datasets.duplicates')] : []),
    ];
  };

  return html`<div class="split">
    <aside>
      <h2>${t('nav.datasets')}</h2>
      <ul class="list">${datasets.map((d) => html`<li class=${d.name === current ? 'sel' : ''}><a href="#/datasets" data-testid="dataset-item" onClick=${() => setCurrent(d.name)}>${d.name}</a> <small>${d.concepts.reduce((a, c) => a + c.images, 0)}</small></li>`)}</ul>
      <div class="row"><input data-testid="new-dataset-name" placeholder=${t('datasets.newName')} value=${newName} onInput=${(e: Event) => setNewName((e.target as HTMLInputElement).value)} />
        <button data-testid="create-dataset" onClick=${create} disabled=${!newName.trim()}>${t('datasets.create')}</button></div>
    </aside>
    <section class="content">${!ds ? html`<p class="hint">${t('datasets.pick')}</p>` : html`
      <h2>${ds.name}</h2>
      <div class="concepts">${ds.concepts.map((c) => html`
        <div class=${`dropzone ${dragOver === c.folder ? 'over' : ''}`} data-testid="dropzone" data-folder=${c.folder}
          onDragOver=${(e: DragEvent) => { e.preventDefault(); setDragOver(c.folder); }} onDragLeave=${() => setDragOver(null)}
          onDrop=${(e: DragEvent) => { e.preventDefault(); setDragOver(null); void onFiles(c.folder, Array.from(e.dataTransfer?.files ?? [])); }}>
          <b>${c.name}</b> <span class="chip">${t('datasets.repeats')} ${c.repeats}</span> <small>${t('datasets.imagesCount', { n: c.images })}</small>
          <p class="hint">${t('datasets.dropHere')}</p>
          <input type="file" multiple accept="image/png,image/jpeg,image/webp" data-testid="upload" onChange=${(e: Event) => { const el = e.target as HTMLInputElement; void onFiles(c.folder, Array.from(el.files ?? [])).then(() => { el.value = ''; }); }} />
        </div>`)}
        <div class="row add-concept">
          <input data-testid="concept-name" placeholder=${t('datasets.conceptName')} value=${concept.name} onInput=${(e: Event) => setConcept({ ...concept, name: (e.target as HTMLInputElement).value })} />
          <label>${t('datasets.repeats')} <input type="number" min="1" class="num" data-testid="concept-repeats" value=${concept.repeats} onInput=${(e: Event) => setConcept({ ...concept, repeats: Number((e.target as HTMLInputElement).value) })} /></label>
          <button data-testid="add-concept" onClick=${addConcept} disabled=${!concept.name.trim()}>${t('datasets.addConcept')}</button>
        </div>
      </div>
      <div class="tags" data-testid="tags">${tags.map((x) => html`<span class="chip" onClick=${() => setBulk({ ...bulk, tag: x.tag })}>${x.tag} <b>${x.count}</b></span>`)}</div>
      <div class="row bulk">
        <select value=${bulk.op} data-testid="bulk-op" onChange=${(e: Event) => setBulk({ ...bulk, op: (e.target as HTMLSelectElement).value })}>
          ${['add', 'remove', 'replace', 'move'].map((o) => html`<option value=${o}>${t(`datasets.bulk.${o}`)}</option>`)}</select>
        <input placeholder=${t('datasets.tag')} data-testid="bulk-tag" value=${bulk.tag} onInput=${(e: Event) => setBulk({ ...bulk, tag: (e.target as HTMLInputElement).value })} />
        ${bulk.op === 'replace' ? html`<input placeholder=${t('datasets.replaceWith')} value=${bulk.to} onInput=${(e: Event) => setBulk({ ...bulk, to: (e.target as HTMLInputElement).value })} />` : null}
        ${bulk.op === 'move' ? html`<label>${t('datasets.position')} <input type="number" min="0" class="num" value=${bulk.position} onInput=${(e: Event) => setBulk({ ...bulk, position: Number((e.target as HTMLInputElement).value) })} /></label>` : null}
        <button onClick=${runBulk} disabled=${!bulk.tag.trim()} data-testid="bulk-apply">${t('datasets.applyAll')}</button>
        <button onClick=${check} data-testid="check">${t('datasets.check')}</button>
      </div>
      ${report ? html`<${CheckReport} report=${report} />` : null}
      <div class="grid">${images.map((im) => html`<${CaptionEditor} key=${`${im.concept}/${im.file}`} ds=${ds.name} im=${im} flagged=${flagsOf(im)} onSaved=${() => api('GET', `/api/datasets/${enc(ds.name)}/tags`).then((r) => setTags(r.tags))} onDeleted=${() => { void loadList(); void loadCurrent(); }} />`)}</div>
    `}</section></div>`;
}

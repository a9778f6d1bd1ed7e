// The studio's browser entry: the shell (navigation between the five pages by URL hash,
// language switch, messages) and the pages themselves, one file each under pages/.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { html } from './html.js';
import { lang, setLang, t } from './i18n.js';
import { toast } from './toast.js';
import { DatasetsPage } from './pages/datasets.js';
import { TrainPage } from './pages/train.js';
import { JobsPage } from './pages/jobs.js';
import { LibraryPage } from './pages/library.js';
import { GeneratePage } from './pages/generate.js';

const PAGES: Record<string, (p: { params: URLSearchParams }) => unknown> = { datasets: DatasetsPage, train: TrainPage, jobs: JobsPage, library: LibraryPage, generate: GeneratePage };

function route(): { page: string; params: URLSearchParams } {
  const [p, q] = location.hash.replace(/^#\/?/, '').split('?');
  return { page: PAGES[p] ? p : 'datasets', params: new URLSearchParams(q ?? '') };
}

function App() {
  const [r, setRoute] = useState(route());
  const [, rerender] = useState(0);
  const [msg, setMsg] = useState(toast.get());
  useEffect(() => { const f = () => setRoute(route()); addEventListener('hashchange', f); return () => removeEventListener('hashchange', f); }, []);
  useEffect(() => lang.subscribe(() => rerender((n) => n + 1)), []);
  useEffect(() => toast.subscribe(() => setMsg(toast.get())), []);
  const Page = PAGES[r.page];
  return html`
    <header>
      <span class="brand">sdlora studio</span>
      <nav>${Object.keys(PAGES).map((p) => html`<a href=${`#/${p}`} class=${p === r.page ? 'active' : ''} data-testid=${`nav-${p}`}>${t(`nav.${p}`)}</a>`)}</nav>
      <select class="lang" aria-label=${t('lang.label')} data-testid="lang" value=${lang.get()} onChange=${(e: Event) => setLang((e.target as HTMLSelectElement).value as 'en' | 'ja')}>
        <option value="en">English</option><option value="ja">日本語</option>
      </select>
    </header>
    ${msg ? html`<div class=${`toast ${msg.kind}`} role="status" data-testid="toast" onClick=${() => toast.set(null)}>${msg.text}</div>` : null}
    <main key=${r.page}><${Page} params=${r.params} /></main>`;
}

document.documentElement.lang = lang.get();
render(html`<${App} />`, document.getElementById('app')!);

// Texts of the UI come from one catalogue per language (i18n/en.json, i18n/ja.json), never from
// the components. The language follows the browser unless the user picked one with the switch.
import { signal } from './signal.js';
import en from './i18n/en.json' with { type: 'json' };
import ja from './i18n/ja.json' with { type: 'json' };

export const CATALOGUES: Record<string, Record<string, string>> = { en, ja };
export type Lang = 'en' | 'ja';

function initialLang(): Lang {
  const saved = localStorage.getItem('sdlora-lang');
  if (saved === 'en' || saved === 'ja') return saved;
  return (navigator.languages ?? [navigator.language]).some((l) => l?.toLowerCase().startsWith('ja')) ? 'ja' : 'en';
}

export const lang = signal<Lang>(initialLang());

export function setLang(l: Lang): void {
  localStorage.setItem('sdlora-lang', l);
  document.documentElement.lang = l;
  lang.set(l);
}

/** The text for `key` in the current language ({name} placeholders filled), English when missing. */
export function t(key: string, vars: Record<string, string | number> = {}): string {
  const s = CATALOGUES[lang.get()][key] ?? CATALOGUES.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k: string) => String(vars[k] ?? `{${k}}`));
}

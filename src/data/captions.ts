// Caption processing each time a sample is drawn (sd-scripts process_caption, §1.7): prefix and
// suffix, caption dropout, wildcards, tag shuffling with kept leading tags, tag dropout.
import type { Rng } from '../engine/random.js';
import type { SubsetSpec } from './dataset-spec.js';

function expandWildcards(s: string, rng: Rng): string {
  const L = '\u0001', R = '\u0002';
  const t = s.replace(/\{\{/g, L).replace(/\}\}/g, R).replace(/\{([^{}]*)\}/g, (_, body: string) => {
    const opts = body.split('|');
    return opts[Math.floor(rng.uniform() * opts.length)];
  });
  return t.replace(new RegExp(L, 'g'), '{').replace(new RegExp(R, 'g'), '}');
}

function shuffle<T>(a: T[], rng: Rng): T[] {
  for (let i = a.length - 1; i > 0; i--) { const j = Math.floor(rng.uniform() * (i + 1)); [a[i], a[j]] = [a[j], a[i]]; }
  return a;
}

export function processCaption(caption: string, s: SubsetSpec, epoch: number, rng: Rng): string {
  let c = caption;
  if (s.captionPrefix) c = `${s.captionPrefix} ${c}`;
  if (s.captionSuffix) c = `${c} ${s.captionSuffix}`;
  if ((s.captionDropoutRate > 0 && rng.uniform() < s.captionDropoutRate) || (s.captionDropoutEveryNEpochs > 0 && epoch % s.captionDropoutEveryNEpochs === 0)) return '';
  if (s.enableWildcard) {
    const lines = c.split('\n').filter(Boolean);
    c = expandWildcards(lines[Math.floor(rng.uniform() * lines.length)] ?? '', rng);
  } else {
    c = c.split('\n')[0];
  }
  if (s.shuffleCaption || s.captionTagDropoutRate > 0) {
    const sep = s.captionSeparator;
    let fixed: string[], flex: string[], suffix: string[] = [];
    if (s.keepTokensSeparator && c.includes(s.keepTokensSeparator)) {
      const parts = c.split(s.keepTokensSeparator);
      const split = (x: string | undefined) => (x ?? '').split(sep).map((t) => t.trim()).filter(Boolean);
      // As sd-scripts: the first separator ends the kept part, the second starts the kept suffix
      // (which keeps any later separator in its text).
      fixed = split(parts[0]); flex = split(parts[1]); suffix = split(parts.slice(2).join(s.keepTokensSeparator));
    } else {
      const tags = c.split(sep).map((t) => t.trim());
      fixed = tags.slice(0, s.keepTokens); flex = tags.slice(s.keepTokens);
    }
    if (s.shuffleCaption) shuffle(flex, rng);
    if (s.captionTagDropoutRate > 0) flex = flex.filter(() => rng.uniform() >= s.captionTagDropoutRate);
    c = [...fixed, ...flex, ...suffix].join(', ');
  }
  if (s.secondarySeparator) c = c.split(s.secondarySeparator).join(s.captionSeparator);
  return c;
}

/** tag -> count over raw captions: split on ',', trimmed, lower-cased (sd-scripts §1.10). */
export function tagFrequency(captions: string[]): Record<string, number> {
  const freq: Record<string, number> = {};
  for (const c of captions) for (const t of c.split(',').map((x) => x.trim().toLowerCase()).filter(Boolean)) freq[t] = (freq[t] ?? 0) + 1;
  return freq;
}

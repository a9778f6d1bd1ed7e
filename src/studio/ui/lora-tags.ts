// Keeps the Generate page's LoRA chips and the prompt's <lora:name:te:unet> tags in sync: the
// prompt text is the one source of truth, chips are read from it and edits are written into it.
export interface LoraTag { name: string; te: number; unet: number }

const TAG = /<lora:([^:>]+)(?::([^:>]*))?(?::([^:>]*))?>/g;

export function readLoraTags(prompt: string): LoraTag[] {
  const out: LoraTag[] = [];
  for (const m of prompt.matchAll(TAG)) {
    const te = m[2] === undefined || m[2] === '' ? 1 : Number(m[2]);
    const unet = m[3] === undefined || m[3] === '' ? te : Number(m[3]);
    out.push({ name: m[1], te: Number.isFinite(te) ? te : 1, unet: Number.isFinite(unet) ? unet : 1 });
  }
  return out;
}

export function formatLoraTag(t: LoraTag): string {
  const r = (x: number) => String(Math.round(x * 100) / 100);
  return t.te === t.unet ? `<lora:${t.name}:${r(t.te)}>` : `<lora:${t.name}:${r(t.te)}:${r(t.unet)}>`;
}

/** Sets the tag of `tag.name` (replacing the first one of that name), or appends it. */
export function writeLoraTag(prompt: string, tag: LoraTag): string {
  let done = false;
  const next = prompt.replace(TAG, (whole, name: string) => {
    if (name !== tag.name || done) return whole;
    done = true;
    return formatLoraTag(tag);
  });
  return done ? next : `${prompt.trimEnd()}${prompt.trim() ? ' ' : ''}${formatLoraTag(tag)}`;
}

export function removeLoraTag(prompt: string, name: string): string {
  return prompt.replace(TAG, (whole, n: string) => (n === name ? '' : whole)).replace(/\s{2,}/g, ' ').trim();
}

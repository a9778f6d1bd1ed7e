// A1111 extra-network prompt tags: `<lora:name>`, `<lora:name:w>`, `<lora:name:te_w:unet_w>`,
// named `te=`/`unet=`, and sdlora's `blora=content|style` (only that part of a B-LoRA, see
// src/lora/b-lora.ts); the tags are removed from the text that gets encoded.
export interface LoRARequest {
  name: string;
  te: number;
  unet: number;
  /** Only the content or the style block of a B-LoRA. */
  blora?: 'content' | 'style';
}

const NAMED = ['te', 'unet', 'blora'];

export function parsePrompt(prompt: string): { text: string; loras: LoRARequest[] } {
  const loras: LoRARequest[] = [];
  const text = prompt.replace(/<(\w+):([^>]+)>/g, (whole, kind: string, body: string) => {
    if (kind !== 'lora' && kind !== 'lyco') return whole;
    const args = body.split(':');
    const positional = args.filter((a) => !a.includes('='));
    const named = Object.fromEntries(args.filter((a) => a.includes('=')).map((a) => a.split('=', 2) as [string, string]));
    const num = (v: string | undefined, what: string, d: number) => {
      if (v === undefined || v === '') return d;
      const n = Number(v);
      if (!Number.isFinite(n)) throw new Error(`prompt tag ${whole}: ${what} "${v}" is not a number`);
      return n;
    };
    const name = positional[0]?.trim();
    if (!name) throw new Error(`prompt tag ${whole} has no LoRA name`);
    const te = num(named.te ?? positional[1], 'te weight', 1);
    const unet = num(named.unet ?? positional[2], 'unet weight', te);
    const unknown = Object.keys(named).filter((k) => !NAMED.includes(k));
    if (unknown.length) throw new Error(`prompt tag ${whole}: unknown argument ${unknown.join(', ')} (sdlora reads ${NAMED.map((k) => `${k}=`).join(', ')})`);
    if (named.blora !== undefined && named.blora !== 'content' && named.blora !== 'style') throw new Error(`prompt tag ${whole}: blora must be content or style, got "${named.blora}"`);
    loras.push({ name, te, unet, ...(named.blora ? { blora: named.blora as 'content' | 'style' } : {}) });
    return '';
  });
  // Only the tags go (as in A1111): the commas around them stay and reach the tokenizer.
  return { text: text.replace(/\s+/g, ' ').trim(), loras };
}

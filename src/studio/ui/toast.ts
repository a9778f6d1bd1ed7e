// One line of feedback at the top of the page (errors from the server, confirmations).
import { signal } from './signal.js';

export const toast = signal<{ kind: 'ok' | 'error'; text: string } | null>(null);

let timer: ReturnType<typeof setTimeout> | undefined;

/** Confirmations fade after a few seconds; errors stay until clicked away or replaced. */
function show(kind: 'ok' | 'error', text: string): void {
  clearTimeout(timer);
  toast.set({ kind, text });
  if (kind === 'ok') timer = setTimeout(() => toast.set(null), 4000);
}

export function showError(e: unknown): void { show('error', (e as Error).message ?? String(e)); }
export function showOk(text: string): void { show('ok', text); }

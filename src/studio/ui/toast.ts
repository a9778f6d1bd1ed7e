// One line of feedback at the top of the page (errors from the server, confirmations).
import { signal } from './signal.js';

export const toast = signal<{ kind: 'ok' | 'error'; text: string } | null>(null);

export function showError(e: unknown): void { toast.set({ kind: 'error', text: (e as Error).message ?? String(e) }); }
export function showOk(text: string): void { toast.set({ kind: 'ok', text }); }

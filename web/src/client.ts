// The page's handle on the engine worker: numbered requests, promised results, events while a
// request runs. Tests reach the same handle through window.sdlora.
import type { Event, Request } from './protocol.js';

export class EngineClient {
  private worker: Worker;
  private next = 1;
  private pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private listeners = new Set<(e: Event) => void>();
  readonly ready: Promise<void>;

  constructor(url = 'engine-worker.js') {
    this.worker = new Worker(url, { type: 'module', name: 'sdlora-engine' });
    let started!: () => void;
    this.ready = new Promise((res) => { started = res; });
    this.worker.onmessage = (m) => {
      const d = m.data;
      if (d.ready) return started();
      if (d.event) { for (const l of this.listeners) l(d.event); return; }
      const p = this.pending.get(d.id);
      if (!p) return;
      this.pending.delete(d.id);
      if (d.error !== undefined) p.reject(Object.assign(new Error(d.error), { workerStack: d.stack }));
      else p.resolve(d.result);
    };
    this.worker.onerror = (e) => {
      const err = new Error(`engine worker failed: ${e.message}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
  }

  async call<T = any>(req: Request): Promise<T> {
    await this.ready;
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, req });
    });
  }

  on(f: (e: Event) => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }
}

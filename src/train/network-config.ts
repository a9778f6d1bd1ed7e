// The network settings that shape a LoRA's tensors, kept in the training state so that a resume
// with other settings is refused instead of silently mixing old tensors with a new alpha or rank.
import type { Tensor } from '../engine/index.js';

export interface NetworkConfig {
  network_module: string;
  network_dim: number;
  network_alpha: number;
  /** network_args that change the tensors or their scale (conv_dim, conv_alpha, algo, ...), sorted. */
  network_args: string[];
  network_train_unet_only: boolean;
  network_train_text_encoder_only: boolean;
}

/** Args that only change training noise, not the tensors: a resume may change them. */
const RUNTIME_ONLY_ARGS = new Set(['rank_dropout', 'module_dropout', 'dropout']);

export function networkConfigOf(o: {
  network_module: string; network_dim: number; network_alpha: number; network_args: string[];
  network_train_unet_only: boolean; network_train_text_encoder_only: boolean;
}): NetworkConfig {
  const args = o.network_args.map((a) => a.replace(/\s+/g, '')).filter((a) => !RUNTIME_ONLY_ARGS.has(a.split('=')[0])).sort();
  return {
    network_module: o.network_module, network_dim: o.network_dim, network_alpha: o.network_alpha, network_args: args,
    network_train_unet_only: o.network_train_unet_only, network_train_text_encoder_only: o.network_train_text_encoder_only,
  };
}

const show = (v: unknown) => (Array.isArray(v) ? `[${v.join(' ')}]` : String(v));

/** "network_dim: saved 4, now 8" lines for every setting that differs. */
export function networkConfigDiff(saved: NetworkConfig, now: NetworkConfig): string[] {
  return (Object.keys(now) as (keyof NetworkConfig)[])
    .filter((k) => show(saved[k]) !== show(now[k]))
    .map((k) => `${k}: saved ${show(saved[k])}, now ${show(now[k])}`);
}

/** Differences between the saved LoRA tensors and the modules of the new network (any state version). */
export function moduleSetDiff(saved: Map<string, Tensor>, now: { name: string; shape: readonly number[] }[]): string[] {
  const out: string[] = [];
  const nowNames = new Set(now.map((p) => p.name));
  const missing = now.filter((p) => !saved.has(p.name)), extra = [...saved.keys()].filter((k) => !nowNames.has(k));
  const reshaped = now.filter((p) => saved.has(p.name) && saved.get(p.name)!.shape.join() !== p.shape.join());
  const list = (names: string[]) => names.slice(0, 3).join(', ') + (names.length > 3 ? ` and ${names.length - 3} more` : '');
  if (missing.length) out.push(`${missing.length} tensor(s) of this network are not in the saved state (${list(missing.map((p) => p.name))})`);
  if (extra.length) out.push(`${extra.length} saved tensor(s) are not in this network (${list(extra)})`);
  if (reshaped.length) {
    const r = reshaped[0];
    out.push(`${reshaped.length} tensor(s) changed shape (${r.name}: saved [${saved.get(r.name)!.shape.join(', ')}], now [${r.shape.join(', ')}])`);
  }
  return out;
}

/** Throws when the saved state was trained with another network configuration, naming both. */
export function assertSameNetwork(stateDir: string, saved: NetworkConfig | undefined, now: NetworkConfig, tensorDiff: string[]): void {
  const diff = saved ? networkConfigDiff(saved, now) : [];
  if (!diff.length && !tensorDiff.length) return;
  throw new Error(`${stateDir}: the saved state was trained with another network configuration:\n  ${[...diff, ...tensorDiff].join('\n  ')}\n`
    + 'Resume with the saved settings, or start a new run without resume (network_weights=<a saved LoRA> starts from its weights)');
}

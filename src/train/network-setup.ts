// The LoRA trainer's network stage: the networks.lora or lycoris.kohya network on the family's
// components (new, or from network_weights), B-LoRA's checks, and the learning-rate groups it trains.
import * as E from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { checkBLoRAModel } from '../lora/b-lora.js';
import { type LoRAComponent, familyComponents } from '../lora/components.js';
import { type LoRAFile, loadLoRA, nonPlainModules } from '../lora/lora-file.js';
import type { SDModel } from '../models/sd-model.js';
import { type TrainConfig, parseArgList } from './config.js';
import { LycorisNetwork, lycorisOptions } from './lycoris-network.js';
import { LoRANetwork } from './network.js';
import type { ParamGroup } from './optimizers.js';
import type { TrainOptions } from './options.js';

export interface TrainingNetwork {
  network: LoRANetwork | LycorisNetwork;
  /** The family's LoRA components (SD 1.x: te + unet; SDXL: te1, te2 + SGM-named unet). */
  models: LoRAComponent[];
  /** The groups with a non-zero learning rate. */
  groups: Map<string, ParamGroup>;
}

/** A network_weights file whose every module the network continues: none left out on the way. */
function networkWeights(file: LoRAFile, lycoris: boolean): LoRAFile {
  const u = file.unsupported[0];
  if (u) throw new Error(`network_weights ${file.path}: it holds ${u.format} modules (e.g. ${u.name}), which sdlora does not train`);
  const { other, kinds } = lycoris ? { other: [], kinds: [] } : nonPlainModules(file);
  if (other.length) {
    throw new Error(`network_weights ${file.path}: networks.lora continues plain LoRA / LoCon / PEFT files, and this one holds ${kinds.join('+')} modules (e.g. ${other[0].name}); `
      + 'continue it with network_module = "lycoris.kohya" and the network_args of its algorithm');
  }
  return file;
}

export async function createTrainingNetwork(cfg: TrainConfig, c: TrainOptions, model: SDModel, rng: E.Rng, log: (m: string) => void): Promise<TrainingNetwork> {
  const netArgs = parseArgList(c.network_args);
  const num = (k: string) => (netArgs[k] === undefined ? undefined : Number(netArgs[k]));
  const netOpts = {
    dim: c.network_dim, alpha: c.network_alpha, convDim: num('conv_dim'), convAlpha: num('conv_alpha'),
    dropout: c.network_dropout, rankDropout: num('rank_dropout'), moduleDropout: num('module_dropout'),
    trainUnet: !c.network_train_text_encoder_only, trainTextEncoder: !c.network_train_unet_only,
    bLora: /^true$/i.test(netArgs.b_lora ?? ''),
  };
  if (netOpts.bLora && netOpts.trainTextEncoder) log('note: b_lora trains the UNet\'s content and style blocks only (no text-encoder LoRA)');
  // The family's LoRA components (SD 1.x: te + unet; SDXL: te1, te2 + SGM-named unet).
  const models = familyComponents(model);
  if (netOpts.bLora) checkBLoRAModel(model.family, models, 'b_lora');
  const lycoris = (cfg as { network_module?: string }).network_module === 'lycoris.kohya' ? lycorisOptions(c.network_args, netOpts) : null;
  if (lycoris && c.network_dropout) log('note: network_dropout has no effect with lycoris.kohya (LyCORIS ignores it; rank_dropout and module_dropout work)');
  const network = lycoris
    ? (c.network_weights ? LycorisNetwork.fromFile(networkWeights(await loadLoRA(c.network_weights), true), models, lycoris, rng) : LycorisNetwork.create(models, lycoris, rng))
    : c.network_weights ? LoRANetwork.fromFile(networkWeights(await loadLoRA(c.network_weights), false), models, netOpts, rng) : LoRANetwork.create(models, netOpts, rng);
  if (lycoris) log(`LyCORIS ${lycoris.algo}${lycoris.doraWd ? ' + DoRA' : ''}, preset ${lycoris.preset}`);
  // Continued from network_weights, the modules keep the file's ranks and alphas, not network_dim/network_alpha.
  const shape = c.network_weights ? `, ranks and alphas of ${c.network_weights}` : `, rank ${c.network_dim}, alpha ${c.network_alpha}`;
  log(`LoRA: ${network.modules.length} modules (${network.modules.filter((m) => m.te).length} text encoder)${shape}`);

  const groups = new Map<string, ParamGroup>();
  const teLr = c.text_encoder_lr ?? c.learning_rate, unetLr = c.unet_lr ?? c.learning_rate;
  if (netOpts.trainTextEncoder && teLr) groups.set('te', { name: 'te', lr: teLr });
  if (netOpts.trainUnet && unetLr) groups.set('unet', { name: 'unet', lr: unetLr });
  if (!groups.size) throw new Error('no parameter group has a non-zero learning rate');
  return { network, models, groups };
}

/** scale_weight_norms on the host copies of the parameters (`host`); the caller writes them back. */
export async function applyMaxNorm(network: LoRANetwork | LycorisNetwork, maxNorm: number, host: (t: Tensor) => Promise<Float32Array>): Promise<void> {
  if (network instanceof LycorisNetwork) await network.applyMaxNorm(maxNorm, host);
  else await maxNormRegularize(network, maxNorm, host);
}

/**
 * sd-scripts --scale_weight_norms: shrink modules whose delta norm exceeds maxNorm. Works on the
 * host copies (`host`); the caller writes them back.
 */
async function maxNormRegularize(net: LoRANetwork, maxNorm: number, host: (t: Tensor) => Promise<Float32Array>): Promise<void> {
  for (const m of net.modules) {
    const [upH, downH] = [await host(m.up), await host(m.down)];
    const d = E.noGrad(() => {
      const up = E.tensor(upH, [m.up.shape[0], m.rank], 'f32', E.cpuBackend), down = E.tensor(downH, [m.rank, downH.length / m.rank], 'f32', E.cpuBackend);
      return E.mulScalar(E.matmul(up, down), m.scale).dataSync();
    });
    let sq = 0;
    for (const v of d) sq += v * v;
    const norm = Math.max(Math.sqrt(sq), maxNorm / 2);
    const ratio = Math.min(norm, maxNorm) / norm;
    if (ratio !== 1) {
      const s = Math.sqrt(ratio);
      for (const a of [upH, downH]) for (let i = 0; i < a.length; i++) a[i] *= s;
    }
  }
}

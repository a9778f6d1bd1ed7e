// Golden parity inside the page: the same checks as test/models/golden-parity.test.ts and
// test/lora/golden-lora.test.ts (UNet, VAE, CLIP text model, LoRA applied at runtime), run by the
// browser build on the page's backend against the diffusers/transformers/sd-scripts outputs.
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { applyLoRA, removeLoRA } from '../../src/lora/apply.js';
import { loadLoRA } from '../../src/lora/lora-file.js';
import { CLIPTextModel, parseCLIPTextConfig } from '../../src/models/clip-text.js';
import { loadStateDict, readJson } from '../../src/models/loader.js';
import { parseUNetConfig } from '../../src/models/unet-config.js';
import { UNet2DConditionModel } from '../../src/models/unet.js';
import { AutoencoderKL, parseVAEConfig } from '../../src/models/vae.js';
import { Weights } from '../../src/models/weights.js';
import { putFile } from '../../src/platform/browser/vfs.js';
import type { GoldenCases, ParityCheck } from './protocol.js';

const ATOL = 1e-4;

async function fetchCase(base: string, dir: string, files: string[]): Promise<string> {
  await Promise.all(files.map(async (f) => {
    const r = await fetch(`${base}/${dir}/${f}`);
    if (!r.ok) throw new Error(`${base}/${dir}/${f}: HTTP ${r.status}`);
    putFile(`/golden/${dir}/${f}`, new Uint8Array(await r.arrayBuffer()));
  }));
  return `/golden/${dir}`;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export async function runParity(base: string, cases: Partial<GoldenCases>, be: E.Backend): Promise<ParityCheck[]> {
  const out: ParityCheck[] = [];
  const check = async (name: string, got: Tensor, want: Tensor, tol = ATOL) => {
    const shapeOk = got.shape.join() === want.shape.join();
    const d = shapeOk ? maxAbsDiff(await got.data(), want.dataSync()) : Infinity;
    out.push({ name, maxDiff: d, tol, ok: d <= tol });
  };
  const dev = (t: Tensor) => t.toBackend(be);
  return E.withBackend(be, async () => {
    // UNet forward, loss and input gradient.
    let unet: UNet2DConditionModel | null = null, unetW: Weights | null = null;
    if (cases.unet) {
      const ud = await fetchCase(base, cases.unet, ['config.json', 'io.safetensors', 'unet.safetensors']);
      const uio = (await loadSafetensors(`${ud}/io.safetensors`)).tensors;
      const unetCfg = parseUNetConfig(readJson(`${ud}/config.json`));
      unetW = new Weights(await loadStateDict(`${ud}/unet.safetensors`), 'unet').toBackend(be);
      unet = new UNet2DConditionModel(unetCfg, unetW);
      const sample = dev(uio.sample).requireGrad();
      const pred = unet.forward(sample, dev(uio.timestep), dev(uio.encoder_hidden_states));
      await check('unet out', pred, uio.out);
      if (uio.loss) {
        const loss = E.mseLoss(pred, dev(uio.target));
        const lv = await loss.value();
        out.push({ name: 'unet loss', maxDiff: Math.abs(lv - uio.loss.item()), tol: 1e-5 * Math.abs(uio.loss.item()), ok: Math.abs(lv - uio.loss.item()) <= 1e-5 * Math.abs(uio.loss.item()) });
        loss.backward();
        const g = uio.grad_sample;
        await check('unet grad_sample', sample.grad!, g, 1e-4 * Math.max(...[...g.dataSync()].map(Math.abs)));
      }
    }

    // VAE encode and decode.
    if (cases.vae) {
      const vd = await fetchCase(base, cases.vae, ['config.json', 'io.safetensors', 'vae.safetensors']);
      const vio = (await loadSafetensors(`${vd}/io.safetensors`)).tensors;
      const vae = new AutoencoderKL(parseVAEConfig(readJson(`${vd}/config.json`)), new Weights(await loadStateDict(`${vd}/vae.safetensors`), 'vae').toBackend(be));
      const [mean, logvar, decoded] = E.noGrad(() => {
        const d = vae.encode(dev(vio.image));
        return [d.mean, d.logvar, vae.decode(dev(vio.latent))];
      });
      await check('vae posterior_mean', mean, vio.posterior_mean);
      await check('vae posterior_logvar', logvar, vio.posterior_logvar);
      await check('vae decoded', decoded, vio.decoded);
    }

    // CLIP text model.
    if (!cases.text) return out;
    const td = await fetchCase(base, cases.text, ['config.json', 'io.safetensors', 'text_encoder.safetensors']);
    const tio = (await loadSafetensors(`${td}/io.safetensors`)).tensors;
    const te = new CLIPTextModel(parseCLIPTextConfig(readJson(`${td}/config.json`)), new Weights(await loadStateDict(`${td}/text_encoder.safetensors`), 'text encoder').toBackend(be));
    const tout = E.noGrad(() => te.forward(dev(tio.input_ids)));
    await check('clip last_hidden_state', tout.lastHiddenState, tio.last_hidden_state);
    await check('clip pooler_output', tout.pooled, tio.pooler_output);
    // With a binding limit below the token embedding (?maxBinding), it is held in several buffers.
    const buffers = (be as { bufferCount?: (s: unknown) => number }).bufferCount?.(te.weights.raw('text_model.embeddings.token_embedding.weight').storage) ?? 1;
    if (buffers > 1) out.push({ name: `clip token_embedding held in ${buffers} buffers`, maxDiff: 0, tol: 0, ok: true });
    if (!cases.lora || !unet || !unetW) return out;

    // Two LoRA files at runtime on the same UNet and text encoder (sd-scripts' merge as reference).
    const ld = await fetchCase(base, cases.lora, ['io.safetensors', 'lora_a.safetensors', 'lora_b.safetensors']);
    const lio = (await loadSafetensors(`${ld}/io.safetensors`)).tensors;
    // The two-file combination the case records (`unet_out.a<k>_b<j>`), ratios read from its name.
    const combo = Object.keys(lio).map((k) => /^unet_out\.(a([\d.]+)_b([\d.]+))$/.exec(k)).find((m) => m !== null);
    if (!combo) throw new Error(`${ld}/io.safetensors: no unet_out.a<k>_b<j> combination recorded`);
    const reports = [];
    for (const [f, m] of [['lora_a', Number(combo[2])], ['lora_b', Number(combo[3])]] as const) {
      const r = applyLoRA(await loadLoRA(`${ld}/${f}.safetensors`), { unet: unetW, textEncoder: te.weights }, { unet: m, te: m });
      out.push({ name: `${f} modules applied`, maxDiff: r.unknown.length, tol: 0, ok: r.unknown.length === 0 && r.applied > 0 });
      reports.push(r);
    }
    const [lu, lt] = E.noGrad(() => [
      unet.forward(dev(lio.sample), dev(lio.timestep), dev(lio.encoder_hidden_states)),
      te.forward(dev(lio.input_ids)).lastHiddenState,
    ]);
    await check(`lora unet ${combo[1]}`, lu, lio[`unet_out.${combo[1]}`]);
    await check(`lora te ${combo[1]}`, lt, lio[`te_last_hidden_state.${combo[1]}`]);
    reports.forEach(removeLoRA);
    return out;
  });
}

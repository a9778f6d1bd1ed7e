// Measures the cpu backend on a real training step (a small UNet, forward + backward) and
// returns the share of the GEMM peak it reaches, which the estimator then uses for "cpu".
import * as E from '../engine/index.js';
import { SD15_UNET_CONFIG } from '../models/sd15-configs.js';
import { parseUNetConfig } from '../models/unet-config.js';
import { randomUNetWeights } from '../models/unet-params.js';
import { UNet2DConditionModel } from '../models/unet.js';
import { unetCost } from './unet-cost.js';

export async function calibrateCpu(peakTflops: number): Promise<{ efficiency: number; gflops: number; msPerStep: number }> {
  await E.initCpuBackend();
  const cfg = parseUNetConfig({ ...SD15_UNET_CONFIG, block_out_channels: [64, 128], layers_per_block: 1, down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D'], up_block_types: ['CrossAttnUpBlock2D', 'UpBlock2D'], cross_attention_dim: 64, attention_head_dim: 2 });
  const w = randomUNetWeights(cfg, 1);
  w.requireGrad();
  const unet = new UNet2DConditionModel(cfg, w);
  const rng = new E.Rng(0);
  const B = 2, S = 32;
  const x = E.randn([B, 4, S, S], rng), ctx = E.randn([B, 77, 64], rng), t = E.tensor([100, 900], [B]);
  const step = () => E.mseLoss(unet.forward(x, t, ctx), x).backward();
  step();
  const t0 = performance.now();
  for (let i = 0; i < 3; i++) step();
  const ms = (performance.now() - t0) / 3;
  const flops = unetCost(cfg, S, S).flops * 3 * B;
  const gflops = flops / ms / 1e6;
  return { efficiency: gflops / (peakTflops * 1e3), gflops, msPerStep: ms };
}

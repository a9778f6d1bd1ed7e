// Weights larger than the adapter's maxStorageBufferBindingSize are held in several buffers (row
// blocks) on the webgpu backend. Adapters here have a large limit, so the tests lower the limit the
// backend uses (the maxBinding option, as SDLORA_WEBGPU_MAX_BINDING does) below the golden CLIP
// text model's token embedding and check that the split weight is really split and still gives
// transformers' outputs; a split linear weight gives the unsplit one's results.
import assert from 'node:assert/strict';
import { type TestContext, describe, it } from 'node:test';
import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { CLIPTextModel, parseCLIPTextConfig } from '../../src/models/clip-text.js';
import { loadStateDict, readJson } from '../../src/models/loader.js';
import { Weights } from '../../src/models/weights.js';
import { maxAbsDiff } from '../helpers/gradcheck.js';
import { goldenCase, requireFile } from '../helpers/golden.js';
import { webgpuOrSkip } from '../helpers/webgpu.js';

const TOKEN = 'text_model.embeddings.token_embedding.weight';

/** A second webgpu backend on the same device whose binding limit is `maxBinding` bytes. */
async function lowered(t: TestContext, maxBinding: number): Promise<{ be: E.WebGPUBackend; ref: E.WebGPUBackend } | null> {
  const ref = await webgpuOrSkip(t);
  if (!ref) return null;
  const be = new E.WebGPUBackend(ref.ctx, null, { maxBinding });
  assert.equal(be.maxBinding, Math.floor(maxBinding / 4) * 4, 'the lowered limit is the one in use');
  assert.ok(ref.maxBinding >= 4 * 1000 * 1000, 'the reference backend has the adapter\'s (large) limit');
  return { be, ref };
}

describe('webgpu: weights above maxStorageBufferBindingSize split across buffers', () => {
  const dir = goldenCase('sd1-text', 'text_encoder.safetensors');
  const cfg = parseCLIPTextConfig(readJson(requireFile(dir, 'config.json')));
  const tableBytes = cfg.vocab_size * cfg.hidden_size * 4;
  const limit = Math.floor(tableBytes / 3);
  const rowsPerBlock = Math.floor(limit / (4 * cfg.hidden_size));
  const blocks = Math.ceil(cfg.vocab_size / rowsPerBlock);

  it('the golden CLIP text model with its token embedding split matches transformers to 1e-4', async (t) => {
    const r = await lowered(t, limit);
    if (!r) return;
    const { be } = r;
    const io = (await loadSafetensors(requireFile(dir, 'io.safetensors'))).tensors;
    const w = new Weights(await loadStateDict(requireFile(dir, 'text_encoder.safetensors')), 'text encoder').toBackend(be);
    assert.ok(blocks >= 3, `the table (${tableBytes} bytes) is over the ${limit}-byte limit`);
    assert.equal(be.bufferCount(w.raw(TOKEN).storage), blocks, `the token embedding is held in ${blocks} buffers`);
    assert.equal(be.bufferCount(w.raw(`text_model.embeddings.position_embedding.weight`).storage), 1, 'small weights stay in one buffer');
    const te = new CLIPTextModel(cfg, w);
    const out = await E.withBackend(be, async () => E.noGrad(() => te.forward(io.input_ids.toBackend(be))));
    const checks: [Tensor, string][] = [[out.lastHiddenState, 'last_hidden_state'], [out.pooled, 'pooler_output'],
      ...out.hiddenStates.map((h, i): [Tensor, string] => [h, `hidden_states.${i}`])];
    for (const [got, k] of checks) {
      assert.ok(io[k], `io.safetensors lacks ${k}`);
      assert.deepEqual([...got.shape], [...io[k].shape], k);
      const d = maxAbsDiff(await got.data(), io[k].dataSync());
      t.diagnostic(`${k}: max |diff| ${d.toExponential(2)}`);
      assert.ok(d <= 1e-4, `${k}: max |diff| ${d} > 1e-4`);
    }
    // Stored as f16 (mixed precision), the blocks are widened one by one and the table stays split.
    const half = new Weights(new Map([[TOKEN, w.raw(TOKEN)]]), 'half');
    half.toHalfStorage();
    assert.equal(be.bufferCount(half.raw(TOKEN).storage), blocks);
    assert.equal(be.bufferCount(half.get(TOKEN).storage), blocks);
  });

  it('an embedding lookup reads every block of a split table: the first and last row of each block give the cpu result exactly', async (t) => {
    const r = await lowered(t, limit);
    if (!r) return;
    const rng = new E.Rng(5);
    const table = Float32Array.from({ length: cfg.vocab_size * cfg.hidden_size }, () => rng.normal());
    const ids = Int32Array.from({ length: 2 * blocks }, (_, i) => Math.min(cfg.vocab_size - 1, Math.floor(i / 2) * rowsPerBlock + (i % 2 ? rowsPerBlock - 1 : 0))).reverse();
    assert.equal(new Set([...ids].map((id) => Math.floor(id / rowsPerBlock))).size, blocks, 'the ids fall in every block');
    const want = E.embedding(E.tensor(ids, [ids.length], 'i32', E.cpuBackend), E.tensor(table, [cfg.vocab_size, cfg.hidden_size], 'f32', E.cpuBackend)).dataSync();
    const tb = E.tensor(table, [cfg.vocab_size, cfg.hidden_size], 'f32', r.be);
    assert.equal(r.be.bufferCount(tb.storage), blocks);
    assert.deepEqual([...(await tb.data())], [...table], 'read() joins the blocks');
    const got = await E.embedding(E.tensor(ids, [ids.length], 'i32', r.be), tb).data();
    assert.equal(maxAbsDiff(got, want), 0);
    // Rows appended to a split table (textual-inversion vectors) are one more block.
    const extra = E.tensor(Float32Array.from({ length: 2 * cfg.hidden_size }, () => rng.normal()), [2, cfg.hidden_size], 'f32', r.be);
    const joined = E.concat([tb, extra], 0);
    assert.equal(r.be.bufferCount(joined.storage), blocks + 1);
    const tail = await E.embedding(E.tensor([cfg.vocab_size + 1, 0], [2], 'i32', r.be), joined).data();
    const ex = await extra.data(), first = table.subarray(0, cfg.hidden_size);
    assert.deepEqual([...tail], [...ex.subarray(cfg.hidden_size), ...first]);
  });

  it('textual-inversion rows on a split token embedding: the unsplit forward, and a gradient for those rows only', async (t) => {
    const r = await lowered(t, limit);
    if (!r) return;
    const io = (await loadSafetensors(requireFile(dir, 'io.safetensors'))).tensors;
    const sd = await loadStateDict(requireFile(dir, 'text_encoder.safetensors'));
    const rng = new E.Rng(9);
    const extraRows = Float32Array.from({ length: 2 * cfg.hidden_size }, () => rng.normal() * 0.02);
    // The case's ids with two of them replaced by the new rows' ids (vocab_size, vocab_size + 1).
    const ids = Int32Array.from(io.input_ids.to('i32').dataSync() as Int32Array);
    ids[1] = cfg.vocab_size;
    ids[2] = cfg.vocab_size + 1;
    const run = async (be: E.WebGPUBackend) => {
      const te = new CLIPTextModel(cfg, new Weights(new Map(sd), 'text encoder').toBackend(be));
      const extra = E.tensor(extraRows, [2, cfg.hidden_size], 'f32', be).requireGrad();
      te.extraTokenEmbeddings = extra;
      const out = te.forward(E.tensor(ids, io.input_ids.shape, 'i32', be)).lastHiddenState;
      const gy = E.tensor(Float32Array.from({ length: out.size }, (_, i) => Math.sin(i)), out.shape, 'f32', be);
      await E.sum(E.mul(out, gy)).backwardAsync();
      return { y: await out.data(), g: await extra.grad!.data(), buffers: be.bufferCount(te.weights.raw(TOKEN).storage) };
    };
    const got = await run(r.be), want = await run(r.ref);
    assert.equal(got.buffers, blocks);
    assert.equal(want.buffers, 1);
    const dy = maxAbsDiff(got.y, want.y), dg = maxAbsDiff(got.g, want.g);
    t.diagnostic(`forward max |diff| ${dy.toExponential(2)}, extra rows' gradient ${dg.toExponential(2)}`);
    assert.ok(dy <= 1e-5, `forward ${dy}`);
    assert.ok(Math.max(...Array.from(want.g, Math.abs)) > 0, 'the new rows get a gradient');
    assert.ok(dg <= 1e-5, `gradient ${dg}`);
  });

  it('a linear layer whose weight is split gives the unsplit result (forward, input gradient; f32 and f16 storage)', async (t) => {
    const r = await lowered(t, limit);
    if (!r) return;
    const { be, ref } = r;
    // A weight [out, in] of the text model's MLP width, with enough rows to go over the limit.
    const inF = cfg.hidden_size, out = Math.ceil((2.5 * limit) / (4 * inF));
    const rng = new E.Rng(11);
    const host = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
    const xs = host(2 * 5 * inF), ws = host(out * inF), bs = host(out), gys = host(2 * 5 * out);
    const run = async (b: E.WebGPUBackend, half: boolean) => {
      const x = E.tensor(xs, [2, 5, inF], 'f32', b).requireGrad();
      let w = E.tensor(ws, [out, inF], 'f32', b);
      if (half) w = w.to('f16');
      const y = E.linear(x, w, E.tensor(bs, [out], 'f32', b));
      E.sum(E.mul(y, E.tensor(gys, [2, 5, out], 'f32', b))).backward();
      return { y: await y.data(), gx: await x.grad!.data(), buffers: b.bufferCount(w.storage) };
    };
    for (const half of [false, true]) {
      const got = await run(be, half), want = await run(ref, half);
      assert.equal(want.buffers, 1);
      assert.equal(got.buffers, Math.ceil(out / Math.floor(be.maxBinding / (4 * inF))), `the ${half ? 'f16' : 'f32'} weight is split`);
      assert.ok(got.buffers >= 3);
      const dy = maxAbsDiff(got.y, want.y), dg = maxAbsDiff(got.gx, want.gx);
      t.diagnostic(`${half ? 'f16' : 'f32'} weight in ${got.buffers} buffers: forward max |diff| ${dy.toExponential(2)}, input gradient ${dg.toExponential(2)}`);
      assert.ok(dy <= 1e-5, `forward: ${dy}`);
      // Summed block by block: f32 rounding of the partial sums, relative to the gradient's size.
      const scale = Math.max(...Array.from(want.gx, Math.abs));
      assert.ok(dg <= 1e-6 * scale * Math.sqrt(out), `input gradient: ${dg} (largest ${scale})`);
    }
  });

  it('the binding limit in use: the adapter\'s, or lower by the option or SDLORA_WEBGPU_MAX_BINDING, never higher', async (t) => {
    const ref = await webgpuOrSkip(t);
    if (!ref) return;
    const device = ref.ctx.device.limits.maxStorageBufferBindingSize;
    assert.equal(new E.WebGPUBackend(ref.ctx, null, { maxBinding: 2 * device }).maxBinding, device, 'clamped to the adapter\'s');
    const prev = process.env.SDLORA_WEBGPU_MAX_BINDING;
    process.env.SDLORA_WEBGPU_MAX_BINDING = String(limit);
    try {
      const be = new E.WebGPUBackend(ref.ctx);
      assert.equal(be.maxBinding, Math.floor(limit / 4) * 4);
      assert.equal(be.bufferCount(E.tensor(new Float32Array(cfg.vocab_size * cfg.hidden_size), [cfg.vocab_size, cfg.hidden_size], 'f32', be).storage), blocks);
      process.env.SDLORA_WEBGPU_MAX_BINDING = 'lots';
      assert.throws(() => new E.WebGPUBackend(ref.ctx), /SDLORA_WEBGPU_MAX_BINDING .* must be a number of bytes/);
    } finally {
      if (prev === undefined) delete process.env.SDLORA_WEBGPU_MAX_BINDING; else process.env.SDLORA_WEBGPU_MAX_BINDING = prev;
    }
  });

  it('what cannot be split is refused with both sizes named: activations over the limit, training a split weight, other ops on it', async (t) => {
    const r = await lowered(t, limit);
    if (!r) return;
    const { be } = r;
    const lim = new RegExp(`the binding limit of ${(be.maxBinding / 1024).toFixed(1)} KiB set by SDLORA_WEBGPU_MAX_BINDING .*maxStorageBufferBindingSize is \\d+ MiB`);
    assert.throws(() => E.zeros([be.maxBinding / 4 + 1], 'f32', be), (e: Error) => /a f32 tensor of \d+ values \(\d+\.\d KiB\) exceeds/.test(e.message) && lim.test(e.message));
    const table = E.tensor(new Float32Array(cfg.vocab_size * cfg.hidden_size), [cfg.vocab_size, cfg.hidden_size], 'f32', be).requireGrad();
    const y = E.embedding(E.tensor([1, 2], [2], 'i32', be), table);
    assert.throws(() => E.sum(y).backward(), /gradient of a \[\d+, \d+\] embedding table .* can only be used frozen/);
    assert.throws(() => E.add(table.detach(), table.detach()), (e: Error) => new RegExp(`cannot read a f32 weight held in ${blocks} buffers`).test(e.message) && lim.test(e.message));
  });
});


// Generates the WebAssembly text of the kernels module: the packed GEMM micro-kernel (and the
// softmax of softmax-wat.ts). The kernel is unrolled by code
// generation (MR rows x NR columns of accumulators kept in v128 locals), which is why it is
// written here instead of by hand.

import { attentionWat } from './attention-wat.js';
import { col2imWat } from './col2im-wat.js';
import { im2colWat } from './im2col-wat.js';
import { mapWat } from './map-wat.js';
import { normWat } from './norm-wat.js';
import { packWat } from './pack-wat.js';
import { softmaxWat } from './softmax-wat.js';

export { KC_MAX, MR, NR } from './panels.js';
import { MR, NR } from './panels.js';

/**
 * The module text. `relaxed` uses f32x4.relaxed_madd (one fused multiply-add where the hardware has
 * FMA), which needs the relaxed-SIMD proposal: shipped in Node 22 / Chrome 114, behind a flag in
 * Node 20 (kernel-threads.ts turns it on and falls back to the plain module when it is refused).
 */
export function gemmWat(relaxed = false): string {
  return `(module
  (import "env" "memory" (memory 1 65536 shared))
  ${gemmFunc(relaxed)}
  ${packWat()}
  ${softmaxWat()}
  ${mapWat()}
  ${col2imWat()}
  ${im2colWat()}
  ${normWat()}
  ${attentionWat()})
`;
}

/**
 * C[M,N] += A[M,K] * B[K,N] for panel rows [ip0, ip1). A is packed by the host as
 * [kb][panelA][kc][MR] and B as [kb][panelB][kc][NR] (both zero padded). B used to be read in
 * place for row-major operands, but rows a power of two apart (N = 512, 1024, 4096) fall into the
 * same cache sets: 6 GFLOP/s against 20 packed at 512^3. C is row-major with stride ldc.
 */
function gemmFunc(relaxed: boolean): string {
  const accs: string[] = [];
  for (let r = 0; r < MR; r++) for (let h = 0; h < NR / 4; h++) accs.push(`$c${r}_${h}`);
  const decl = accs.map((a) => `(local ${a} v128)`).join(' ');
  const zero = accs.map((a) => `(local.set ${a} (v128.const i32x4 0 0 0 0))`).join('\n');
  const body: string[] = [];
  body.push('(local.set $b0 (v128.load (local.get $bptr)))');
  body.push('(local.set $b1 (v128.load offset=16 (local.get $bptr)))');
  for (let r = 0; r < MR; r++) {
    body.push(`(local.set $t (v128.load32_splat offset=${r * 4} (local.get $aptr)))`);
    for (let h = 0; h < 2; h++) {
      const a = `$c${r}_${h}`;
      body.push(relaxed
        ? `(local.set ${a} (f32x4.relaxed_madd (local.get $t) (local.get $b${h}) (local.get ${a})))`
        : `(local.set ${a} (f32x4.add (local.get ${a}) (f32x4.mul (local.get $t) (local.get $b${h}))))`);
    }
  }
  const full: string[] = [];
  for (let r = 0; r < MR; r++) {
    full.push(`(local.set $p (i32.add (local.get $crow) (i32.mul (i32.const ${r}) (local.get $ldcb))))`);
    for (let h = 0; h < 2; h++) {
      full.push(
        `(v128.store offset=${h * 16} (local.get $p) (f32x4.add (v128.load offset=${h * 16} (local.get $p)) (local.get $c${r}_${h})))`,
      );
    }
  }
  const spill: string[] = [];
  for (let r = 0; r < MR; r++)
    for (let h = 0; h < 2; h++) spill.push(`(v128.store offset=${(r * NR + h * 4) * 4} (local.get $tile) (local.get $c${r}_${h}))`);
  const bStart = `(i32.add (local.get $bp) (i32.shl (i32.mul (i32.add (i32.mul (local.get $kb) (local.get $npb)) (local.get $jp)) (i32.mul (local.get $kc) (i32.const ${NR}))) (i32.const 2)))`;
  return `(func $gemm (export "gemm") (param $ap i32) (param $bp i32) (param $c i32) (param $ldc i32)
      (param $m i32) (param $n i32) (param $kc i32) (param $nkb i32) (param $ip0 i32) (param $ip1 i32) (param $tile i32)
    (local $npa i32) (local $npb i32) (local $kb i32) (local $jp i32) (local $ip i32) (local $k i32)
    (local $aptr i32) (local $bptr i32) (local $crow i32) (local $ldcb i32) (local $p i32)
    (local $rows i32) (local $cols i32) (local $r i32) (local $q i32)
    (local $b0 v128) (local $b1 v128) (local $t v128) ${decl}
    (local.set $npa (i32.div_u (i32.add (local.get $m) (i32.const ${MR - 1})) (i32.const ${MR})))
    (local.set $npb (i32.div_u (i32.add (local.get $n) (i32.const ${NR - 1})) (i32.const ${NR})))
    (local.set $ldcb (i32.shl (local.get $ldc) (i32.const 2)))
    (local.set $kb (i32.const 0))
    (block $kb_end (loop $kb_loop
      (br_if $kb_end (i32.ge_u (local.get $kb) (local.get $nkb)))
      (local.set $jp (i32.const 0))
      (block $jp_end (loop $jp_loop
        (br_if $jp_end (i32.ge_u (local.get $jp) (local.get $npb)))
        (local.set $ip (local.get $ip0))
        (block $ip_end (loop $ip_loop
          (br_if $ip_end (i32.ge_u (local.get $ip) (local.get $ip1)))
          (local.set $aptr (i32.add (local.get $ap)
            (i32.shl (i32.mul (i32.add (i32.mul (local.get $kb) (local.get $npa)) (local.get $ip)) (i32.mul (local.get $kc) (i32.const ${MR}))) (i32.const 2))))
          (local.set $bptr ${bStart})
          ${zero}
          (local.set $k (local.get $kc))
          (loop $k_loop
            ${body.join('\n            ')}
            (local.set $aptr (i32.add (local.get $aptr) (i32.const ${MR * 4})))
            (local.set $bptr (i32.add (local.get $bptr) (i32.const ${NR * 4})))
            (local.set $k (i32.sub (local.get $k) (i32.const 1)))
            (br_if $k_loop (local.get $k)))
          (local.set $crow (i32.add (local.get $c)
            (i32.shl (i32.add (i32.mul (i32.mul (local.get $ip) (i32.const ${MR})) (local.get $ldc)) (i32.mul (local.get $jp) (i32.const ${NR}))) (i32.const 2))))
          (local.set $rows (i32.sub (local.get $m) (i32.mul (local.get $ip) (i32.const ${MR}))))
          (local.set $cols (i32.sub (local.get $n) (i32.mul (local.get $jp) (i32.const ${NR}))))
          (if (i32.and (i32.ge_s (local.get $rows) (i32.const ${MR})) (i32.ge_s (local.get $cols) (i32.const ${NR})))
            (then ${full.join('\n              ')})
            (else
              ${spill.join('\n              ')}
              (if (i32.gt_s (local.get $rows) (i32.const ${MR})) (then (local.set $rows (i32.const ${MR}))))
              (if (i32.gt_s (local.get $cols) (i32.const ${NR})) (then (local.set $cols (i32.const ${NR}))))
              (local.set $r (i32.const 0))
              (block $r_end (loop $r_loop
                (br_if $r_end (i32.ge_s (local.get $r) (local.get $rows)))
                (local.set $q (i32.const 0))
                (block $q_end (loop $q_loop
                  (br_if $q_end (i32.ge_s (local.get $q) (local.get $cols)))
                  (local.set $p (i32.add (local.get $crow) (i32.add (i32.mul (local.get $r) (local.get $ldcb)) (i32.shl (local.get $q) (i32.const 2)))))
                  (f32.store (local.get $p) (f32.add (f32.load (local.get $p))
                    (f32.load (i32.add (local.get $tile) (i32.shl (i32.add (i32.mul (local.get $r) (i32.const ${NR})) (local.get $q)) (i32.const 2))))))
                  (local.set $q (i32.add (local.get $q) (i32.const 1)))
                  (br $q_loop)))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (br $r_loop)))))
          (local.set $ip (i32.add (local.get $ip) (i32.const 1)))
          (br $ip_loop)))
        (local.set $jp (i32.add (local.get $jp) (i32.const 1)))
        (br $jp_loop)))
      (local.set $kb (i32.add (local.get $kb) (i32.const 1)))
      (br $kb_loop))))`;
}

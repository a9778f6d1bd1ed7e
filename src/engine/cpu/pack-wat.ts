// WebAssembly text of the operand packing kernel: the GEMM's panel layout built inside the shared
// memory by every thread, from a raw copy of the operand (one memcpy on the host instead of a JS
// loop per element). Same layout as packPanels in gemm.ts: [kb][panel][kc][W], zero padded.

import { loop } from './wat-loop.js';

/** i8x16.shuffle picking f32 lanes (0-3 of the first operand, 4-7 of the second). */
const lanes = (l: number[], a: string, b: string): string =>
  `(i8x16.shuffle ${l.flatMap((x) => [0, 1, 2, 3].map((j) => 4 * x + j)).join(' ')} ${a} ${b})`;

/**
 * Rows g..g+3 (byte stride $srb from $s), k..k+3 (contiguous) transposed into the columns
 * g..g+3 of 4 packed k rows at $o (row stride $wb).
 */
function transpose4(g: number): string {
  const row = (i: number) => `(v128.load (i32.add (local.get $s) (i32.mul (i32.const ${g + i}) (local.get $srb))))`;
  const at = (k: number) => (k === 0 ? '(local.get $o)' : `(i32.add (local.get $o) (i32.mul (i32.const ${k}) (local.get $wb)))`);
  return `(local.set $t0 ${row(0)}) (local.set $t1 ${row(1)}) (local.set $t2 ${row(2)}) (local.set $t3 ${row(3)})
              (local.set $u0 ${lanes([0, 4, 1, 5], '(local.get $t0)', '(local.get $t1)')})
              (local.set $u1 ${lanes([2, 6, 3, 7], '(local.get $t0)', '(local.get $t1)')})
              (local.set $u2 ${lanes([0, 4, 1, 5], '(local.get $t2)', '(local.get $t3)')})
              (local.set $u3 ${lanes([2, 6, 3, 7], '(local.get $t2)', '(local.get $t3)')})
              (v128.store offset=${g * 4} ${at(0)} ${lanes([0, 1, 4, 5], '(local.get $u0)', '(local.get $u2)')})
              (v128.store offset=${g * 4} ${at(1)} ${lanes([2, 3, 6, 7], '(local.get $u0)', '(local.get $u2)')})
              (v128.store offset=${g * 4} ${at(2)} ${lanes([0, 1, 4, 5], '(local.get $u1)', '(local.get $u3)')})
              (v128.store offset=${g * 4} ${at(3)} ${lanes([2, 3, 6, 7], '(local.get $u1)', '(local.get $u3)')})`;
}

export function packWat(): string {
  return `
  ;; Element (r, k) of the source is the f32 at $src + 4*(r*$sr + k*$sk). Packs panels [$p0, $p1)
  ;; of every k block into $dst. W is 4 or 8.
  (func $pack (export "pack") (param $src i32) (param $sr i32) (param $sk i32) (param $rows i32) (param $K i32)
      (param $W i32) (param $nkb i32) (param $kc i32) (param $dst i32) (param $p0 i32) (param $p1 i32)
    (local $np i32) (local $kb i32) (local $pi i32) (local $k0 i32) (local $kn i32) (local $r0 i32) (local $rn i32)
    (local $o i32) (local $s i32) (local $k i32) (local $r i32) (local $srb i32) (local $skb i32) (local $wb i32)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128) (local $u0 v128) (local $u1 v128) (local $u2 v128) (local $u3 v128)
    (local.set $np (i32.div_u (i32.add (local.get $rows) (i32.sub (local.get $W) (i32.const 1))) (local.get $W)))
    (local.set $srb (i32.shl (local.get $sr) (i32.const 2)))
    (local.set $skb (i32.shl (local.get $sk) (i32.const 2)))
    (local.set $wb (i32.shl (local.get $W) (i32.const 2)))
    ${loop('kb', '$kb', '(i32.const 0)', '(local.get $nkb)', `
      (local.set $k0 (i32.mul (local.get $kb) (local.get $kc)))
      (local.set $kn (i32.sub (local.get $K) (local.get $k0)))
      (if (i32.gt_s (local.get $kn) (local.get $kc)) (then (local.set $kn (local.get $kc))))
      ${loop('pi', '$pi', '(local.get $p0)', '(local.get $p1)', `
        (local.set $r0 (i32.mul (local.get $pi) (local.get $W)))
        (local.set $rn (i32.sub (local.get $rows) (local.get $r0)))
        (if (i32.gt_s (local.get $rn) (local.get $W)) (then (local.set $rn (local.get $W))))
        (local.set $o (i32.add (local.get $dst)
          (i32.shl (i32.mul (i32.add (i32.mul (local.get $kb) (local.get $np)) (local.get $pi)) (i32.mul (local.get $kc) (local.get $W))) (i32.const 2))))
        (local.set $s (i32.add (local.get $src)
          (i32.shl (i32.add (i32.mul (local.get $r0) (local.get $sr)) (i32.mul (local.get $k0) (local.get $sk))) (i32.const 2))))
        (local.set $k (i32.const 0))
        (if (i32.and (i32.eq (local.get $rn) (local.get $W)) (i32.eq (local.get $sr) (i32.const 1)))
          (then
            ;; The W values of one k are contiguous: one or two vector copies per k.
            (if (i32.eq (local.get $W) (i32.const 8))
              (then ${loop('v8', '$k', '(i32.const 0)', '(local.get $kn)', `
                (v128.store (local.get $o) (v128.load (local.get $s)))
                (v128.store offset=16 (local.get $o) (v128.load offset=16 (local.get $s)))
                (local.set $o (i32.add (local.get $o) (i32.const 32)))
                (local.set $s (i32.add (local.get $s) (local.get $skb)))`)})
              (else ${loop('v4', '$k', '(i32.const 0)', '(local.get $kn)', `
                (v128.store (local.get $o) (v128.load (local.get $s)))
                (local.set $o (i32.add (local.get $o) (i32.const 16)))
                (local.set $s (i32.add (local.get $s) (local.get $skb)))`)}))))
        (if (i32.and (i32.eq (local.get $rn) (local.get $W)) (i32.eq (local.get $sk) (i32.const 1)))
          (then
            ;; Each row is contiguous in k (row-major A, transposed B): 4 k of 4 rows per 4x4
            ;; transpose, the scalar loop below takes the last kn % 4.
            (block $t_end (loop $t_loop
              (br_if $t_end (i32.gt_s (i32.add (local.get $k) (i32.const 4)) (local.get $kn)))
              ${transpose4(0)}
              (if (i32.eq (local.get $W) (i32.const 8)) (then ${transpose4(4)}))
              (local.set $o (i32.add (local.get $o) (i32.shl (local.get $wb) (i32.const 2))))
              (local.set $s (i32.add (local.get $s) (i32.const 16)))
              (local.set $k (i32.add (local.get $k) (i32.const 4)))
              (br $t_loop)))))
        ;; General strides (a partial last panel, the tail above): one value at a time.
        ${loop('gk', '$k', '(local.get $k)', '(local.get $kn)', `
          ${loop('gr', '$r', '(i32.const 0)', '(local.get $rn)', `
            (f32.store (i32.add (local.get $o) (i32.shl (local.get $r) (i32.const 2)))
              (f32.load (i32.add (local.get $s) (i32.mul (local.get $r) (local.get $srb)))))`)}
          ${loop('gz', '$r', '(local.get $rn)', '(local.get $W)', `
            (f32.store (i32.add (local.get $o) (i32.shl (local.get $r) (i32.const 2))) (f32.const 0))`)}
          (local.set $o (i32.add (local.get $o) (local.get $wb)))
          (local.set $s (i32.add (local.get $s) (local.get $skb)))`)}
        ;; Zero rows k in [kn, kc) of a short last block.
        ${loop('zk', '$k', '(local.get $kn)', '(local.get $kc)', `
          (v128.store (local.get $o) (v128.const i32x4 0 0 0 0))
          (if (i32.eq (local.get $W) (i32.const 8)) (then (v128.store offset=16 (local.get $o) (v128.const i32x4 0 0 0 0))))
          (local.set $o (i32.add (local.get $o) (local.get $wb)))`)}`)}`)})`;
}

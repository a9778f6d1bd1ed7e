// WebAssembly text of fused attention, forward and backward, for the cpu backend's kernel threads.
// One work item is one (batch x head) slice (heads either in their own leading axis or side by
// side in each token, [batch, L, heads, D], as the projections leave them): the thread that takes it packs that slice's K and V
// once, then for each block of queries computes the scores, the softmax and the products with the
// packed GEMM micro-kernel of gemm-wat.ts, in scratch memory of its own. The scores never leave
// wasm memory, and slices run on all threads at once (one attention call used to be dozens of
// small single-threaded products, each with its operands copied in and out of the memory).
// The host writes a descriptor of i32/f32 fields (ATTN_FIELDS) and passes its address.

import { KC_MAX, MR, NR } from './panels.js';
import { loop } from './wat-loop.js';

/** Field order of the descriptor (i32 slots; `scale` is an f32, offsets are bytes from a thread's scratch). */
export const ATTN_FIELDS = [
  'q', 'k', 'v', 'y', 'gy', 'dq', 'dk', 'dv', 'lq', 'lk', 'd', 'dvDim', 'scale', 'causal', 'qb', 'heads',
  'scratch', 'stride', 'offP', 'offDP', 'offPA', 'offPB1', 'offPB2', 'offPB3', 'offPB4',
] as const;
const F = (name: (typeof ATTN_FIELDS)[number]) => ATTN_FIELDS.indexOf(name) * 4;
const ld = (name: (typeof ATTN_FIELDS)[number]) => `(i32.load offset=${F(name)} (local.get $desc))`;

/** Locals every item loop uses, loaded from the descriptor. */
const header = () => `
    (local $q i32) (local $k i32) (local $v i32) (local $y i32) (local $gy i32) (local $dq i32) (local $dk i32) (local $dv i32)
    (local $lq i32) (local $lk i32) (local $d i32) (local $dvd i32) (local $scale f32) (local $causal i32) (local $qb i32)
    (local $scr i32) (local $P i32) (local $DP i32) (local $PA i32) (local $PB1 i32) (local $PB2 i32) (local $PB3 i32) (local $PB4 i32)
    (local $tile i32) (local $bh i32) (local $q0 i32) (local $qn i32) (local $kb i32) (local $vb i32) (local $qa i32) (local $ga i32)
    (local $dkb i32) (local $dvb i32) (local $cf i32) (local $H i32) (local $qs i32) (local $vs i32) (local $b i32) (local $h i32)
    (local $qrow0 i32) (local $krow0 i32) (local $yrow0 i32) (local $vrow0 i32)
    (local.set $q ${ld('q')}) (local.set $k ${ld('k')}) (local.set $v ${ld('v')}) (local.set $y ${ld('y')})
    (local.set $gy ${ld('gy')}) (local.set $dq ${ld('dq')}) (local.set $dk ${ld('dk')}) (local.set $dv ${ld('dv')})
    (local.set $lq ${ld('lq')}) (local.set $lk ${ld('lk')}) (local.set $d ${ld('d')}) (local.set $dvd ${ld('dvDim')})
    (local.set $scale (f32.load offset=${F('scale')} (local.get $desc))) (local.set $causal ${ld('causal')}) (local.set $qb ${ld('qb')})
    ;; Rows of q, k (and their grads) are $qs floats apart, rows of v, y (and grads) $vs: with
    ;; heads > 1 the tokens hold every head side by side ([batch, L, heads, D]).
    (local.set $H ${ld('heads')}) (local.set $qs (i32.mul (local.get $H) (local.get $d))) (local.set $vs (i32.mul (local.get $H) (local.get $dvd)))
    (local.set $scr (i32.add ${ld('scratch')} (i32.mul (local.get $t) ${ld('stride')})))
    (local.set $P (i32.add (local.get $scr) ${ld('offP')})) (local.set $DP (i32.add (local.get $scr) ${ld('offDP')}))
    (local.set $PA (i32.add (local.get $scr) ${ld('offPA')}))
    (local.set $PB1 (i32.add (local.get $scr) ${ld('offPB1')})) (local.set $PB2 (i32.add (local.get $scr) ${ld('offPB2')}))
    (local.set $PB3 (i32.add (local.get $scr) ${ld('offPB3')})) (local.set $PB4 (i32.add (local.get $scr) ${ld('offPB4')}))
    (local.set $tile (i32.mul (local.get $t) (i32.const ${MR * NR * 4})))`;

/** Byte address of row `row` of a [*, cols] f32 matrix at `base`. */
const rowAt = (base: string, row: string, cols: string) => `(i32.add (local.get ${base}) (i32.shl (i32.mul ${row} (local.get ${cols})) (i32.const 2)))`;

/** Byte address of float `idx` of the tensor at `base`. */
const addr = (base: string, idx: string) => `(i32.add (local.get ${base}) (i32.shl ${idx} (i32.const 2)))`;
const mul = (a: string, b: string) => `(i32.mul ${a} ${b})`;
const add = (a: string, b: string) => `(i32.add ${a} ${b})`;
const get = (l: string) => `(local.get ${l})`;
/**
 * Slice bh is head h = bh % heads of batch entry b = bh / heads. Its first q (and dq) row is float
 * $qrow0, k (dk) $krow0, y (gy) $yrow0, v (dv) $vrow0; rows are $qs or $vs floats apart.
 */
const sliceStart = `(local.set $b (i32.div_u (local.get $bh) (local.get $H)))
      (local.set $h (i32.rem_u (local.get $bh) (local.get $H)))
      (local.set $qrow0 ${mul(add(mul(mul(get('$b'), get('$lq')), get('$H')), get('$h')), get('$d'))})
      (local.set $krow0 ${mul(add(mul(mul(get('$b'), get('$lk')), get('$H')), get('$h')), get('$d'))})
      (local.set $yrow0 ${mul(add(mul(mul(get('$b'), get('$lq')), get('$H')), get('$h')), get('$dvd'))})
      (local.set $vrow0 ${mul(add(mul(mul(get('$b'), get('$lk')), get('$H')), get('$h')), get('$dvd'))})
      (local.set $kb ${addr('$k', get('$krow0'))})
      (local.set $vb ${addr('$v', get('$vrow0'))})`;
/** Query block [q0, q0 + qn): its causal offset, and Q's first row. */
const blockStart = `(local.set $qn (i32.sub (local.get $lq) (local.get $q0)))
        (if (i32.gt_s (local.get $qn) (local.get $qb)) (then (local.set $qn (local.get $qb))))
        (local.set $cf (select (local.get $q0) (i32.const -1) (local.get $causal)))
        (local.set $qa ${addr('$q', add(get('$qrow0'), mul(get('$q0'), get('$qs'))))})`;
/** Row q0 of a y-like tensor (y, gy) and of a q-like one (dq) of the slice. */
const yBlock = (base: string) => addr(base, add(get('$yrow0'), mul(get('$q0'), get('$vs'))));
const qBlock = (base: string) => addr(base, add(get('$qrow0'), mul(get('$q0'), get('$qs'))));
/** P = softmax(Q_block K^T * scale), with K^T packed at PB1. */
const scores = `(call $packAll (local.get $qa) (local.get $qs) (i32.const 1) (local.get $qn) (local.get $d) (i32.const ${MR}) (local.get $PA))
        (call $zero (local.get $P) (i32.mul (local.get $qn) (local.get $lk)))
        (call $mm (local.get $PA) (local.get $PB1) (local.get $P) (local.get $lk) (local.get $qn) (local.get $lk) (local.get $d) (local.get $tile))
        (call $softmax (local.get $P) (local.get $lk) (i32.reinterpret_f32 (local.get $scale)) (local.get $cf) (i32.const 0) (local.get $qn))`;

export function attentionWat(): string {
  return `
  ;; K blocks of a product of depth K: nkb blocks of kc rows (as gemm.ts kBlocks).
  (func $nkb (param $K i32) (result i32)
    (select (i32.div_u (i32.add (local.get $K) (i32.const ${KC_MAX - 1})) (i32.const ${KC_MAX})) (i32.const 1) (i32.gt_s (local.get $K) (i32.const 0))))
  (func $kc (param $K i32) (result i32)
    (local $n i32) (local.set $n (call $nkb (local.get $K)))
    (i32.div_u (i32.add (local.get $K) (i32.sub (local.get $n) (i32.const 1))) (local.get $n)))
  ;; Every panel of a [rows, K] operand (element (r, k) at src + 4*(r*sr + k*sk)), panel width W.
  (func $packAll (param $src i32) (param $sr i32) (param $sk i32) (param $rows i32) (param $K i32) (param $W i32) (param $dst i32)
    (call $pack (local.get $src) (local.get $sr) (local.get $sk) (local.get $rows) (local.get $K) (local.get $W)
      (call $nkb (local.get $K)) (call $kc (local.get $K)) (local.get $dst)
      (i32.const 0) (i32.div_u (i32.add (local.get $rows) (i32.sub (local.get $W) (i32.const 1))) (local.get $W))))
  ;; C[m, n] (row stride ldc) += packed A [m, K] x packed B [K, n], on this thread.
  (func $mm (param $ap i32) (param $bp i32) (param $c i32) (param $ldc i32) (param $m i32) (param $n i32) (param $K i32) (param $tile i32)
    (call $gemm (local.get $ap) (local.get $bp) (local.get $c) (local.get $ldc) (local.get $m) (local.get $n)
      (call $kc (local.get $K)) (call $nkb (local.get $K)) (i32.const 0) (i32.div_u (i32.add (local.get $m) (i32.const ${MR - 1})) (i32.const ${MR}))
      (local.get $tile)))
  ;; n f32 zeros at p.
  (func $zero (param $p i32) (param $n i32)
    (local $e i32)
    (local.set $e (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $v_end (loop $v
      (br_if $v_end (i32.ge_u (local.get $p) (local.get $e)))
      (v128.store (local.get $p) (v128.const i32x4 0 0 0 0))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (br $v)))
    (local.set $e (i32.add (local.get $e) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $s_end (loop $s
      (br_if $s_end (i32.ge_u (local.get $p) (local.get $e)))
      (f32.store (local.get $p) (f32.const 0))
      (local.set $p (i32.add (local.get $p) (i32.const 4)))
      (br $s))))
  ;; Softmax backward with the score scale, per row: dp = p * (dp - sum(p * dp)) * scale.
  (func $softmaxGradScale (param $p i32) (param $dp i32) (param $rows i32) (param $cols i32) (param $scale f32)
    (local $r i32) (local $j i32) (local $n4 i32) (local $a i32) (local $b i32) (local $acc v128) (local $s f32) (local $sv v128) (local $cv v128)
    (local.set $n4 (i32.and (local.get $cols) (i32.const -4)))
    (local.set $cv (f32x4.splat (local.get $scale)))
    ${loop('sr', '$r', '(i32.const 0)', '(local.get $rows)', `
      (local.set $a ${rowAt('$p', '(local.get $r)', '$cols')})
      (local.set $b ${rowAt('$dp', '(local.get $r)', '$cols')})
      (local.set $acc (v128.const i32x4 0 0 0 0))
      (local.set $j (i32.const 0))
      (block $d_end (loop $d
        (br_if $d_end (i32.ge_s (local.get $j) (local.get $n4)))
        (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul
          (v128.load (i32.add (local.get $a) (i32.shl (local.get $j) (i32.const 2))))
          (v128.load (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2)))))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $d)))
      (local.set $s (f32.add (f32.add (f32x4.extract_lane 0 (local.get $acc)) (f32x4.extract_lane 1 (local.get $acc)))
        (f32.add (f32x4.extract_lane 2 (local.get $acc)) (f32x4.extract_lane 3 (local.get $acc)))))
      ${loop('st', '$j', '(local.get $n4)', '(local.get $cols)', `
        (local.set $s (f32.add (local.get $s) (f32.mul
          (f32.load (i32.add (local.get $a) (i32.shl (local.get $j) (i32.const 2))))
          (f32.load (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2)))))))`)}
      (local.set $sv (f32x4.splat (local.get $s)))
      (local.set $j (i32.const 0))
      (block $w_end (loop $w
        (br_if $w_end (i32.ge_s (local.get $j) (local.get $n4)))
        (v128.store (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2)))
          (f32x4.mul (f32x4.mul (v128.load (i32.add (local.get $a) (i32.shl (local.get $j) (i32.const 2))))
            (f32x4.sub (v128.load (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2)))) (local.get $sv))) (local.get $cv)))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $w)))
      ${loop('wt', '$j', '(local.get $n4)', '(local.get $cols)', `
        (f32.store (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2)))
          (f32.mul (f32.mul (f32.load (i32.add (local.get $a) (i32.shl (local.get $j) (i32.const 2))))
            (f32.sub (f32.load (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2)))) (local.get $s))) (local.get $scale)))`)}`)})

  ;; y = softmax(q k^T * scale) v for slices [i0, i1); t is the calling thread's index. The host
  ;; zeroes y (the products add into it).
  (func (export "attnFwd") (param $desc i32) (param $t i32) (param $i0 i32) (param $i1 i32)
    ${header()}
    ${loop('fi', '$bh', '(local.get $i0)', '(local.get $i1)', `
      ${sliceStart}
      ;; K^T (B of the scores) and V (B of the output), packed once per slice.
      (call $packAll (local.get $kb) (local.get $qs) (i32.const 1) (local.get $lk) (local.get $d) (i32.const ${NR}) (local.get $PB1))
      (call $packAll (local.get $vb) (i32.const 1) (local.get $vs) (local.get $dvd) (local.get $lk) (i32.const ${NR}) (local.get $PB2))
      (local.set $q0 (i32.const 0))
      (block $fq_end (loop $fq
        (br_if $fq_end (i32.ge_s (local.get $q0) (local.get $lq)))
        ${blockStart}
        ${scores}
        (call $packAll (local.get $P) (local.get $lk) (i32.const 1) (local.get $qn) (local.get $lk) (i32.const ${MR}) (local.get $PA))
        (call $mm (local.get $PA) (local.get $PB2) ${yBlock('$y')} (local.get $vs) (local.get $qn) (local.get $dvd) (local.get $lk) (local.get $tile))
        (local.set $q0 (i32.add (local.get $q0) (local.get $qb)))
        (br $fq)))`)})

  ;; dq, dk, dv of slices [i0, i1), recomputing each block's probabilities. The host zeroes the
  ;; three (the products add into them).
  (func (export "attnBwd") (param $desc i32) (param $t i32) (param $i0 i32) (param $i1 i32)
    ${header()}
    ${loop('bi', '$bh', '(local.get $i0)', '(local.get $i1)', `
      ${sliceStart}
      (local.set $dkb ${addr('$dk', get('$krow0'))})
      (local.set $dvb ${addr('$dv', get('$vrow0'))})
      ;; K^T (scores), V^T (dP = dY V^T) and K (dQ = dS K), packed once per slice.
      (call $packAll (local.get $kb) (local.get $qs) (i32.const 1) (local.get $lk) (local.get $d) (i32.const ${NR}) (local.get $PB1))
      (call $packAll (local.get $vb) (local.get $vs) (i32.const 1) (local.get $lk) (local.get $dvd) (i32.const ${NR}) (local.get $PB2))
      (call $packAll (local.get $kb) (i32.const 1) (local.get $qs) (local.get $d) (local.get $lk) (i32.const ${NR}) (local.get $PB3))
      (local.set $q0 (i32.const 0))
      (block $bq_end (loop $bq
        (br_if $bq_end (i32.ge_s (local.get $q0) (local.get $lq)))
        ${blockStart}
        (local.set $ga ${yBlock('$gy')})
        ${scores}
        ;; dV += P^T dY
        (call $packAll (local.get $P) (i32.const 1) (local.get $lk) (local.get $lk) (local.get $qn) (i32.const ${MR}) (local.get $PA))
        (call $packAll (local.get $ga) (i32.const 1) (local.get $vs) (local.get $dvd) (local.get $qn) (i32.const ${NR}) (local.get $PB4))
        (call $mm (local.get $PA) (local.get $PB4) (local.get $dvb) (local.get $vs) (local.get $lk) (local.get $dvd) (local.get $qn) (local.get $tile))
        ;; dS = softmax'(dY V^T) * scale
        (call $packAll (local.get $ga) (local.get $vs) (i32.const 1) (local.get $qn) (local.get $dvd) (i32.const ${MR}) (local.get $PA))
        (call $zero (local.get $DP) (i32.mul (local.get $qn) (local.get $lk)))
        (call $mm (local.get $PA) (local.get $PB2) (local.get $DP) (local.get $lk) (local.get $qn) (local.get $lk) (local.get $dvd) (local.get $tile))
        (call $softmaxGradScale (local.get $P) (local.get $DP) (local.get $qn) (local.get $lk) (local.get $scale))
        ;; dQ = dS K
        (call $packAll (local.get $DP) (local.get $lk) (i32.const 1) (local.get $qn) (local.get $lk) (i32.const ${MR}) (local.get $PA))
        (call $mm (local.get $PA) (local.get $PB3) ${qBlock('$dq')} (local.get $qs) (local.get $qn) (local.get $d) (local.get $lk) (local.get $tile))
        ;; dK += dS^T Q
        (call $packAll (local.get $DP) (i32.const 1) (local.get $lk) (local.get $lk) (local.get $qn) (i32.const ${MR}) (local.get $PA))
        (call $packAll (local.get $qa) (i32.const 1) (local.get $qs) (local.get $d) (local.get $qn) (i32.const ${NR}) (local.get $PB4))
        (call $mm (local.get $PA) (local.get $PB4) (local.get $dkb) (local.get $qs) (local.get $lk) (local.get $d) (local.get $qn) (local.get $tile))
        (local.set $q0 (i32.add (local.get $q0) (local.get $qb)))
        (br $bq)))`)})`;
}

/** Bytes of a packed [rows, K] operand of panel width W (an upper bound over the K blocking). */
export function packedBytes(rows: number, K: number, W: number): number {
  const nkb = Math.max(1, Math.ceil(K / KC_MAX));
  return Math.ceil(rows / W) * W * nkb * Math.ceil(K / nkb) * 4;
}

// WebAssembly text of group/layer norm forward and backward over rows copied into the shared
// memory, rows split across the threads. The arithmetic is the JS kernel's (norm.ts) in the same
// order, in f64, so results match it to the last f32 rounding; only dgamma/dbeta are summed per
// thread first (partials the host adds up).

import { loop } from './wat-loop.js';

/** f32 element $idx of the array at byte $base, as f64. */
const ld = (base: string, idx: string) => `(f64.promote_f32 (f32.load (i32.add (local.get ${base}) (i32.shl ${idx} (i32.const 2)))))`;
const st = (base: string, idx: string, v: string) => `(f32.store (i32.add (local.get ${base}) (i32.shl ${idx} (i32.const 2))) (f32.demote_f64 ${v}))`;
const get = (l: string) => `(local.get ${l})`;
const E = '(i32.add (local.get $o) (local.get $i))';

/**
 * Channel runs of row $r: sets $i0/$i1 (the run) and $c (its channel), then `body`; with inner = 1
 * every element is its own run (c = (row start + i) % channels).
 */
const runs = (label: string, body: string) => `(local.set $i0 (i32.const 0))
      (block $${label}_end (loop $${label}
        (br_if $${label}_end (i32.ge_s (local.get $i0) (local.get $size)))
        (local.set $q (i32.div_u (i32.add (local.get $e0) (local.get $i0)) (local.get $inner)))
        (local.set $i1 (i32.sub (i32.mul (i32.add (local.get $q) (i32.const 1)) (local.get $inner)) (local.get $e0)))
        (if (i32.gt_s (local.get $i1) (local.get $size)) (then (local.set $i1 (local.get $size))))
        (local.set $c (i32.rem_u (local.get $q) (local.get $channels)))
        (local.set $g (f64.const 1)) (local.set $b (f64.const 0))
        (if (local.get $gamma) (then (local.set $g ${ld('$gamma', '(local.get $c)')})))
        (if (local.get $beta) (then (local.set $b ${ld('$beta', '(local.get $c)')})))
        ${body}
        (local.set $i0 (local.get $i1))
        (br $${label})))`;

export function normWat(): string {
  return `
  ;; Rows [lo, hi) of x (rows of $size at byte $x): y = (x - mean) * rstd * gamma[c] + beta[c];
  ;; mean and rstd (f32) per row. gamma/beta 0: none. Channel c of element e is (e / inner) % channels.
  (func (export "norm") (param $x i32) (param $y i32) (param $mean i32) (param $rstd i32) (param $gamma i32) (param $beta i32)
      (param $size i32) (param $inner i32) (param $channels i32) (param $epsLo i32) (param $epsHi i32) (param $lo i32) (param $hi i32)
    (local $r i32) (local $o i32) (local $e0 i32) (local $i i32) (local $i0 i32) (local $i1 i32) (local $q i32) (local $c i32)
    (local $s f64) (local $m f64) (local $v f64) (local $d f64) (local $rs f64) (local $g f64) (local $b f64)
    ${loop('row', '$r', '(local.get $lo)', '(local.get $hi)', `
      (local.set $e0 (i32.mul (local.get $r) (local.get $size)))
      (local.set $o (local.get $e0))
      (local.set $s (f64.const 0))
      ${loop('sum', '$i', '(i32.const 0)', '(local.get $size)', `(local.set $s (f64.add ${get('$s')} ${ld('$x', E)}))`)}
      (local.set $m (f64.div ${get('$s')} (f64.convert_i32_u (local.get $size))))
      (local.set $v (f64.const 0))
      ${loop('var', '$i', '(i32.const 0)', '(local.get $size)', `
        (local.set $d (f64.sub ${ld('$x', E)} ${get('$m')}))
        (local.set $v (f64.add ${get('$v')} (f64.mul ${get('$d')} ${get('$d')})))`)}
      (local.set $rs (f64.div (f64.const 1) (f64.sqrt (f64.add (f64.div ${get('$v')} (f64.convert_i32_u (local.get $size)))
        (f64.reinterpret_i64 (i64.or (i64.extend_i32_u (local.get $epsLo)) (i64.shl (i64.extend_i32_u (local.get $epsHi)) (i64.const 32))))))))
      ${st('$mean', '(local.get $r)', get('$m'))}
      ${st('$rstd', '(local.get $r)', get('$rs'))}
      ${runs('fr', `${loop('fy', '$i', '(local.get $i0)', '(local.get $i1)', st('$y', E,
        `(f64.add (f64.mul (f64.mul (f64.sub ${ld('$x', E)} ${get('$m')}) ${get('$rs')}) ${get('$g')}) ${get('$b')})`))}`)}`)})

  ;; Rows [lo, hi): dx = rstd * (gy * g - mean(gy * g) - xh * mean(gy * g * xh)), xh = (x - mean) * rstd;
  ;; with $part != 0 also adds sum(gy * xh) and sum(gy) per channel into the f64 partials at $part
  ;; ([channels] then [channels]).
  (func (export "normGrad") (param $x i32) (param $gy i32) (param $dx i32) (param $mean i32) (param $rstd i32) (param $gamma i32)
      (param $part i32) (param $size i32) (param $inner i32) (param $channels i32) (param $lo i32) (param $hi i32)
    (local $r i32) (local $o i32) (local $e0 i32) (local $i i32) (local $i0 i32) (local $i1 i32) (local $q i32) (local $c i32) (local $beta i32)
    (local $m f64) (local $rs f64) (local $g f64) (local $b f64) (local $xh f64) (local $d f64)
    (local $s1 f64) (local $s2 f64) (local $dg f64) (local $db f64) (local $p i32)
    (local.set $beta (i32.const 0))
    ${loop('row', '$r', '(local.get $lo)', '(local.get $hi)', `
      (local.set $e0 (i32.mul (local.get $r) (local.get $size)))
      (local.set $o (local.get $e0))
      (local.set $m ${ld('$mean', '(local.get $r)')})
      (local.set $rs ${ld('$rstd', '(local.get $r)')})
      (local.set $s1 (f64.const 0)) (local.set $s2 (f64.const 0))
      ${runs('gr', `
        (local.set $dg (f64.const 0)) (local.set $db (f64.const 0))
        ${loop('gs', '$i', '(local.get $i0)', '(local.get $i1)', `
          (local.set $xh (f64.mul (f64.sub ${ld('$x', E)} ${get('$m')}) ${get('$rs')}))
          (local.set $d ${ld('$gy', E)})
          (local.set $dg (f64.add ${get('$dg')} (f64.mul ${get('$d')} ${get('$xh')})))
          (local.set $db (f64.add ${get('$db')} ${get('$d')}))
          (local.set $s1 (f64.add ${get('$s1')} (f64.mul ${get('$d')} ${get('$g')})))
          (local.set $s2 (f64.add ${get('$s2')} (f64.mul (f64.mul ${get('$d')} ${get('$g')}) ${get('$xh')})))`)}
        (if (local.get $part) (then
          (local.set $p (i32.add (local.get $part) (i32.shl (local.get $c) (i32.const 3))))
          (f64.store (local.get $p) (f64.add (f64.load (local.get $p)) ${get('$dg')}))
          (local.set $p (i32.add (local.get $p) (i32.shl (local.get $channels) (i32.const 3))))
          (f64.store (local.get $p) (f64.add (f64.load (local.get $p)) ${get('$db')}))))`)}
      (local.set $s1 (f64.div ${get('$s1')} (f64.convert_i32_u (local.get $size))))
      (local.set $s2 (f64.div ${get('$s2')} (f64.convert_i32_u (local.get $size))))
      ${runs('gd', `${loop('gx', '$i', '(local.get $i0)', '(local.get $i1)', `
        (local.set $xh (f64.mul (f64.sub ${ld('$x', E)} ${get('$m')}) ${get('$rs')}))
        ${st('$dx', E, `(f64.mul ${get('$rs')} (f64.sub (f64.sub (f64.mul ${ld('$gy', E)} ${get('$g')}) ${get('$s1')}) (f64.mul ${get('$xh')} ${get('$s2')})))`)}`)}`)}`)})`;
}

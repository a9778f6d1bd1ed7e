// WebAssembly text of im2col for convolutions: the host copies the input images into the shared
// memory once and the threads expand them into the (kh*kw times larger) column matrix there, so
// the biggest operand of a convolution's GEMM is never written element by element from JS.

import { loop } from './wat-loop.js';

const hi16 = (p: string) => `(i32.shr_u (local.get ${p}) (i32.const 16))`;
const lo16 = (p: string) => `(i32.and (local.get ${p}) (i32.const 65535))`;
const at = (base: string, idx: string) => `(i32.add (local.get ${base}) (i32.shl ${idx} (i32.const 2)))`;

export function im2colWat(): string {
  return `
  ;; Rows [lo, hi) of the column matrix at dst (rows (c, i, j) of length ld; image b's columns
  ;; start at b*oh*ow) from nb images at x ([nb][cg][h][w]). Pairs are packed as (a << 16) | b:
  ;; hw = (h, w), k = (kh, kw), o = (oh, ow), s = strides, pad.
  (func (export "im2col") (param $x i32) (param $nb i32) (param $cg i32) (param $hw i32) (param $kk i32) (param $o i32)
      (param $s i32) (param $pad i32) (param $dst i32) (param $ld i32) (param $lo i32) (param $hi i32)
    (local $h i32) (local $w i32) (local $kh i32) (local $kw i32) (local $oh i32) (local $ow i32)
    (local $sh i32) (local $sw i32) (local $ph i32) (local $pw i32)
    (local $r i32) (local $c i32) (local $i i32) (local $j i32) (local $b i32) (local $oy i32) (local $ox i32)
    (local $iy i32) (local $ix i32) (local $plane i32) (local $drow i32) (local $srow i32) (local $ox0 i32) (local $ox1 i32)
    (local.set $h ${hi16('$hw')}) (local.set $w ${lo16('$hw')})
    (local.set $kh ${hi16('$kk')}) (local.set $kw ${lo16('$kk')})
    (local.set $oh ${hi16('$o')}) (local.set $ow ${lo16('$o')})
    (local.set $sh ${hi16('$s')}) (local.set $sw ${lo16('$s')})
    (local.set $ph ${hi16('$pad')}) (local.set $pw ${lo16('$pad')})
    ;; Output columns whose input column lies inside the image, for stride 1: [ox0, ox1) (per j).
    ${loop('r', '$r', '(local.get $lo)', '(local.get $hi)', `
      (local.set $c (i32.div_u (local.get $r) (i32.mul (local.get $kh) (local.get $kw))))
      (local.set $i (i32.div_u (i32.rem_u (local.get $r) (i32.mul (local.get $kh) (local.get $kw))) (local.get $kw)))
      (local.set $j (i32.rem_u (local.get $r) (local.get $kw)))
      (local.set $ox0 (i32.sub (local.get $pw) (local.get $j)))
      (if (i32.lt_s (local.get $ox0) (i32.const 0)) (then (local.set $ox0 (i32.const 0))))
      (if (i32.gt_s (local.get $ox0) (local.get $ow)) (then (local.set $ox0 (local.get $ow))))
      (local.set $ox1 (i32.sub (i32.add (local.get $w) (local.get $pw)) (local.get $j)))
      (if (i32.gt_s (local.get $ox1) (local.get $ow)) (then (local.set $ox1 (local.get $ow))))
      (if (i32.lt_s (local.get $ox1) (local.get $ox0)) (then (local.set $ox1 (local.get $ox0))))
      ${loop('b', '$b', '(i32.const 0)', '(local.get $nb)', `
        (local.set $plane ${at('$x', '(i32.mul (i32.add (i32.mul (local.get $b) (local.get $cg)) (local.get $c)) (i32.mul (local.get $h) (local.get $w)))')})
        (local.set $drow ${at('$dst', '(i32.add (i32.mul (local.get $r) (local.get $ld)) (i32.mul (local.get $b) (i32.mul (local.get $oh) (local.get $ow))))')})
        ${loop('oy', '$oy', '(i32.const 0)', '(local.get $oh)', `
          (local.set $iy (i32.add (i32.sub (i32.mul (local.get $oy) (local.get $sh)) (local.get $ph)) (local.get $i)))
          (if (i32.or (i32.lt_s (local.get $iy) (i32.const 0)) (i32.ge_s (local.get $iy) (local.get $h)))
            (then ${loop('zr', '$ox', '(i32.const 0)', '(local.get $ow)', `(f32.store ${at('$drow', '(local.get $ox)')} (f32.const 0))`)})
            (else
              (if (i32.eq (local.get $sw) (i32.const 1))
                (then
                  ;; Stride 1: zeros, one run of consecutive input values, zeros.
                  (local.set $srow ${at('$plane', '(i32.add (i32.mul (local.get $iy) (local.get $w)) (i32.sub (local.get $j) (local.get $pw)))')})
                  ${loop('zl', '$ox', '(i32.const 0)', '(local.get $ox0)', `(f32.store ${at('$drow', '(local.get $ox)')} (f32.const 0))`)}
                  (local.set $ox (local.get $ox0))
                  (block $v_end (loop $v
                    (br_if $v_end (i32.gt_s (i32.add (local.get $ox) (i32.const 4)) (local.get $ox1)))
                    (v128.store ${at('$drow', '(local.get $ox)')} (v128.load ${at('$srow', '(local.get $ox)')}))
                    (local.set $ox (i32.add (local.get $ox) (i32.const 4)))
                    (br $v)))
                  ${loop('vt', '$ox', '(local.get $ox)', '(local.get $ox1)', `(f32.store ${at('$drow', '(local.get $ox)')} (f32.load ${at('$srow', '(local.get $ox)')}))`)}
                  ${loop('zh', '$ox', '(local.get $ox1)', '(local.get $ow)', `(f32.store ${at('$drow', '(local.get $ox)')} (f32.const 0))`)})
                (else
                  ${loop('ox', '$ox', '(i32.const 0)', '(local.get $ow)', `
                    (local.set $ix (i32.add (i32.sub (i32.mul (local.get $ox) (local.get $sw)) (local.get $pw)) (local.get $j)))
                    (if (i32.and (i32.ge_s (local.get $ix) (i32.const 0)) (i32.lt_s (local.get $ix) (local.get $w)))
                      (then (f32.store ${at('$drow', '(local.get $ox)')} (f32.load ${at('$plane', '(i32.add (i32.mul (local.get $iy) (local.get $w)) (local.get $ix))')})))
                      (else (f32.store ${at('$drow', '(local.get $ox)')} (f32.const 0))))`)}))))
          (local.set $drow ${at('$drow', '(local.get $ow)')})`)}`)}`)})`;
}

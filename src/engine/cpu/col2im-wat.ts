// WebAssembly text of col2im for the input gradient of a convolution: the GEMM leaves the column
// matrix W^T dY in the shared memory and the threads fold it back into image planes there, so
// neither the (kh*kw times larger) column matrix nor the fold touches the JS heap.

import { loop } from './wat-loop.js';

const hi16 = (p: string) => `(i32.shr_u (local.get ${p}) (i32.const 16))`;
const lo16 = (p: string) => `(i32.and (local.get ${p}) (i32.const 65535))`;

export function col2imWat(): string {
  return `
  ;; Planes [lo, hi) of dst ([images][cg][h][w], plane u = image u / cg, channel u % cg) from the
  ;; column matrix at col (rows (c, i, j) of length ld; image b's columns start at b*oh*ow).
  ;; Pairs are packed as (a << 16) | b: hw = (h, w), k = (kh, kw), o = (oh, ow), s = strides, pad.
  (func (export "col2im") (param $col i32) (param $ld i32) (param $dst i32) (param $cg i32)
      (param $hw i32) (param $kk i32) (param $o i32) (param $s i32) (param $pad i32) (param $lo i32) (param $hi i32)
    (local $h i32) (local $w i32) (local $kh i32) (local $kw i32) (local $oh i32) (local $ow i32)
    (local $sh i32) (local $sw i32) (local $ph i32) (local $pw i32)
    (local $u i32) (local $b i32) (local $c i32) (local $i i32) (local $j i32) (local $oy i32) (local $ox i32)
    (local $iy i32) (local $ix i32) (local $plane i32) (local $src i32) (local $p i32) (local $q i32)
    (local $ox0 i32) (local $ox1 i32) (local $drow i32) (local $srow i32)
    (local.set $h ${hi16('$hw')}) (local.set $w ${lo16('$hw')})
    (local.set $kh ${hi16('$kk')}) (local.set $kw ${lo16('$kk')})
    (local.set $oh ${hi16('$o')}) (local.set $ow ${lo16('$o')})
    (local.set $sh ${hi16('$s')}) (local.set $sw ${lo16('$s')})
    (local.set $ph ${hi16('$pad')}) (local.set $pw ${lo16('$pad')})
    ${loop('u', '$u', '(local.get $lo)', '(local.get $hi)', `
      (local.set $b (i32.div_u (local.get $u) (local.get $cg)))
      (local.set $c (i32.rem_u (local.get $u) (local.get $cg)))
      (local.set $plane (i32.add (local.get $dst) (i32.shl (i32.mul (local.get $u) (i32.mul (local.get $h) (local.get $w))) (i32.const 2))))
      ${loop('z', '$p', '(i32.const 0)', '(i32.mul (local.get $h) (local.get $w))', `
        (f32.store (i32.add (local.get $plane) (i32.shl (local.get $p) (i32.const 2))) (f32.const 0))`)}
      ${loop('i', '$i', '(i32.const 0)', '(local.get $kh)', `
        ${loop('j', '$j', '(i32.const 0)', '(local.get $kw)', `
          ;; row (c, i, j) of the columns, image b's part
          (local.set $src (i32.add (local.get $col) (i32.shl (i32.add
            (i32.mul (i32.add (i32.mul (i32.add (i32.mul (local.get $c) (local.get $kh)) (local.get $i)) (local.get $kw)) (local.get $j)) (local.get $ld))
            (i32.mul (local.get $b) (i32.mul (local.get $oh) (local.get $ow)))) (i32.const 2))))
          ${loop('oy', '$oy', '(i32.const 0)', '(local.get $oh)', `
            (local.set $iy (i32.add (i32.sub (i32.mul (local.get $oy) (local.get $sh)) (local.get $ph)) (local.get $i)))
            (if (i32.and (i32.ge_s (local.get $iy) (i32.const 0)) (i32.lt_s (local.get $iy) (local.get $h))) (then
              (if (i32.eq (local.get $sw) (i32.const 1))
                (then
                  ;; Stride 1: the output columns [ox0, ox1) land on consecutive input columns.
                  (local.set $ox0 (i32.sub (local.get $pw) (local.get $j)))
                  (if (i32.lt_s (local.get $ox0) (i32.const 0)) (then (local.set $ox0 (i32.const 0))))
                  (local.set $ox1 (i32.sub (i32.add (local.get $w) (local.get $pw)) (local.get $j)))
                  (if (i32.gt_s (local.get $ox1) (local.get $ow)) (then (local.set $ox1 (local.get $ow))))
                  (local.set $drow (i32.add (local.get $plane) (i32.shl (i32.add (i32.mul (local.get $iy) (local.get $w)) (i32.sub (local.get $j) (local.get $pw))) (i32.const 2))))
                  (local.set $srow (i32.add (local.get $src) (i32.shl (i32.mul (local.get $oy) (local.get $ow)) (i32.const 2))))
                  (local.set $ox (local.get $ox0))
                  (block $v_end (loop $v
                    (br_if $v_end (i32.gt_s (i32.add (local.get $ox) (i32.const 4)) (local.get $ox1)))
                    (local.set $q (i32.add (local.get $drow) (i32.shl (local.get $ox) (i32.const 2))))
                    (v128.store (local.get $q) (f32x4.add (v128.load (local.get $q))
                      (v128.load (i32.add (local.get $srow) (i32.shl (local.get $ox) (i32.const 2))))))
                    (local.set $ox (i32.add (local.get $ox) (i32.const 4)))
                    (br $v)))
                  ${loop('vt', '$ox', '(local.get $ox)', '(local.get $ox1)', `
                    (local.set $q (i32.add (local.get $drow) (i32.shl (local.get $ox) (i32.const 2))))
                    (f32.store (local.get $q) (f32.add (f32.load (local.get $q))
                      (f32.load (i32.add (local.get $srow) (i32.shl (local.get $ox) (i32.const 2))))))`)})
                (else
              ${loop('ox', '$ox', '(i32.const 0)', '(local.get $ow)', `
                (local.set $ix (i32.add (i32.sub (i32.mul (local.get $ox) (local.get $sw)) (local.get $pw)) (local.get $j)))
                (if (i32.and (i32.ge_s (local.get $ix) (i32.const 0)) (i32.lt_s (local.get $ix) (local.get $w))) (then
                  (local.set $q (i32.add (local.get $plane) (i32.shl (i32.add (i32.mul (local.get $iy) (local.get $w)) (local.get $ix)) (i32.const 2))))
                  (f32.store (local.get $q) (f32.add (f32.load (local.get $q))
                    (f32.load (i32.add (local.get $src) (i32.shl (i32.add (i32.mul (local.get $oy) (local.get $ow)) (local.get $ox)) (i32.const 2))))))))`)}))))`)}`)}`)}`)})`;
}

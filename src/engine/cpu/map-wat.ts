// WebAssembly text of the elementwise activation kernel: SiLU and GELU (erf form) and their
// gradients on f32x4 vectors, for blocks of a tensor copied into the shared memory. These are the
// activations whose cost is the arithmetic (an exp, an erf) rather than the memory traffic, so
// running them on every thread pays for the copy in and out.

/** Elements per work unit (a multiple of 4): threads take units in chunks. */
export const MAP_BLOCK = 1024;
/** Operation ids of the "map" export. */
export const MAP_OPS = { silu: 0, siluGrad: 1, gelu: 2, geluGrad: 3 } as const;

const splat = (v: number) => `(f32x4.splat (f32.const ${v}))`;
const mul = (a: string, b: string) => `(f32x4.mul ${a} ${b})`;
const add = (a: string, b: string) => `(f32x4.add ${a} ${b})`;
const sub = (a: string, b: string) => `(f32x4.sub ${a} ${b})`;
const get = (l: string) => `(local.get ${l})`;

export function mapWat(): string {
  // erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2): the fit gelu uses in JS (src/engine/cpu/math.ts).
  const erfCoef = [-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277];
  let poly = splat(erfCoef[9]);
  for (let i = 8; i >= 0; i--) poly = add(mul(poly, get('$t')), splat(erfCoef[i]));
  return `
  ;; exp on f32x4 for any input (clamped to [-87, 88]): range reduction and a degree-6 polynomial.
  (func $expAny4 (param $x v128) (result v128)
    (local $n v128) (local $r v128) (local $p v128)
    (local.set $x (f32x4.min (f32x4.max (local.get $x) ${splat(-87)}) ${splat(88)}))
    (local.set $n (f32x4.nearest (f32x4.mul (local.get $x) ${splat(1.44269504)})))
    (local.set $r (f32x4.sub (f32x4.sub (local.get $x) (f32x4.mul (local.get $n) ${splat(0.693145751953125)}))
      (f32x4.mul (local.get $n) ${splat(1.428606765330187e-06)})))
    (local.set $p ${splat(1.3888889e-03)})
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) ${splat(8.3333333e-03)}))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) ${splat(4.1666667e-02)}))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) ${splat(0.16666667)}))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) ${splat(0.5)}))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) ${splat(1.0)}))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) ${splat(1.0)}))
    ;; 2^n built in two halves so that n = 128 (x near 88) does not overflow the exponent field.
    (local.set $n (i32x4.trunc_sat_f32x4_s (local.get $n)))
    (f32x4.mul (f32x4.mul (local.get $p)
      (i32x4.shl (i32x4.add (i32x4.shr_s (local.get $n) (i32.const 1)) (i32x4.splat (i32.const 127))) (i32.const 23)))
      (i32x4.shl (i32x4.add (i32x4.sub (local.get $n) (i32x4.shr_s (local.get $n) (i32.const 1))) (i32x4.splat (i32.const 127))) (i32.const 23))))

  ;; erf(x) with the sign of x (|error| about 1e-7 plus f32 rounding).
  (func $erf4 (param $x v128) (result v128)
    (local $z v128) (local $t v128)
    (local.set $z (f32x4.abs (local.get $x)))
    (local.set $t (f32x4.div ${splat(1)} ${add(splat(1), mul(splat(0.5), get('$z')))}))
    (v128.or (v128.and (local.get $x) (v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000))
      ${sub(splat(1), mul(get('$t'), `(call $expAny4 ${add(sub(splat(0), mul(get('$z'), get('$z'))), poly)})`))}))

  ;; Elements [lo*${MAP_BLOCK}, min(hi*${MAP_BLOCK}, n4)) of y = op(x[, g]); n4 is n rounded up to 4
  ;; (the regions are padded). y may be x or g.
  (func (export "map") (param $op i32) (param $x i32) (param $g i32) (param $y i32) (param $n4 i32) (param $lo i32) (param $hi i32)
    (local $i i32) (local $end i32) (local $o i32) (local $v v128) (local $s v128) (local $e v128)
    (local.set $i (i32.mul (local.get $lo) (i32.const ${MAP_BLOCK})))
    (local.set $end (i32.mul (local.get $hi) (i32.const ${MAP_BLOCK})))
    (if (i32.gt_u (local.get $end) (local.get $n4)) (then (local.set $end (local.get $n4))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (local.set $o (i32.shl (local.get $i) (i32.const 2)))
      (local.set $v (v128.load (i32.add (local.get $x) (local.get $o))))
      (block $op_end
        (if (i32.le_u (local.get $op) (i32.const 1)) (then
          ;; s = sigmoid(x)
          (local.set $s (f32x4.div ${splat(1)} ${add(splat(1), `(call $expAny4 (f32x4.neg ${get('$v')}))`)}))
          (if (i32.eqz (local.get $op))
            (then (v128.store (i32.add (local.get $y) (local.get $o)) ${mul(get('$v'), get('$s'))}))
            (else (v128.store (i32.add (local.get $y) (local.get $o))
              ${mul(mul(`(v128.load (i32.add (local.get $g) (local.get $o)))`, get('$s')), add(splat(1), mul(get('$v'), sub(splat(1), get('$s')))))})))
          (br $op_end)))
        ;; e = 0.5 (1 + erf(x / sqrt 2))
        (local.set $e ${mul(splat(0.5), add(splat(1), `(call $erf4 ${mul(get('$v'), splat(Math.SQRT1_2))})`))})
        (if (i32.eq (local.get $op) (i32.const 2))
          (then (v128.store (i32.add (local.get $y) (local.get $o)) ${mul(get('$v'), get('$e'))}))
          (else (v128.store (i32.add (local.get $y) (local.get $o))
            ${mul(`(v128.load (i32.add (local.get $g) (local.get $o)))`, add(get('$e'), mul(mul(get('$v'), splat(1 / Math.sqrt(2 * Math.PI))),
              `(call $expAny4 ${mul(splat(-0.5), mul(get('$v'), get('$v')))})`)))}))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $l))))`;
}

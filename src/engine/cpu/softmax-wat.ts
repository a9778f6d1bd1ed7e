// WebAssembly SIMD row softmax with a scale and an optional causal limit, for attention scores:
// y = softmax(x * scale) per row, where row r only sees columns <= r + causalFrom. exp is a
// degree-6 polynomial after range reduction (relative error about 1e-7).

/** Byte address of element $j of the current row. */
const AT = '(i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))';

/** `for (j = reset ? 0 : j; j < end; j += step) body` over the local $j; `end` is a local name. */
const loopJ = (label: string, end: string, step: number, body: string, reset: boolean): string => `${reset ? '(local.set $j (i32.const 0))' : ''}
      (block $${label}_end (loop $${label}
        (br_if $${label}_end (i32.ge_s (local.get $j) (local.get ${end})))
        ${body}
        (local.set $j (i32.add (local.get $j) (i32.const ${step})))
        (br $${label})))`;

/**
 * One f32x4 exp for inputs <= 0 (the row maximum has been subtracted) into the local `out`, written
 * out inline: as a function called per four values it took as long as the rest of the softmax.
 * Uses the locals $en, $er, $ep.
 */
const expInto = (out: string, x: string) => `(local.set $er (f32x4.max ${x} (f32x4.splat (f32.const -87.0))))
        (local.set $en (f32x4.nearest (f32x4.mul (local.get $er) (f32x4.splat (f32.const 1.44269504)))))
        (local.set $er (f32x4.sub (f32x4.sub (local.get $er) (f32x4.mul (local.get $en) (f32x4.splat (f32.const 0.693145751953125))))
          (f32x4.mul (local.get $en) (f32x4.splat (f32.const 1.428606765330187e-06)))))
        (local.set $ep (f32x4.add (f32x4.mul (f32x4.splat (f32.const 1.3888889e-03)) (local.get $er)) (f32x4.splat (f32.const 8.3333333e-03))))
        (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $er)) (f32x4.splat (f32.const 4.1666667e-02))))
        (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $er)) (f32x4.splat (f32.const 0.16666667))))
        (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $er)) (f32x4.splat (f32.const 0.5))))
        (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $er)) (f32x4.splat (f32.const 1.0))))
        (local.set $ep (f32x4.add (f32x4.mul (local.get $ep) (local.get $er)) (f32x4.splat (f32.const 1.0))))
        (local.set ${out} (f32x4.mul (local.get $ep)
          (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $en)) (i32x4.splat (i32.const 127))) (i32.const 23))))`;

export function softmaxWat(): string {
  return `
  ;; Rows [r0, r1) of a [rows, cols] matrix at $ptr, in place.
  (func $softmax (export "softmax") (param $ptr i32) (param $cols i32) (param $scaleBits i32) (param $causalFrom i32) (param $r0 i32) (param $r1 i32)
    (local $scale f32) (local $r i32) (local $row i32) (local $lim i32) (local $j i32) (local $mx f32) (local $sum f32) (local $v f32)
    (local $vm v128) (local $vs v128) (local $e v128) (local $n4 i32) (local $en v128) (local $er v128) (local $ep v128)
    (local.set $scale (f32.reinterpret_i32 (local.get $scaleBits)))
    (local.set $r (local.get $r0))
    (block $done (loop $rows
      (br_if $done (i32.ge_s (local.get $r) (local.get $r1)))
      (local.set $row (i32.add (local.get $ptr) (i32.shl (i32.mul (local.get $r) (local.get $cols)) (i32.const 2))))
      (local.set $lim (local.get $cols))
      (if (i32.ge_s (local.get $causalFrom) (i32.const 0)) (then
        (local.set $lim (select (local.get $cols) (i32.add (i32.add (local.get $r) (local.get $causalFrom)) (i32.const 1))
          (i32.lt_s (local.get $cols) (i32.add (i32.add (local.get $r) (local.get $causalFrom)) (i32.const 1)))))))
      (local.set $n4 (i32.and (local.get $lim) (i32.const -4)))
      ;; max of x * scale
      (local.set $vm (f32x4.splat (f32.const -inf)))
      ${loopJ('m', '$n4', 4, `(local.set $vm (f32x4.max (local.get $vm) (f32x4.mul (v128.load ${AT}) (f32x4.splat (local.get $scale)))))`, true)}
      (local.set $mx (f32.max (f32.max (f32x4.extract_lane 0 (local.get $vm)) (f32x4.extract_lane 1 (local.get $vm)))
        (f32.max (f32x4.extract_lane 2 (local.get $vm)) (f32x4.extract_lane 3 (local.get $vm)))))
      ${loopJ('mt', '$lim', 1, `(local.set $mx (f32.max (local.get $mx) (f32.mul (f32.load ${AT}) (local.get $scale))))`, false)}
      ;; exp and sum
      (local.set $vs (f32x4.splat (f32.const 0)))
      ${loopJ('el', '$n4', 4, `${expInto('$e', `(f32x4.sub (f32x4.mul (v128.load ${AT}) (f32x4.splat (local.get $scale))) (f32x4.splat (local.get $mx)))`)}
        (v128.store ${AT} (local.get $e))
        (local.set $vs (f32x4.add (local.get $vs) (local.get $e)))`, true)}
      (local.set $sum (f32.add (f32.add (f32x4.extract_lane 0 (local.get $vs)) (f32x4.extract_lane 1 (local.get $vs)))
        (f32.add (f32x4.extract_lane 2 (local.get $vs)) (f32x4.extract_lane 3 (local.get $vs)))))
      ${loopJ('et', '$lim', 1, `${expInto('$e', `(f32x4.splat (f32.sub (f32.mul (f32.load ${AT}) (local.get $scale)) (local.get $mx)))`)}
        (local.set $v (f32x4.extract_lane 0 (local.get $e)))
        (f32.store ${AT} (local.get $v))
        (local.set $sum (f32.add (local.get $sum) (local.get $v)))`, false)}
      ;; normalize; masked columns become 0
      (local.set $v (f32.div (f32.const 1) (local.get $sum)))
      ${loopJ('nl', '$n4', 4, `(v128.store ${AT} (f32x4.mul (v128.load ${AT}) (f32x4.splat (local.get $v))))`, true)}
      ${loopJ('nt', '$cols', 1, `(f32.store ${AT} (select (f32.mul (f32.load ${AT}) (local.get $v)) (f32.const 0) (i32.lt_s (local.get $j) (local.get $lim))))`, false)}
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rows))))`;
}

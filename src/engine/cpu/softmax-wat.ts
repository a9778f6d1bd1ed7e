// WebAssembly SIMD row softmax with a scale and an optional causal limit, for attention scores:
// y = softmax(x * scale) per row, where row r only sees columns <= r + causalFrom. exp is a
// degree-6 polynomial after range reduction (relative error about 1e-7).

/** One f32x4 exp for inputs <= 0 (the row maximum has been subtracted). */
const expV = (x: string) => `(call $exp4 ${x})`;

export function softmaxWat(): string {
  return `
  (func $exp4 (param $x v128) (result v128)
    (local $n v128) (local $r v128) (local $p v128)
    (local.set $x (f32x4.max (local.get $x) (f32x4.splat (f32.const -87.0))))
    (local.set $n (f32x4.nearest (f32x4.mul (local.get $x) (f32x4.splat (f32.const 1.44269504)))))
    (local.set $r (f32x4.sub (f32x4.sub (local.get $x) (f32x4.mul (local.get $n) (f32x4.splat (f32.const 0.693145751953125))))
      (f32x4.mul (local.get $n) (f32x4.splat (f32.const 1.428606765330187e-06)))))
    (local.set $p (f32x4.splat (f32.const 1.3888889e-03)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 8.3333333e-03))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 4.1666667e-02))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 0.16666667))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 0.5))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 1.0))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 1.0))))
    (f32x4.mul (local.get $p)
      (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (i32x4.splat (i32.const 127))) (i32.const 23))))

  ;; Rows [r0, r1) of a [rows, cols] matrix at $ptr, in place.
  (func (export "softmax") (param $ptr i32) (param $cols i32) (param $scaleBits i32) (param $causalFrom i32) (param $r0 i32) (param $r1 i32)
    (local $scale f32) (local $r i32) (local $row i32) (local $lim i32) (local $j i32) (local $mx f32) (local $sum f32) (local $v f32)
    (local $vm v128) (local $vs v128) (local $e v128) (local $n4 i32)
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
      (local.set $j (i32.const 0))
      (block $m_end (loop $m
        (br_if $m_end (i32.ge_s (local.get $j) (local.get $n4)))
        (local.set $vm (f32x4.max (local.get $vm) (f32x4.mul (v128.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))) (f32x4.splat (local.get $scale)))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $m)))
      (local.set $mx (f32.max (f32.max (f32x4.extract_lane 0 (local.get $vm)) (f32x4.extract_lane 1 (local.get $vm)))
        (f32.max (f32x4.extract_lane 2 (local.get $vm)) (f32x4.extract_lane 3 (local.get $vm)))))
      (block $mt_end (loop $mt
        (br_if $mt_end (i32.ge_s (local.get $j) (local.get $lim)))
        (local.set $mx (f32.max (local.get $mx) (f32.mul (f32.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))) (local.get $scale))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $mt)))
      ;; exp and sum
      (local.set $vs (f32x4.splat (f32.const 0)))
      (local.set $j (i32.const 0))
      (block $e_end (loop $el
        (br_if $e_end (i32.ge_s (local.get $j) (local.get $n4)))
        (local.set $e ${expV(`(f32x4.sub (f32x4.mul (v128.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))) (f32x4.splat (local.get $scale))) (f32x4.splat (local.get $mx)))`)})
        (v128.store (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))) (local.get $e))
        (local.set $vs (f32x4.add (local.get $vs) (local.get $e)))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $el)))
      (local.set $sum (f32.add (f32.add (f32x4.extract_lane 0 (local.get $vs)) (f32x4.extract_lane 1 (local.get $vs)))
        (f32.add (f32x4.extract_lane 2 (local.get $vs)) (f32x4.extract_lane 3 (local.get $vs)))))
      (block $et_end (loop $et
        (br_if $et_end (i32.ge_s (local.get $j) (local.get $lim)))
        (local.set $v (f32x4.extract_lane 0 ${expV(`(f32x4.splat (f32.sub (f32.mul (f32.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))) (local.get $scale)) (local.get $mx)))`)}))
        (f32.store (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))) (local.get $v))
        (local.set $sum (f32.add (local.get $sum) (local.get $v)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $et)))
      ;; normalize; masked columns become 0
      (local.set $v (f32.div (f32.const 1) (local.get $sum)))
      (local.set $j (i32.const 0))
      (block $n_end (loop $nl
        (br_if $n_end (i32.ge_s (local.get $j) (local.get $n4)))
        (v128.store (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))
          (f32x4.mul (v128.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))) (f32x4.splat (local.get $v))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $nl)))
      (block $nt_end (loop $nt
        (br_if $nt_end (i32.ge_s (local.get $j) (local.get $cols)))
        (f32.store (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))
          (select (f32.mul (f32.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))) (local.get $v)) (f32.const 0)
            (i32.lt_s (local.get $j) (local.get $lim))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $nt)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rows))))`;
}

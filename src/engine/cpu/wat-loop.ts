// A counted loop in WebAssembly text, shared by the kernels written as WAT in this folder.

/** `for (v = from; v < end; v++) body` over i32 locals; `label` names the block and loop. */
export const loop = (label: string, v: string, from: string, end: string, body: string): string => `(local.set ${v} ${from})
      (block $${label}_end (loop $${label}
        (br_if $${label}_end (i32.ge_s (local.get ${v}) ${end}))
        ${body}
        (local.set ${v} (i32.add (local.get ${v}) (i32.const 1)))
        (br $${label})))`;

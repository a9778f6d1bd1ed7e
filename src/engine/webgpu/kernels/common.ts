// WGSL shared by every kernel: the parameter block (a read-only u32 array, floats bit-cast) and
// the flat invocation index over a 2-D grid of 256-wide workgroups (one dimension holds at most
// 65535 workgroups).
export const WG = 256;

export const PARAMS = '@group(0) @binding(0) var<storage, read> P: array<u32>;\nfn pf(i: u32) -> f32 { return bitcast<f32>(P[i]); }\n';

export const FLAT_MAIN = (body: string) => `
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) l: u32) {
  let i = (w.y * nw.x + w.x) * ${WG}u + l;
${body}
}`;

/** Binding declarations: `ins` read-only arrays, then `outs` read-write, numbered from `first` (P is 0). */
export function bindings(ins: string[], outs: string[], type = 'f32', first = 1): string {
  let s = '';
  let b = first;
  for (const n of ins) s += `@group(0) @binding(${b++}) var<storage, read> ${n}: array<${type}>;\n`;
  for (const n of outs) s += `@group(0) @binding(${b++}) var<storage, read_write> ${n}: array<${type}>;\n`;
  return s;
}

/** Decomposes flat index `i` over a shape held in P[base..base+rank) (row-major) into coordinates. */
export const RANK = 6;
export const COORDS = `
fn coords(i: u32, rank: u32, base: u32) -> array<u32, ${RANK}> {
  var c: array<u32, ${RANK}>;
  var r = i;
  for (var d = i32(rank) - 1; d >= 0; d--) {
    let s = P[base + u32(d)];
    c[d] = r % s;
    r = r / s;
  }
  return c;
}
fn dotStrides(c: array<u32, ${RANK}>, rank: u32, base: u32) -> u32 {
  var o = 0u;
  for (var d = 0u; d < rank; d++) { o += c[d] * P[base + d]; }
  return o;
}
`;

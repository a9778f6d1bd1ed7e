// Stands in for the `webgpu` package (Dawn for Node): in the page WebGPU is navigator.gpu, so
// reaching this module means the browser has none.
export function create(): never {
  throw new Error('WebGPU: this browser exposes no navigator.gpu (Chrome/Edge 113+, or Chromium with --enable-unsafe-webgpu); the wasm cpu backend runs instead');
}
export const globals = {};

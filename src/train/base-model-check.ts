// sd-scripts' v2 / v_parameterization flags against the model actually loaded: v2 means an SD 2.x
// base (OpenCLIP text encoder), so it is an error on any other family; the other mismatches are
// named in the log, and the metadata records the loaded family (src/families).
import type { SDModel } from '../models/sd-model.js';

export function checkBaseModel(o: { v2: boolean; v_parameterization: boolean }, m: Pick<SDModel, 'family' | 'prediction' | 'textEncoder' | 'source'>, log: (msg: string) => void): void {
  const hidden = m.textEncoder.config.hidden_size;
  if (o.v2 && m.family.id !== 'sd2') {
    const why = m.family.id === 'sd1' ? `CLIP ViT-L text encoder, hidden size ${hidden}` : `text encoder hidden size ${hidden}`;
    throw new Error(`v2 is set, but ${m.source} is an ${m.family.name} model (${why}); v2 means an SD 2.x base: remove v2 or load an SD 2.x model`);
  }
  if (!o.v2 && m.family.id === 'sd2') log(`note: ${m.source} is an SD 2.x model (OpenCLIP text encoder, hidden size ${hidden}); training it as such (sd-scripts needs --v2 for it)`);
  if (m.prediction === 'v_prediction' && !o.v_parameterization) {
    log(`warning: ${m.source} predicts v (v_prediction) but v_parameterization is off: training with epsilon targets as asked; set v_parameterization for a v model`);
  }
}

// The UNet parameter list and the LDM/SGM <-> diffusers key map, derived from each golden UNet
// case's config (SD 1.x and SDXL): the derived names and shapes must be exactly the stored ones,
// in both layouts and in both directions.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { diffusersToLdm, ldmToDiffusers, unetPrefixMap } from '../../src/models/ldm-keys.js';
import { loadStateDict, readJson } from '../../src/models/loader.js';
import { parseUNetConfig } from '../../src/models/unet-config.js';
import { unetParamShapes } from '../../src/models/unet-params.js';
import { goldenCases, requireFile } from '../helpers/golden.js';

const LDM_PREFIX = 'model.diffusion_model.';
// Cases holding weights (a backward case may reuse a sibling's weights and hold none).
const withWeights = (kind: 'sd1-unet' | 'sdxl-unet') => goldenCases(kind).filter((c) => existsSync(path.join(c.dir, 'unet.safetensors')));
const cases = [...withWeights('sd1-unet'), ...withWeights('sdxl-unet')];

describe('UNet keys derived from the config', () => {
  it('finds SD 1.x and SDXL UNet cases with unet.safetensors', () => {
    assert.ok(withWeights('sd1-unet').length > 0, 'no sd1-unet case with unet.safetensors');
    assert.ok(withWeights('sdxl-unet').length > 0, 'no sdxl-unet case with unet.safetensors');
  });

  for (const c of cases) {
    it(`${c.name}: parameter names and shapes, LDM keys both ways`, async () => {
      const cfgFile = requireFile(c.dir, 'config.json');
      const cfg = parseUNetConfig(readJson(cfgFile), cfgFile);
      const diff = await loadStateDict(requireFile(c.dir, 'unet.safetensors'));
      const shapes = unetParamShapes(cfg);
      assert.deepEqual([...shapes.keys()].sort(), [...diff.keys()].sort());
      for (const [k, s] of shapes) assert.deepEqual(s, [...diff.get(k)!.shape], k);

      const ldm = await loadStateDict(requireFile(c.dir, 'unet_ldm.safetensors'));
      const map = unetPrefixMap(cfg);
      assert.equal(ldm.size, diff.size);
      for (const [k, t] of ldm) {
        assert.ok(k.startsWith(LDM_PREFIX), k);
        const ldmKey = k.slice(LDM_PREFIX.length);
        const name = ldmToDiffusers(ldmKey, map).name;
        assert.ok(diff.has(name), `${k} -> ${name}: not a diffusers key`);
        assert.equal(t.size, diff.get(name)!.size, k);
        assert.equal(diffusersToLdm(name, map), ldmKey, `${name} back to LDM`);
        // Module paths (what LoRA names are made from) map the same way as their keys.
        const module = name.replace(/\.(weight|bias)$/, '');
        assert.equal(diffusersToLdm(module, map), ldmKey.replace(/\.(weight|bias)$/, ''), module);
      }
    });
  }
});

// The Generate page's chips and the prompt's <lora:...> tags: read, written and removed in the
// prompt text, te/unet weights kept apart only when they differ.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { readLoraTags, removeLoraTag, writeLoraTag } from '../../src/studio/ui/lora-tags.js';
import { parsePrompt } from '../../src/infer/prompt.js';

it('reads tags as txt2img parses them', () => {
  const p = 'a <lora:a> b <lora:dir/b:0.5> c <lora:c:0.3:1.2>';
  assert.deepEqual(readLoraTags(p), [{ name: 'a', te: 1, unet: 1 }, { name: 'dir/b', te: 0.5, unet: 0.5 }, { name: 'c', te: 0.3, unet: 1.2 }]);
  assert.deepEqual(readLoraTags(p), parsePrompt(p).loras.map((l) => ({ name: l.name, te: l.te, unet: l.unet })));
});

it('writes a chip change into its tag, appends new ones, removes them', () => {
  let p = 'a cat <lora:x:1> on a mat';
  p = writeLoraTag(p, { name: 'x', te: 0.75, unet: 0.75 });
  assert.equal(p, 'a cat <lora:x:0.75> on a mat');
  p = writeLoraTag(p, { name: 'x', te: 0.5, unet: 1.25 });
  assert.equal(p, 'a cat <lora:x:0.5:1.25> on a mat');
  p = writeLoraTag(p, { name: 'y', te: 1, unet: 1 });
  assert.equal(p, 'a cat <lora:x:0.5:1.25> on a mat <lora:y:1>');
  assert.equal(writeLoraTag('', { name: 'z', te: 1, unet: 1 }), '<lora:z:1>');
  assert.equal(removeLoraTag(p, 'x'), 'a cat on a mat <lora:y:1>');
  assert.deepEqual(readLoraTags(p).map((t) => t.name), ['x', 'y']);
});

// Bucketing against the worked examples of sd-scripts (../shared/docs/sd-lora-spec.md §2).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bucketList, cropOffsets, placeInBuckets, placeNoUpscale } from '../../src/data/buckets.js';
import { stepPlan } from '../../src/data/batches.js';

describe('aspect-ratio buckets', () => {
  it('lists the 17 buckets of 512x512 with 256/1024/64', () => {
    const b = bucketList([512, 512], 256, 1024, 64).map(([w, h]) => `${w}x${h}`);
    assert.deepEqual(b, ['256x832', '256x896', '256x960', '256x1024', '320x704', '320x768', '384x640', '448x576', '512x512', '576x448', '640x384', '704x320', '768x320', '832x256', '896x256', '960x256', '1024x256']);
  });

  it('assigns, resizes and crops like sd-scripts', () => {
    const buckets = bucketList([512, 512], 256, 1024, 64);
    const a = placeInBuckets(1000, 750, buckets);
    assert.deepEqual(a.bucket, [576, 448]);
    assert.deepEqual(a.resized, [597, 448]);
    assert.deepEqual(cropOffsets(a.resized, a.bucket, () => 0.99, false), [10, 0]);
    const b = placeInBuckets(3000, 2000, buckets);
    assert.deepEqual(b.bucket, [640, 384]);
    assert.deepEqual(b.resized, [640, 427]);
    assert.deepEqual(placeInBuckets(512, 512, buckets).resized, [512, 512]);
    const r = cropOffsets([597, 448], [576, 448], () => 0.5, true);
    assert.ok(r[0] >= 0 && r[0] <= 21 && r[1] === 0);
  });

  it('bucket_no_upscale keeps small images and shrinks large ones', () => {
    const a = placeNoUpscale(1000, 750, [512, 512], 64);
    assert.deepEqual(a.resized, [512, 384]);
    assert.deepEqual(a.bucket, [512, 384]);
    const b = placeNoUpscale(400, 300, [512, 512], 64);
    assert.deepEqual(b.resized, [400, 300]);
    assert.deepEqual(b.bucket, [384, 256]);
  });

  it('computes steps and epochs from batches, accumulation and limits', () => {
    assert.deepEqual(stepPlan(10, 1, 1600), { maxTrainSteps: 1600, epochs: 160, stepsPerEpoch: 10 });
    assert.deepEqual(stepPlan(10, 3, 25), { maxTrainSteps: 25, epochs: 7, stepsPerEpoch: 4 });
    assert.deepEqual(stepPlan(10, 1, 1600, 5), { maxTrainSteps: 50, epochs: 5, stepsPerEpoch: 10 });
  });
});

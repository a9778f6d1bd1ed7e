// Writes the bundled demo LoRA dataset: crosses (a shape the tiny base model never saw) in the
// kohya layout assets/demo-dataset/train/10_cross/NNN.png + NNN.txt.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { writeShapeDataset } from '../src/data/procedural.js';

const root = path.resolve('assets/demo-dataset/train');
rmSync(path.resolve('assets/demo-dataset'), { recursive: true, force: true });
const dir = writeShapeDataset(root, { name: 'cross', repeats: 10, count: 24, size: 32, shapes: ['cross'], seed: 2024 });
console.log(`wrote ${dir}`);

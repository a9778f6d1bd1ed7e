// The dispatch on training_method: the LoRA trainer (trainer.ts), Textual Inversion or DreamBooth
// (method-loop.ts with textual-inversion.ts / dreambooth.ts). What the CLI needs of any run.
import type { TrainConfig } from './config.js';
import { trainDreamBooth } from './dreambooth.js';
import type { MethodHooks } from './method-loop.js';
import { trainTextualInversion } from './textual-inversion.js';
import { type TrainHooks, train } from './trainer.js';
import { methodOf } from './training-method.js';

export interface RunOutcome { finalPath: string | null; saved: string[]; steps: number; interrupted: boolean; stateDir: string | null }

export async function runTraining(cfg: TrainConfig, hooks: TrainHooks & MethodHooks): Promise<RunOutcome> {
  switch (methodOf(cfg)) {
    case 'textual_inversion': return trainTextualInversion(cfg, hooks);
    case 'dreambooth': return trainDreamBooth(cfg, hooks);
    default: return train(cfg, hooks);
  }
}

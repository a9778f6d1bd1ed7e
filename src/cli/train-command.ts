// `sdlora train`: sd-scripts style options from a JSON/TOML config file and --flags of the same names.
import type { Command } from 'commander';
import { type ConfigLayer, type TrainConfig, optionsMarkdown, parseCliOptions, readConfigLayer, resolveConfig } from '../train/config.js';
import { runTraining } from '../train/run-training.js';
import { ProgressBar } from './progress.js';
import { onInterrupt } from './interrupt.js';

/** Config file (--config / --config_file) then the other flags, later ones winning; --strict refuses unknown options. */
export function configFromArgs(argv: string[]): TrainConfig {
  const rest: string[] = [];
  const layers: ConfigLayer[] = [];
  let strict = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const m = /^--(config|config[_-]file)(=(.*))?$/.exec(a);
    if (m) {
      const file = m[3] ?? argv[++i];
      if (!file) throw new Error('--config needs a file');
      layers.push(readConfigLayer(file));
    } else if (a === '--strict') strict = true;
    else rest.push(a);
  }
  layers.push({ source: 'command line', values: parseCliOptions(rest), strict: true });
  return resolveConfig(layers, { strict });
}

export function registerTrainCommand(program: Command): void {
  program.command('train')
    .description('train a LoRA (or, with --training_method, a Textual Inversion embedding or a DreamBooth checkpoint): --config file.json|.toml (sd-scripts options or a kohya_ss GUI preset) and/or sd-scripts options as flags (--learning_rate 1e-4 ...); --strict refuses unknown option names; "sdlora train --options" lists them')
    .allowUnknownOption(true).helpOption(false).argument('[options...]')
    .action(async (args: string[]) => {
      if (args.includes('--options') || args.includes('--help') || args.includes('-h')) { console.log(optionsMarkdown()); return; }
      const cfg = configFromArgs(args);
      let bar: ProgressBar | undefined;
      const interrupt = onInterrupt();
      const r = await runTraining(cfg, {
        shouldStop: interrupt.requested,
        onStep: (s) => {
          bar ??= new ProgressBar('train', s.maxSteps, 'step', performance.now(), s.step);
          bar.update(s.step, `epoch ${s.epoch}/${s.epochs} loss ${s.loss.toFixed(4)} avg ${s.avgLoss.toFixed(4)} lr ${s.lr.toExponential(2)}`);
        },
      });
      interrupt.dispose();
      for (const f of r.saved) console.log(f);
      if (r.interrupted) {
        console.error(`interrupted at step ${r.steps}: saved ${r.saved.at(-1)} and the state ${r.stateDir}; continue with --resume ${r.stateDir}`);
        process.exitCode = 130;
      } else if (!r.finalPath) console.log(`stopped at step ${r.steps}`);
    });
}

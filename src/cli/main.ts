// The `sdlora` command line.
import { Command } from 'commander';
import { debugRequested, installErrorHandlers, reportError } from './errors.js';
import { doctor } from './doctor.js';
import { inspect } from './inspect.js';
import { registerDataCommands } from './data-commands.js';
import { runDemo } from './demo.js';
import { registerLoRACommands } from './lora-commands.js';
import { registerEmbeddingsCommand } from './embeddings-command.js';
import { smoke } from './smoke.js';
import { registerTrainCommand } from './train-command.js';
import { registerTxt2ImgCommand } from './txt2img-command.js';
import { registerWebCommand } from './web-command.js';
import { registerStudioCommands } from '../studio/studio-command.js';

// First, so that a reader closing the pipe (sdlora inspect f | head) or a stray rejection
// ends quietly instead of with a stack trace.
const debug = debugRequested(process.argv);
installErrorHandlers(debug);

const program = new Command();
program
  .name('sdlora')
  .description('Train and use Stable Diffusion LoRA adapters in TypeScript (no Python, no CUDA).')
  .version('0.1.0')
  .option('--debug', 'print stack traces of errors (any command; also SDLORA_DEBUG=1)');

program
  .command('demo')
  .description('train a LoRA of a new shape on the bundled tiny model (CPU, a few minutes) and score before/after samples')
  .option('--out <dir>', 'output folder', 'sdlora-demo')
  .option('--steps <n>', 'training steps', (v) => Number(v), 300)
  .option('--images <n>', 'sample images per grid', (v) => Number(v), 12)
  .option('--seed <n>', 'seed', (v) => Number(v), 1)
  .action(async (o: { out: string; steps: number; images: number; seed: number }) => { await runDemo(o); });

program
  .command('smoke')
  .description('run a small forward/backward pass on the cpu engine and check one gradient')
  .action(smoke);

program
  .command('inspect')
  .description('list the tensors and metadata of a .safetensors file')
  .argument('<file>', 'path to a .safetensors file')
  .option('--limit <n>', 'tensors to list', (v) => Number(v), 50)
  .action(inspect);

program
  .command('doctor')
  .description('show the compute backends this machine offers: cpu kernels and threads, WebGPU adapter, features and limits')
  .option('--json', 'machine-readable output')
  .action(doctor);

registerTrainCommand(program);
registerTxt2ImgCommand(program);
registerLoRACommands(program);
registerEmbeddingsCommand(program);
registerDataCommands(program);
registerWebCommand(program);
registerStudioCommands(program);

try {
  await program.parseAsync();
} catch (e) {
  reportError(e, debug);
  process.exitCode = 1;
}

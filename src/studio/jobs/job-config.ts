// Turns the Train form's options into the config a studio job runs with: dataset names become
// folders of the workspace, the output goes to loras/<output_name>, sample prompts typed in the
// form become a prompts file, and options naming other files are refused (no path leaves the
// workspace). The result goes through the CLI's own resolveConfig, so a bad option fails here
// with the CLI's message before the job is queued.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, resolveConfig } from '../../train/config.js';
import { writeBufferAtomic } from '../../io/atomic-write.js';
import { HttpError } from '../server/http-kit.js';
import { type Workspace, checkSegment } from '../server/workspace.js';

/** Options whose value names a file or folder: the studio sets them itself or refuses them. */
export const PATH_OPTIONS = ['dataset_config', 'resume', 'network_weights', 'fallback_output_dir', 'vae', 'output_dir', 'logging_dir'];

export interface PreparedJob {
  name: string;
  config: Record<string, unknown>;
  outputDir: string;
  stateDir: string;
}

export async function prepareJobConfig(ws: Workspace, form: Record<string, unknown>, opts: { overwrite?: boolean } = {}): Promise<PreparedJob> {
  const values: Record<string, unknown> = { ...form };
  for (const k of PATH_OPTIONS) if (values[k] !== undefined && values[k] !== null && values[k] !== '') throw new HttpError(400, `"${k}" names a file outside the studio's control; the studio sets the output folder and resumes jobs itself`);
  for (const k of PATH_OPTIONS) delete values[k];
  const dataset = String(values.train_data_dir ?? '');
  if (!dataset) throw new HttpError(400, 'choose a dataset (train_data_dir)');
  values.train_data_dir = ws.resolve('datasets', checkSegment(dataset, 'dataset'), 'dataset');
  if (!existsSync(values.train_data_dir as string)) throw new HttpError(400, `no dataset "${dataset}"`);
  if (values.reg_data_dir) {
    values.reg_data_dir = ws.resolve('datasets', checkSegment(String(values.reg_data_dir), 'dataset'), 'regularization dataset');
    if (!existsSync(values.reg_data_dir as string)) throw new HttpError(400, `no dataset "${form.reg_data_dir}"`);
  }
  const model = String(values.pretrained_model_name_or_path ?? '');
  if (!model) throw new HttpError(400, 'choose a base model (pretrained_model_name_or_path)');
  const name = checkSegment(String(values.output_name ?? ''), 'output_name');
  values.output_name = name;
  const outputDir = ws.resolve('loras', name, 'output');
  values.output_dir = outputDir;
  if (!opts.overwrite && existsSync(outputDir) && readdirSync(outputDir).some((f) => f.endsWith('.safetensors'))) {
    throw new HttpError(409, `loras/${name} holds LoRA files already; confirm to overwrite them, or choose another output name`, { exists: true });
  }
  values.caption_extension ??= '.txt';
  if (typeof values.sample_prompts === 'string' && values.sample_prompts.trim()) {
    const file = path.join(ws.folder('jobs'), `prompts-${name}-${Date.now()}.txt`);
    await writeBufferAtomic(file, Buffer.from(values.sample_prompts));
    values.sample_prompts = file;
  } else delete values.sample_prompts;
  // The studio resumes failed and stopped runs, so it keeps their state.
  values.save_state = true;
  try {
    resolveConfig([{ source: 'studio', values, strict: true }]);
  } catch (e) {
    if (e instanceof ConfigError) throw new HttpError(400, e.message, { problems: (e as ConfigError & { problems?: string[] }).problems });
    throw e;
  }
  return { name, config: values, outputDir, stateDir: path.join(outputDir, `${name}-state`) };
}

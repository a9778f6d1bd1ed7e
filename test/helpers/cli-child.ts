// The sdlora command line as a real child process, for tests that kill it or send it signals:
// wait for a line on stderr, for a file, or for the exit, each with a bounded timeout.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/sdlora.js');

export interface CliChild {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when stderr matches `re`; rejects after `ms` or when the process exits first. */
  waitForStderr(re: RegExp, ms?: number): Promise<void>;
  /** Resolves with the exit code (signal name when killed); rejects after `ms`. */
  exit(ms?: number): Promise<number | string>;
}

export function spawnCli(args: string[], env: Record<string, string> = {}): CliChild {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { err += d; });
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const bounded = <T>(p: Promise<T>, ms: number, what: string) => Promise.race([
    p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}\nstderr:\n${err}`)), ms).unref()),
  ]);
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitForStderr: (re, ms = 120_000) => bounded(new Promise<void>((resolve, reject) => {
      const check = () => { if (re.test(err)) { child.stderr!.off('data', check); resolve(); } };
      child.stderr!.on('data', check);
      exited.then((c) => { if (!re.test(err)) reject(new Error(`exited (${c}) before stderr matched ${re}\nstderr:\n${err}`)); });
      check();
    }), ms, `${re}`),
    exit: (ms = 120_000) => bounded(exited, ms, 'the exit'),
  };
}

/** Polls until `file` exists and `ok(content)` holds; bounded by `ms`. */
export async function waitForFile(file: string, ok: (text: string) => boolean = () => true, ms = 120_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    if (existsSync(file)) { const t = readFileSync(file, 'utf8'); if (ok(t)) return t; }
    if (Date.now() > end) throw new Error(`timed out waiting for ${file}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

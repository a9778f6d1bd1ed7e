// How the command line ends on errors: one "sdlora: <message>" line (a stack trace only with
// --debug or SDLORA_DEBUG=1), and a quiet exit when the reader of stdout goes away (| head).

/** Whether --debug was given anywhere; it is taken out of argv so that sub-commands that pass
 * their flags through (train) do not see it as an option of theirs. */
export function debugRequested(argv: string[]): boolean {
  const i = argv.indexOf('--debug');
  if (i >= 0) argv.splice(i, 1);
  return i >= 0 || process.env.SDLORA_DEBUG === '1';
}

export function reportError(e: unknown, debug: boolean): void {
  const err = e instanceof Error ? e : new Error(String(e));
  process.stderr.write(`sdlora: ${debug && err.stack ? err.stack : err.message}\n`);
}

const isEpipe = (e: unknown) => (e as NodeJS.ErrnoException | undefined)?.code === 'EPIPE';

export function installErrorHandlers(debug: boolean): void {
  // The reader closed the pipe: there is nobody left to print to, which is not an error.
  process.stdout.on('error', (e) => { if (isEpipe(e)) process.exit(0); reportError(e, debug); process.exit(1); });
  process.stderr.on('error', (e) => process.exit(isEpipe(e) ? 0 : 1));
  process.on('uncaughtException', (e) => { if (isEpipe(e)) process.exit(0); reportError(e, debug); process.exit(1); });
  process.on('unhandledRejection', (e) => { if (isEpipe(e)) process.exit(0); reportError(e, debug); process.exit(1); });
}

// Ctrl-C during training: the first one asks the trainer to stop after the current step and save
// its state and a LoRA; a second one exits at once.
export interface Interrupt {
  requested: () => boolean;
  dispose: () => void;
}

export function onInterrupt(): Interrupt {
  let count = 0;
  const handler = (signal: NodeJS.Signals) => {
    count++;
    if (count > 1) {
      process.stderr.write(`\n${signal} again: exiting now without saving\n`);
      process.exit(130);
    }
    process.stderr.write(`\n${signal}: finishing the current step, then saving the state and a LoRA (press Ctrl-C again to exit at once)\n`);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    requested: () => count > 0,
    dispose: () => { process.off('SIGINT', handler); process.off('SIGTERM', handler); },
  };
}

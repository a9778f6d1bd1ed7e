// `node:os` for the page: thread count from navigator.hardwareConcurrency, fixed folder names.
const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
export const availableParallelism = (): number => Math.max(1, nav?.hardwareConcurrency ?? 1);
export const cpus = (): unknown[] => Array.from({ length: availableParallelism() }, () => ({ model: 'browser' }));
export const tmpdir = (): string => '/tmp';
export const homedir = (): string => '/home';
export const hostname = (): string => 'browser';
export const platform = (): string => 'browser';
export const totalmem = (): number => ((globalThis as { navigator?: { deviceMemory?: number } }).navigator?.deviceMemory ?? 4) * 2 ** 30;
export const freemem = totalmem;
export const EOL = '\n';
export default { availableParallelism, cpus, tmpdir, homedir, hostname, platform, totalmem, freemem, EOL };

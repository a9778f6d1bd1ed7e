// Node modules that have no meaning in the page (network streams to files, require): importing
// them is allowed so shared modules bundle, but using them says why it cannot work here.
const fail = (what: string) => (): never => {
  throw new Error(`${what} is not available in the browser build (Node only); load files through the page instead`);
};
export const Readable = { fromWeb: fail('stream.Readable') };
export const pipeline = fail('stream.pipeline');
export const createRequire = fail('module.createRequire');
export const spawn = fail('child_process.spawn');
export const execFileSync = fail('child_process.execFileSync');
export default { Readable, pipeline, createRequire, spawn, execFileSync };

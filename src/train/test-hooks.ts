// Fault-injection points for the kill and failure tests, driven by environment variables so a
// real child process can be stopped at an exact moment. Both are inert unless the variable is set.
//   SDLORA_TEST_PAUSE=<point>#<n>  at the n-th visit of <point>: print "sdlora-test-paused: <point>"
//                                  on stderr and wait forever (the test then kills the process)
//   SDLORA_TEST_FAIL=<point>#<n>   at the n-th visit of <point>: throw an error
const visits = new Map<string, number>();

/** Forget visit counts (each in-process training run counts from zero). */
export function resetTestHooks(): void { visits.clear(); }

function hit(variable: string, point: string): boolean {
  const spec = process.env[variable];
  if (!spec) return false;
  const [name, nth = '1'] = spec.split('#');
  if (name !== point) return false;
  const key = `${variable}:${point}`;
  const n = (visits.get(key) ?? 0) + 1;
  visits.set(key, n);
  return n === Number(nth);
}

/** A named moment in the run where a test may pause the process or make it fail. */
export async function testPoint(point: string): Promise<void> {
  if (hit('SDLORA_TEST_FAIL', point)) throw new Error(`injected failure at ${point} (SDLORA_TEST_FAIL)`);
  if (!hit('SDLORA_TEST_PAUSE', point)) return;
  process.stderr.write(`sdlora-test-paused: ${point}\n`);
  await new Promise<never>(() => { setInterval(() => undefined, 1 << 30); });
}

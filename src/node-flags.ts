/**
 * V8 flags the service runs with. A diagnosis allocates a few hundred kilobytes of short-lived
 * objects (agent outputs, their JSON, the statements), so with V8's default young generation
 * (16 MB semi-spaces) the scavenger runs every few dozen requests and promotes objects still in
 * flight. 64 MB semi-spaces cost at most ~100 MB more memory per process and cut Node CPU per
 * diagnosis by ~10 % on the bench VM (README, Performance). V8 reads them only at start, so
 * they are on every command that starts the service: `npm start`, the image's CMD, the workers
 * `serve` forks, and the bench; a test keeps those in step with this list.
 */
export const SERVE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];

/** argv with each of SERVE_NODE_FLAGS the caller did not set itself (a flag given by the operator wins). */
export function withServeFlags(execArgv: readonly string[]): string[] {
  const set = (flag: string) => flag.split('=')[0]!.replace(/_/g, '-');
  const given = new Set(execArgv.map(set));
  return [...execArgv, ...SERVE_NODE_FLAGS.filter((f) => !given.has(set(f)))];
}

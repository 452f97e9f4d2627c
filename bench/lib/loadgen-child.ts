/**
 * The load generator's own process: its event loop does nothing but pace, send and measure,
 * so the orchestrator (and its timers, logging and bookkeeping) cannot delay a request.
 */
import { closedLoop } from './closed-loop.js';
import type { FromLoadgen, ToLoadgen } from './jobs.js';
import { openLoop } from './open-loop.js';

const reply = (msg: FromLoadgen) => process.send?.(msg);

process.on('message', (msg: ToLoadgen) => {
  if (msg.type !== 'job') return;
  const run = msg.job.load === 'saturation' ? closedLoop : openLoop;
  run(msg.job).then(
    (result) => reply({ type: 'result', id: msg.id, result }),
    (err: unknown) => reply({ type: 'error', id: msg.id, message: err instanceof Error ? err.stack ?? err.message : String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
reply({ type: 'ready' });

/**
 * `serve --workers N`: the primary prepares the database once (migrations, first-start
 * bootstrap), then forks N HTTP workers that share the port (node:cluster). It replaces a
 * worker that dies, restarts them one at a time on SIGHUP (a new one listening before the old
 * one drains, so capacity never drops below N-1), and on SIGTERM/SIGINT lets every worker drain.
 *
 * Embedded mode (PGlite) is owned by one process, so it runs one worker: the CLI refuses more.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { withServeFlags } from './node-flags.js';
import { relayClusterMetrics } from './observability/cluster-metrics.js';
import { ClusterRevocationBus } from './storage/redis/revocations.js';
import { ClusterModelChangeBus } from './storage/redis/model-changes.js';

export interface SupervisorOptions {
  workers: number;
  logger: Logger;
  /** Time a worker gets to drain before it is killed. */
  drainTimeoutMs?: number;
}

export function superviseWorkers(opts: SupervisorOptions): void {
  const { logger } = opts;
  const drainTimeoutMs = opts.drainTimeoutMs ?? 30_000;
  let stopping = false;
  /** Workers being replaced on purpose: their exit is not a crash. */
  const retiring = new Set<Worker>();
  const crashes: number[] = [];

  // Workers start with the service's V8 flags even when the primary was started without them.
  cluster.setupPrimary({ execArgv: withServeFlags(process.execArgv) });
  ClusterRevocationBus.relay();
  ClusterModelChangeBus.relay();
  relayClusterMetrics();

  const fork = (): Worker => {
    const worker = cluster.fork();
    worker.on('exit', (code, signal) => {
      if (stopping || retiring.delete(worker)) return;
      const now = Date.now();
      crashes.push(now);
      while (crashes.length > 0 && crashes[0]! < now - 60_000) crashes.shift();
      // A worker that keeps dying at start (bad config, database down) is restarted ever more slowly.
      const delay = Math.min(500 * 2 ** Math.max(0, crashes.length - 1), 30_000);
      logger.error({ pid: worker.process.pid, code, signal, restartInMs: delay }, 'worker exited unexpectedly; starting a replacement');
      setTimeout(() => {
        if (!stopping) fork();
      }, delay).unref();
    });
    return worker;
  };

  const stopWorker = (worker: Worker): Promise<void> =>
    new Promise((resolve) => {
      if (worker.isDead()) return resolve();
      const kill = setTimeout(() => worker.process.kill('SIGKILL'), drainTimeoutMs);
      worker.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      worker.process.kill('SIGTERM');
    });

  const listening = (worker: Worker): Promise<boolean> =>
    new Promise((resolve) => {
      worker.once('listening', () => resolve(true));
      worker.once('exit', () => resolve(false));
    });

  let rolling = false;
  const rollingRestart = async () => {
    if (rolling || stopping) return;
    rolling = true;
    logger.info('SIGHUP: restarting workers one at a time');
    try {
      for (const old of Object.values(cluster.workers ?? {})) {
        if (old === undefined || stopping) continue;
        const replacement = fork();
        if (!(await listening(replacement))) {
          logger.error('a replacement worker did not start; rolling restart stopped, the old workers keep serving');
          return;
        }
        retiring.add(old);
        await stopWorker(old);
      }
      logger.info('rolling restart done');
    } finally {
      rolling = false;
    }
  };

  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: every worker drains its in-flight requests');
    void Promise.all(Object.values(cluster.workers ?? {}).map((w) => (w === undefined ? Promise.resolve() : stopWorker(w)))).then(() => {
      logger.info('stopped');
      process.exit(0);
    });
  };

  process.on('SIGHUP', () => void rollingRestart());
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  for (let i = 0; i < opts.workers; i++) fork();
  logger.info({ workers: opts.workers }, 'AgenticPet primary started its workers');
}

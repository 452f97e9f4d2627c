/** The orchestrator's handle on the load generator child process (bench/lib/loadgen-child.ts). */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FromLoadgen, Job, Measured, ToLoadgen } from './jobs.js';

export class LoadGenerator {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (m: Measured) => void; reject: (e: Error) => void }>();

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (msg: FromLoadgen) => {
      if (msg.type === 'ready') return;
      const p = this.pending.get(msg.id);
      if (p === undefined) return;
      this.pending.delete(msg.id);
      if (msg.type === 'result') p.resolve(msg.result);
      else p.reject(new Error(`load generator: ${msg.message}`));
    });
    child.on('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`load generator exited (${signal ?? code})`));
      this.pending.clear();
    });
  }

  /** Forks the child with this process's exec arguments, so it runs under tsx as well. */
  static start(): Promise<LoadGenerator> {
    const child = fork(fileURLToPath(new URL('./loadgen-child.ts', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`load generator exited at start (${code})`));
      child.once('exit', onExit);
      child.once('message', () => {
        child.off('exit', onExit);
        resolve(new LoadGenerator(child));
      });
    });
  }

  run(job: Job): Promise<Measured> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const msg: ToLoadgen = { type: 'job', id, job };
      this.child.send(msg);
    });
  }

  stop(): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    if (this.child.connected) this.child.disconnect();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    t.unref();
  }
}

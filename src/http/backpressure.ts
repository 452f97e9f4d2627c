/**
 * Event-loop lag as a backpressure signal. A timer due every intervalMs measures how late it
 * fires: that is how long the loop went without turning (a long synchronous task, or one poll
 * phase working through a backlog of requests). The service counts as saturated only while the
 * lag stays over the limit for `consecutive` samples in a row, so one long task (a cold start,
 * a big migration) does not shed requests, while a backlog that keeps the loop busy does.
 */
export class LoopLag {
  private last = performance.now();
  private over = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Lag of the latest sample, milliseconds. */
  lagMs = 0;

  constructor(
    private readonly limitMs: number,
    private readonly intervalMs = 50,
    private readonly consecutive = 2,
  ) {}

  start(): this {
    if (this.limitMs <= 0 || this.timer !== undefined) return this;
    this.last = performance.now();
    this.timer = setInterval(() => {
      const now = performance.now();
      this.lagMs = Math.max(0, now - this.last - this.intervalMs);
      this.last = now;
      this.over = this.lagMs > this.limitMs ? this.over + 1 : 0;
    }, this.intervalMs);
    this.timer.unref();
    return this;
  }

  /** The current lag when saturated, else null. */
  saturated(): number | null {
    return this.limitMs > 0 && this.over >= this.consecutive ? this.lagMs : null;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

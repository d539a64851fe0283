/**
 * The gateway's one admission control. An invocation is admitted past lookup and auth once its
 * body has been read, and counted until it has answered: while it waits for a slot and runs.
 * Bounding the count bounds the bodies held by invocations, which a public function would
 * otherwise let anyone grow without limit; a function's own `max_concurrency` bounds its share.
 * A client still sending holds no place here (ReadingLimit bounds those), so slow senders cannot
 * lock the others out. Shutdown waits on the same count. The sandbox's slot pool only queues what
 * is admitted here.
 */
export class Admission {
  private admitted = 0;
  private readonly byFunction = new Map<string, number>();
  private waiters: Array<() => void> = [];

  /** `limit`: invocations in progress at once (MAX_CONCURRENCY + QUEUE_LIMIT). */
  constructor(private readonly limit: number) {}

  get size(): number {
    return this.admitted;
  }

  /** Whether `enter` would admit now: checked before a body is read, so a full gateway reads none. */
  wouldAdmit(name: string, maxConcurrency: number | null): boolean {
    const mine = this.byFunction.get(name) ?? 0;
    return this.admitted < this.limit && (maxConcurrency === null || mine < maxConcurrency);
  }

  /** Counts the invocation in and returns its release, or null when the gateway or the function is at its limit. */
  enter(name: string, maxConcurrency: number | null): (() => void) | null {
    if (!this.wouldAdmit(name, maxConcurrency)) return null;
    const mine = this.byFunction.get(name) ?? 0;
    this.admitted++;
    this.byFunction.set(name, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.byFunction.get(name) ?? 1) - 1;
      if (left === 0) this.byFunction.delete(name);
      else this.byFunction.set(name, left);
      this.admitted--;
      if (this.admitted === 0) for (const wake of this.waiters.splice(0)) wake();
    };
  }

  /** Resolves true once nothing is in progress, or false after `timeoutMs`. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.admitted === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.waiters.push(done);
    });
  }
}

/**
 * Request bodies being received at once (MAX_READING_REQUESTS), before admission. Each holds at
 * most MAX_BODY_BYTES, and only for BODY_READ_TIMEOUT_MS: together they bound what clients still
 * sending can hold, apart from the admitted invocations.
 */
export class ReadingLimit {
  private reading = 0;

  constructor(private readonly limit: number) {}

  get size(): number {
    return this.reading;
  }

  /** Counts a body in and returns its release, or null when MAX_READING_REQUESTS are being read. */
  enter(): (() => void) | null {
    if (this.reading >= this.limit) return null;
    this.reading++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.reading--;
    };
  }
}

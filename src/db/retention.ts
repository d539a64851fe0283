import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { log as gatewayLog } from "../core/log.js";
import type { InvocationLog } from "./invocations.js";

export interface RetentionOptions {
  /** Rows older than this many days go; 0 keeps them regardless of age. */
  retentionDays: number;
  /** At most this many rows stay; 0 means no limit. */
  retentionRows: number;
  intervalMs: number;
  /** The database's byte budget (LOG_MAX_MB in bytes); 0 means none. Pruned to 90% of it, oldest first. */
  maxBytes?: number;
  /** Bytes of the database in use; required with maxBytes. */
  usedBytes?: () => number;
  /** Rows deleted per statement; each batch holds the event loop for a few ms at most. */
  batchSize?: number;
  now?: () => number;
}

export interface Retention {
  /** Prunes until nothing is left to prune; returns how many rows went. */
  runOnce(): Promise<number>;
  stop(): void;
}

/** Prunes the invocation log on an unref'd interval, in bounded batches with the event loop free between them. */
export function startRetention(log: InvocationLog, options: RetentionOptions): Retention {
  const batchSize = options.batchSize ?? 1000;
  const now = options.now ?? Date.now;
  let running: Promise<number> | null = null;
  let stopped = false;

  async function prune(): Promise<number> {
    let total = 0;
    for (;;) {
      if (stopped) return total;
      const deleted = log.pruneBatch({
        olderThan: options.retentionDays > 0 ? now() - options.retentionDays * 24 * 3600_000 : null,
        keepRows: options.retentionRows > 0 ? options.retentionRows : null,
        batchSize,
      });
      total += deleted;
      if (deleted < batchSize) break;
      await yieldToEventLoop();
    }
    return total + (await pruneToBudget());
  }

  /** Oldest rows first until the database is back under 90% of its budget, so it is not pruned again at once. */
  async function pruneToBudget(): Promise<number> {
    const { maxBytes = 0, usedBytes } = options;
    log.bytesWritten = 0;
    if (maxBytes <= 0 || !usedBytes) return 0;
    let total = 0;
    while (!stopped && usedBytes() > maxBytes * 0.9) {
      const deleted = log.pruneOldest(batchSize);
      if (deleted === 0) break;
      total += deleted;
      await yieldToEventLoop();
    }
    return total;
  }

  const runOnce = () => {
    running ??= prune().finally(() => {
      running = null;
    });
    return running;
  };

  const timer = setInterval(() => {
    runOnce().catch((err: unknown) => gatewayLog.error({ err }, "log retention failed"));
  }, options.intervalMs);
  timer.unref();
  // A flood of output fills the budget faster than the interval: check when a tenth of it was written since.
  const budgetCheck = setInterval(() => {
    if (options.maxBytes && log.bytesWritten > options.maxBytes / 10) {
      runOnce().catch((err: unknown) => gatewayLog.error({ err }, "log retention failed"));
    }
  }, 1000);
  budgetCheck.unref();

  return {
    runOnce,
    stop() {
      stopped = true;
      clearInterval(timer);
      clearInterval(budgetCheck);
    },
  };
}

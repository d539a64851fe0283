import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { log as gatewayLog } from "../core/log.js";
import type { Store } from "./contract.js";

export interface RetentionOptions {
  /** Rows older than this many days go; 0 keeps them regardless of age. */
  retentionDays: number;
  /** At most this many rows stay; 0 means no limit. */
  retentionRows: number;
  intervalMs: number;
  /** The log's byte budget (LOG_MAX_MB in bytes); 0 means none. Pruned to 90% of it, oldest first. */
  maxBytes?: number;
  /** Output bytes written since the last pass (the invocation log writer's counter), reset by each pass. */
  written?: { bytesWritten: number };
  /** Rows deleted per statement; each batch holds the event loop (or the database) briefly. */
  batchSize?: number;
  now?: () => number;
}

export interface Retention {
  /** Prunes until nothing is left to prune; returns how many rows went (0 when another gateway is pruning). */
  runOnce(): Promise<number>;
  stop(): void;
}

/**
 * Prunes the invocation log on an unref'd interval, in bounded batches. One gateway prunes at a
 * time (the store's named lock): on a shared database the others skip their turn.
 */
export function startRetention(store: Store, options: RetentionOptions): Retention {
  const batchSize = options.batchSize ?? 1000;
  const now = options.now ?? Date.now;
  const log = store.invocations;
  let running: Promise<number> | null = null;
  let stopped = false;

  async function prune(): Promise<number> {
    let total = 0;
    for (;;) {
      if (stopped) return total;
      const deleted = await log.pruneBatch({
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

  /** Oldest rows first until the log is back under 90% of its budget, so it is not pruned again at once. */
  async function pruneToBudget(): Promise<number> {
    const maxBytes = options.maxBytes ?? 0;
    if (options.written) options.written.bytesWritten = 0;
    if (maxBytes <= 0) return 0;
    let total = 0;
    while (!stopped && (await log.usedBytes()) > maxBytes * 0.9) {
      const deleted = await log.pruneOldest(batchSize);
      if (deleted === 0) break;
      total += deleted;
      await yieldToEventLoop();
    }
    return total;
  }

  const runOnce = () => {
    running ??= store
      .exclusively("log-retention", prune)
      .then((total) => total ?? 0)
      .finally(() => {
        running = null;
      });
    return running;
  };
  const runInBackground = () => {
    runOnce().catch((err: unknown) => gatewayLog.error({ err }, "log retention failed"));
  };

  const timer = setInterval(runInBackground, options.intervalMs);
  timer.unref();
  // A flood of output fills the budget faster than the interval: check when a tenth of it was written since.
  const budgetCheck = setInterval(() => {
    if (options.maxBytes && options.written && options.written.bytesWritten > options.maxBytes / 10) runInBackground();
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

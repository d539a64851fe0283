import { Worker } from "node:worker_threads";

/** A statement as Drizzle's `toSQL()` gives it. */
export interface ReadQuery {
  sql: string;
  params: unknown[];
}

/** Runs a read-only statement and resolves with its rows as arrays, in the order of the select list. */
export type ReadInBackground = (query: ReadQuery) => Promise<unknown[][]>;

type Reply = { id: number; rows: unknown[][] } | { id: number; error: string };

/**
 * Sends slow reads to a worker thread with its own read-only connection (WAL lets it read while
 * the main connection writes). The worker starts on first use and is replaced if it dies.
 */
export class BackgroundReader {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (rows: unknown[][]) => void; reject: (error: Error) => void }>();

  constructor(private readonly file: string) {}

  readonly read: ReadInBackground = (query) =>
    new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      this.start().postMessage({ id, sql: query.sql, params: query.params });
    });

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL("./read-worker.mjs", import.meta.url), { workerData: { file: this.file } });
    // A pending read must not be what keeps a stopping process alive.
    worker.unref();
    worker.on("message", (reply: Reply) => {
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      if ("error" in reply) waiter.reject(new Error(reply.error));
      else waiter.resolve(reply.rows);
    });
    const failAll = (error: Error) => {
      if (this.worker === worker) this.worker = null;
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
    worker.on("error", failAll);
    worker.on("exit", (code) => failAll(new Error(`the read worker exited (${code})`)));
    this.worker = worker;
    return worker;
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    if (worker) await worker.terminate();
  }
}

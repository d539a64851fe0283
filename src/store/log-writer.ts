import { setTimeout as delay } from "node:timers/promises";
import { type InvocationEnd, type InvocationStart, type StoredEnd, storedEnd } from "../core/invocations.js";
import { log } from "../core/log.js";
import type { StartedRow, Store } from "./contract.js";
import type { Spool, SpooledWrite } from "./spool.js";

/** How long a batch may wait on the database before it goes to the spool instead (it is written there; a late commit is harmless). */
const WRITE_TIMEOUT_MS = 3000;
/** How often a spooling gateway tries the database again. */
const RECONNECT_INTERVAL_MS = 1000;
/** Writes handed back from the spool per database call. */
const REPLAY_BATCH = 500;

export interface LogWriterOptions {
  /** This gateway's node id, written on every row. */
  node: string;
  /** Bytes of stdout and of stderr stored per invocation (LOG_OUTPUT_MAX_BYTES). */
  maxOutputBytes: number;
  /** Where writes wait while the database cannot be reached; null where it cannot go away (SQLite). */
  spool: Spool | null;
  now?: () => number;
}

/** Told how long each write waited until durable (its batch's wait and write), for /metrics. */
export type WriteTimer = (kind: "start" | "finish", seconds: number) => void;

interface Pending<T> {
  item: T;
  done: () => void;
  failed: (error: unknown) => void;
}

/**
 * Writes the invocation log for the invocation path: the starts of one event-loop turn in one
 * multi-row insert, the ends in one update, one batch of each kind at a time (what arrives while
 * one is written goes in the next: a group commit). Each call resolves once its row is durable.
 *
 * While the database cannot be reached, writes go to the spool on the node's disk, in order, and
 * a background loop hands them back in that order once it can: every later write waits in the
 * spool behind them, so a row's end never reaches the database before its start. Both writes are
 * idempotent (a start whose id exists is left alone; an end applies only to a running row), so a
 * write that timed out here but committed anyway is harmless when replayed.
 */
export class InvocationLogWriter {
  private readonly starts = new Batcher<StartedRow>((rows) => this.write(rows.map((row) => ({ kind: "start", row }))));
  private readonly ends = new Batcher<{ id: string; end: StoredEnd }>((ends) =>
    this.write(ends.map(({ id, end }) => ({ kind: "finish", id, end }))),
  );
  private readonly now: () => number;
  /** True while writes go to the spool (the database was unreachable and the spool is not yet handed back). */
  private spooling = false;
  private replaying: Promise<void> | null = null;
  private closed = false;
  /** Output bytes recorded since the counter was last reset: what the byte budget's check looks at. */
  bytesWritten = 0;
  private timer: WriteTimer = () => {};

  constructor(
    private readonly store: Store,
    private readonly options: LogWriterOptions,
  ) {
    this.now = options.now ?? Date.now;
    // Writes left in the spool by an earlier process are handed back first.
    if (options.spool && options.spool.size > 0) this.startSpooling();
  }

  onWriteTimed(timer: WriteTimer): void {
    this.timer = timer;
  }

  /** Writes the `running` row; resolves once it is durable (in the database or the spool), with its start time. */
  async start(row: InvocationStart): Promise<{ startedAt: number }> {
    const startedAt = this.now();
    const began = performance.now();
    await this.starts.add({ ...row, node: this.options.node, startedAt });
    this.timer("start", (performance.now() - began) / 1000);
    return { startedAt };
  }

  /** Records how the invocation ended (output cut to the log's cap); resolves once durable. */
  async finish(id: string, end: InvocationEnd): Promise<StoredEnd> {
    const stored = storedEnd(end, this.options.maxOutputBytes);
    this.bytesWritten += stored.stdout.length + stored.stderr.length;
    const began = performance.now();
    await this.ends.add({ id, end: stored });
    this.timer("finish", (performance.now() - began) / 1000);
    return stored;
  }

  /** Whether a new invocation's row can be kept: false when the database is away and the spool is full. */
  get accepting(): boolean {
    return !(this.spooling && this.options.spool?.full);
  }

  /** What /healthz shows of the log's path to the database. */
  health(): { database: "reachable" | "unreachable"; spooled_writes: number; spool_bytes: number } {
    const spool = this.options.spool;
    return {
      database: this.spooling ? "unreachable" : "reachable",
      spooled_writes: spool?.size ?? 0,
      spool_bytes: spool?.bytes() ?? 0,
    };
  }

  /** Resolves once the spool is handed back to the database (at once when nothing is spooled). */
  async drained(): Promise<void> {
    while (this.replaying) await this.replaying;
  }

  /** Waits for every write handed in so far to be durable. */
  async flush(): Promise<void> {
    await Promise.all([this.starts.idle(), this.ends.idle()]);
  }

  close(): void {
    this.closed = true;
  }

  private async write(writes: SpooledWrite[]): Promise<void> {
    const spool = this.options.spool;
    if (this.spooling && spool) {
      spool.append(writes);
      return;
    }
    try {
      await withTimeout(this.toDatabase(writes), spool ? WRITE_TIMEOUT_MS : null);
    } catch (error) {
      const cause = rootCause(error);
      // Refused (not lost): the caller hears the cause alone, never the statement with other rows' output.
      if (!spool || !(error instanceof WriteTimeout || this.store.unavailable(error))) throw cause;
      log.warn({ err: cause }, `the database is unreachable: log rows go to the spool until it is back (${cause.message})`);
      spool.append(writes);
      this.startSpooling();
    }
  }

  private async toDatabase(writes: SpooledWrite[]): Promise<void> {
    // Consecutive writes of a kind in one call, in order.
    for (let i = 0; i < writes.length; ) {
      const kind = writes[i]!.kind;
      let j = i;
      while (j < writes.length && writes[j]!.kind === kind) j++;
      const run = writes.slice(i, j);
      if (kind === "start") await this.store.invocations.start(run.map((w) => (w as Extract<SpooledWrite, { kind: "start" }>).row));
      else await this.store.invocations.finish(run.map((w) => w as Extract<SpooledWrite, { kind: "finish" }>));
      i = j;
    }
  }

  /** Writes spooled writes one at a time, dropping those the database refuses; false when it went away meanwhile. */
  private async oneByOne(writes: SpooledWrite[]): Promise<boolean> {
    for (const write of writes) {
      try {
        await withTimeout(this.toDatabase([write]), WRITE_TIMEOUT_MS);
      } catch (error) {
        if (error instanceof WriteTimeout || this.store.unavailable(error)) return false;
        const cause = rootCause(error);
        const id = write.kind === "start" ? write.row.id : write.id;
        log.error(
          { err: cause, invocation_id: id },
          `a spooled log write (the ${write.kind} of ${id}) was refused and is dropped: ${cause.message}`,
        );
      }
    }
    return true;
  }

  private startSpooling(): void {
    this.spooling = true;
    this.replaying ??= this.replay().finally(() => {
      this.replaying = null;
    });
  }

  /** Hands the spool back to the database, oldest first, until it is empty; then writes go to the database again. */
  private async replay(): Promise<void> {
    const spool = this.options.spool!;
    while (!this.closed) {
      const { writes, through } = spool.peek(REPLAY_BATCH);
      if (writes.length === 0) {
        // Read and switched in one synchronous step: no write can slip into the spool between the two.
        this.spooling = false;
        log.info("the database is reachable again: the spooled log rows are written");
        return;
      }
      try {
        await withTimeout(this.toDatabase(writes), WRITE_TIMEOUT_MS);
      } catch (error) {
        if (error instanceof WriteTimeout || this.store.unavailable(error)) {
          await delay(RECONNECT_INTERVAL_MS);
          continue;
        }
        // The database answers but refuses something here: each write on its own, and one it
        // refuses is dropped (it could never be stored) rather than hold back every later row.
        if (!(await this.oneByOne(writes))) {
          await delay(RECONNECT_INTERVAL_MS);
          continue;
        }
      }
      // Closed meanwhile (the spool with it): the next process hands these back again, harmlessly.
      if (this.closed) return;
      spool.drop(through);
    }
  }
}

/**
 * The innermost cause of an error: what went wrong (a refused connection), without the statement
 * and parameters a query error wraps it in, which hold the rows' output and must not reach the log.
 */
function rootCause(error: unknown): Error {
  let e = error;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e : new Error(String(e));
}

class WriteTimeout extends Error {
  override name = "WriteTimeout";
}

function withTimeout<T>(work: Promise<T>, ms: number | null): Promise<T> {
  if (ms === null) return work;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WriteTimeout(`no answer from the database within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Collects items added during an event-loop turn and hands them to `write` together, one batch
 * at a time: items that arrive while a batch is written form the next one. A batch that fails is
 * written again item by item, so each caller learns of its own write.
 */
class Batcher<T> {
  private pending: Pending<T>[] = [];
  private running: Promise<void> | null = null;

  constructor(private readonly write: (items: T[]) => Promise<void>) {}

  add(item: T): Promise<void> {
    return new Promise((done, failed) => {
      this.pending.push({ item, done, failed });
      if (this.running === null) this.running = this.drain();
    });
  }

  private async drain(): Promise<void> {
    // One turn of the event loop, so that the writes of this turn go together.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        await this.write(batch.map((p) => p.item));
        for (const p of batch) p.done();
      } catch (error) {
        if (batch.length === 1) batch[0]!.failed(error);
        // One item the database refuses must not cost the others of its batch their writes.
        else for (const p of batch) await this.write([p.item]).then(p.done, p.failed);
      }
    }
    this.running = null;
  }

  async idle(): Promise<void> {
    while (this.running) await this.running;
  }
}

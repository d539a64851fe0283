// The invocation log. Longer than most files: its writes (the `running` row, the batched ends),
// reads (pages by cursor or `after`, one row, stats) and pruning share its prepared statements
// and one invariant they all rely on, that started_at never decreases as seq grows.
import { and, desc, eq, getTableColumns, gt, gte, inArray, isNotNull, lt, type SQL, sql } from "drizzle-orm";
import { type EndStatus, INVOCATION_STATUSES, type InvocationStatus, TIMED_STATUSES } from "../core/statuses.js";
import type { Db } from "./client.js";
import type { ReadInBackground } from "./reader.js";
import { invocations } from "./schema.js";

export type InvocationRow = typeof invocations.$inferSelect;
/** A row as listed: everything but the stdout/stderr bodies. */
export type InvocationSummary = Omit<InvocationRow, "stdout" | "stderr">;

/** What is known when an invocation starts; the row is written with status `running`. */
export interface InvocationStart {
  id: string;
  functionName: string;
  version: number;
  requestBytes: number;
  method: string;
  path: string;
}

export interface InvocationLogOptions {
  /** The wall clock in epoch ms; tests pass their own. */
  now?: () => number;
  /** Where reads that may touch many rows run (stats); see OpenedDatabase. */
  readInBackground: ReadInBackground;
  /** Bytes of stdout and of stderr stored per invocation (LOG_OUTPUT_MAX_BYTES); the rest is flagged truncated. */
  maxOutputBytes?: number;
}

/** How an invocation ended. */
export interface InvocationEnd {
  status: EndStatus;
  durationMs: number | null;
  exitCode: number | null;
  signal: string | null;
  httpStatus: number | null;
  responseBytes: number | null;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  error: string | null;
  blockedSyscall: string | null;
}

export interface InvocationFilter {
  functionName?: string;
  status?: InvocationStatus;
  /** Inclusive lower bound on started_at (epoch ms). */
  since?: number;
  /** Exclusive upper bound on started_at (epoch ms). */
  until?: number;
  /** Only rows older than this key (the cursor). */
  beforeSeq?: number;
  /** Instead: only rows that finished after this finish key, oldest first (`?after=`). */
  afterFinishedSeq?: number;
  limit: number;
}

export interface InvocationPage {
  items: InvocationSummary[];
  /** Key of the last item when more rows follow, else null. */
  nextBeforeSeq: number | null;
  /** With afterFinishedSeq: whether more rows follow the last item already. */
  more: boolean;
}

export interface InvocationStats {
  count: number;
  byStatus: Record<InvocationStatus, number>;
  durationMs: { p50: number | null; p95: number | null; p99: number | null; max: number | null; mean: number | null };
}

const { stdout: _stdout, stderr: _stderr, ...summaryColumns } = getTableColumns(invocations);

/** Message stored on rows that were still running when the gateway stopped. */
export const INTERRUPTED_MESSAGE = "the gateway stopped while this invocation ran";

/**
 * The invocation log. `start` and `finish` are on every invocation's path, so they use
 * prepared statements; everything else is built per call. `start` writes at once (a `running`
 * row is durable before the run starts); `finishSoon` writes the ends of one event-loop turn
 * together in one transaction right after it (one commit instead of one per invocation).
 */
export class InvocationLog {
  private readonly insertRunning;
  private readonly updateEnd;
  private readonly now: () => number;
  private readonly maxOutputBytes: number;
  private readonly readInBackground: ReadInBackground;
  /** Ends recorded this turn by `finishSoon`, not yet written. */
  private pendingEnds: {
    seq: number;
    end: InvocationEnd;
    result?: ReturnType<InvocationLog["finish"]>;
    written: (result: ReturnType<InvocationLog["finish"]>) => void;
    failed: (error: unknown) => void;
  }[] = [];
  /** The newest started_at handed out; started_at never goes below it (see `nextStartedAt`). */
  private lastStartedAt: number;

  constructor(
    private readonly db: Db,
    options: InvocationLogOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.maxOutputBytes = options.maxOutputBytes ?? Number.POSITIVE_INFINITY;
    this.readInBackground = options.readInBackground;
    this.lastStartedAt =
      db
        .select({ max: sql<number | null>`max(${invocations.startedAt})` })
        .from(invocations)
        .get()?.max ?? 0;
    const p = sql.placeholder;
    this.insertRunning = db
      .insert(invocations)
      .values({
        id: p("id"),
        functionName: p("functionName"),
        version: p("version"),
        startedAt: p("startedAt"),
        status: "running",
        requestBytes: p("requestBytes"),
        method: p("method"),
        path: p("path"),
      })
      .returning({ seq: invocations.seq })
      .prepare();
    this.updateEnd = db
      .update(invocations)
      .set({
        status: sql`${p("status")}`,
        durationMs: sql`${p("durationMs")}`,
        exitCode: sql`${p("exitCode")}`,
        signal: sql`${p("signal")}`,
        httpStatus: sql`${p("httpStatus")}`,
        responseBytes: sql`${p("responseBytes")}`,
        stdout: sql`${p("stdout")}`,
        stderr: sql`${p("stderr")}`,
        stdoutTruncated: sql`${p("stdoutTruncated")}`,
        stderrTruncated: sql`${p("stderrTruncated")}`,
        error: sql`${p("error")}`,
        blockedSyscall: sql`${p("blockedSyscall")}`,
        finishedSeq: sql`(select coalesce(max(${invocations.finishedSeq}), 0) + 1 from ${invocations})`,
      })
      // A row ends once: when shutdown or a restart has marked it `interrupted`, a late end changes nothing.
      .where(and(eq(invocations.seq, p("seq")), eq(invocations.status, "running")))
      .returning({ finishedSeq: invocations.finishedSeq })
      .prepare();
  }

  /**
   * The wall clock, held at its last value if it steps backwards: started_at then never
   * decreases as seq grows, which is what lets `list` turn since/until into a key range.
   */
  private nextStartedAt(): number {
    this.lastStartedAt = Math.max(this.now(), this.lastStartedAt);
    return this.lastStartedAt;
  }

  /** Writes the row with status `running`, before the runner starts; returns its key and start time. */
  start(row: InvocationStart): { seq: number; startedAt: number } {
    const startedAt = this.nextStartedAt();
    // all(), not get(): get() stops at the first row and resets the statement, and the commit's
    // error (SQLITE_FULL on a full disk) is lost there; all() steps to the end, where it is thrown.
    const [inserted] = this.insertRunning.all({ ...row, startedAt });
    if (!inserted) throw new Error("invocation insert returned no row");
    return { seq: inserted.seq, startedAt };
  }

  /** Records how the invocation ended (only if the row is still `running`); returns the truncation flags and finish key as stored. */
  finish(seq: number, end: InvocationEnd): { stdoutTruncated: boolean; stderrTruncated: boolean; finishedSeq: number | null } {
    const stdout = clip(end.stdout, this.maxOutputBytes);
    const stderr = clip(end.stderr, this.maxOutputBytes);
    this.bytesWritten += stdout.text.length + stderr.text.length;
    const flags = { stdoutTruncated: end.stdoutTruncated || stdout.clipped, stderrTruncated: end.stderrTruncated || stderr.clipped };
    const ended = this.updateEnd.get({
      seq,
      ...end,
      stdout: stdout.text,
      stderr: stderr.text,
      // SQLite has no boolean; the prepared SET bypasses the column's mapping.
      stdoutTruncated: flags.stdoutTruncated ? 1 : 0,
      stderrTruncated: flags.stderrTruncated ? 1 : 0,
    });
    return { ...flags, finishedSeq: ended?.finishedSeq ?? null };
  }

  /** Output bytes recorded since the counter was last reset: what the byte budget's check looks at. */
  bytesWritten = 0;

  /** Like `finish`, written with the other ends of this event-loop turn in one transaction; resolves once written. */
  finishSoon(seq: number, end: InvocationEnd): Promise<ReturnType<InvocationLog["finish"]>> {
    return new Promise((written, failed) => {
      if (this.pendingEnds.length === 0) setImmediate(() => this.flush());
      this.pendingEnds.push({ seq, end, written, failed });
    });
  }

  /** Writes the ends `finishSoon` recorded so far. */
  flush(): void {
    const pending = this.pendingEnds;
    if (pending.length === 0) return;
    this.pendingEnds = [];
    try {
      this.db.transaction(() => {
        for (const item of pending) item.result = this.finish(item.seq, item.end);
      });
    } catch (error) {
      for (const { failed } of pending) failed(error);
      return;
    }
    for (const { written, result } of pending) written(result!);
  }

  /** Turns rows left `running` by a previous process into `interrupted`; returns how many. */
  markInterrupted(): number {
    this.flush(); // ends already known are not interruptions
    return (
      this.db
        .update(invocations)
        // One scalar subquery, evaluated once: the rows end after every earlier one, in start order.
        .set({
          status: "interrupted",
          error: INTERRUPTED_MESSAGE,
          finishedSeq: sql`(select coalesce(max(${invocations.finishedSeq}), 0) from ${invocations}) + ${invocations.seq}`,
        })
        .where(eq(invocations.status, "running"))
        .run().changes
    );
  }

  /** The finish key of invocation `id`: undefined if there is no such row, null while it runs. */
  finishedSeqOf(id: string): number | null | undefined {
    const row = this.db.select({ finishedSeq: invocations.finishedSeq }).from(invocations).where(eq(invocations.id, id)).get();
    return row?.finishedSeq;
  }

  get(id: string): InvocationRow | undefined {
    return this.db.select().from(invocations).where(eq(invocations.id, id)).get();
  }

  /** The key of the first row that started at or after `time`, or null if none did. */
  private firstSeqAtOrAfter(time: number): number | null {
    return (
      this.db
        .select({ seq: invocations.seq })
        .from(invocations)
        .where(gte(invocations.startedAt, time))
        .orderBy(invocations.startedAt, invocations.seq)
        .limit(1)
        .get()?.seq ?? null
    );
  }

  /**
   * Newest first, keyset-paginated on `seq`, so pages stay stable while new rows arrive.
   * since/until become a key range (started_at grows with seq), so a window deep in the past
   * is a range scan of the primary key instead of a scan of everything newer.
   */
  list(filter: InvocationFilter): InvocationPage {
    const conditions: SQL[] = [];
    if (filter.functionName !== undefined) conditions.push(eq(invocations.functionName, filter.functionName));
    if (filter.status !== undefined) conditions.push(eq(invocations.status, filter.status));
    if (filter.since !== undefined) {
      const first = this.firstSeqAtOrAfter(filter.since);
      if (first === null) return { items: [], nextBeforeSeq: null, more: false };
      conditions.push(gte(invocations.seq, first));
    }
    if (filter.until !== undefined) {
      const end = this.firstSeqAtOrAfter(filter.until);
      if (end !== null) conditions.push(lt(invocations.seq, end));
    }
    if (filter.beforeSeq !== undefined) conditions.push(lt(invocations.seq, filter.beforeSeq));
    const following = filter.afterFinishedSeq !== undefined;
    if (following) conditions.push(gt(invocations.finishedSeq, filter.afterFinishedSeq ?? 0));
    const rows = this.db
      .select(summaryColumns)
      .from(invocations)
      .where(and(...conditions))
      .orderBy(following ? invocations.finishedSeq : desc(invocations.seq))
      .limit(filter.limit + 1)
      .all();
    const items = rows.slice(0, filter.limit);
    const more = rows.length > filter.limit;
    return { items, nextBeforeSeq: more && !following ? (items.at(-1)?.seq ?? null) : null, more };
  }

  /** Whether the log has ever seen this function (stats of a deleted function stay available). */
  hasFunction(functionName: string): boolean {
    return (
      this.db.select({ one: sql<number>`1` }).from(invocations).where(eq(invocations.functionName, functionName)).limit(1).get() !==
      undefined
    );
  }

  /**
   * Counts by status and nearest-rank percentiles of duration over [since, until), computed in
   * SQL (the rows never come into JS) and off the event loop: sorting a long window's durations
   * takes about 1-3 µs a row (see bench/log-write.ts).
   */
  async stats(functionName: string, since: number, until: number): Promise<InvocationStats> {
    const inWindow = and(eq(invocations.functionName, functionName), gte(invocations.startedAt, since), lt(invocations.startedAt, until));
    const countsQuery = this.db
      .select({ status: invocations.status, count: sql<number>`count(*)` })
      .from(invocations)
      .where(inWindow)
      .groupBy(invocations.status);

    // Percentiles over the runs (not rejected, interrupted or running rows), nearest rank:
    // the value at rank ceil(p * n) in ascending order, in integer arithmetic.
    const ran = and(inWindow, inArray(invocations.status, TIMED_STATUSES), isNotNull(invocations.durationMs));
    const n = sql`(select count(*) from ${invocations} where ${ran})`;
    const ranked = this.db.$with("ranked").as(
      this.db
        .select({
          d: sql<number>`${invocations.durationMs}`.as("d"),
          rn: sql<number>`row_number() over (order by ${invocations.durationMs})`.as("rn"),
        })
        .from(invocations)
        .where(ran),
    );
    // p is inlined: a bound JS number is a REAL in SQLite, and the rank needs integer division.
    const at = (p: number) =>
      sql`min(case when ${ranked.rn} = max(1, (${n} * ${sql.raw(String(Math.trunc(p)))} + 99) / 100) then ${ranked.d} end)`;
    const durationsQuery = this.db
      .with(ranked)
      .select({ p50: at(50), p95: at(95), p99: at(99), max: sql`max(${ranked.d})`, mean: sql`avg(${ranked.d})` })
      .from(ranked);

    const [counts, durations] = await Promise.all([
      this.readInBackground(countsQuery.toSQL()),
      this.readInBackground(durationsQuery.toSQL()),
    ]);
    const byStatus = Object.fromEntries(INVOCATION_STATUSES.map((s) => [s, 0])) as Record<InvocationStatus, number>;
    let count = 0;
    for (const [status, rows] of counts as [InvocationStatus, number][]) {
      byStatus[status] = rows;
      count += rows;
    }
    const [p50 = null, p95 = null, p99 = null, max = null, mean = null] = (durations[0] ?? []) as (number | null)[];
    return { count, byStatus, durationMs: { p50, p95, p99, max, mean } };
  }

  /**
   * Deletes one bounded batch of rows that are older than `olderThan` (epoch ms) or beyond the
   * newest `keepRows`; returns how many went. Call until it returns 0.
   * `keepRows` counts keys, not rows: keys are AUTOINCREMENT and only the oldest rows are ever
   * deleted, so max(seq) - keepRows is exact unless gaps exist, and then it keeps fewer, never more.
   */
  pruneBatch(options: { olderThan: number | null; keepRows: number | null; batchSize: number }): number {
    const { olderThan, keepRows, batchSize } = options;
    let deleted = 0;
    if (olderThan !== null) {
      const old = this.db
        .select({ seq: invocations.seq })
        .from(invocations)
        .where(lt(invocations.startedAt, olderThan))
        .orderBy(invocations.startedAt)
        .limit(batchSize);
      deleted += this.db.delete(invocations).where(inArray(invocations.seq, old)).run().changes;
    }
    if (keepRows !== null && deleted < batchSize) {
      const max = this.db
        .select({ max: sql<number | null>`max(${invocations.seq})` })
        .from(invocations)
        .get()?.max;
      if (max != null) {
        const excess = this.db
          .select({ seq: invocations.seq })
          .from(invocations)
          .where(lt(invocations.seq, max - keepRows + 1))
          .orderBy(invocations.seq)
          .limit(batchSize - deleted);
        deleted += this.db.delete(invocations).where(inArray(invocations.seq, excess)).run().changes;
      }
    }
    return deleted;
  }

  /** Deletes the oldest `batchSize` rows (the byte budget's pruning); returns how many went. */
  pruneOldest(batchSize: number): number {
    const oldest = this.db.select({ seq: invocations.seq }).from(invocations).orderBy(invocations.seq).limit(batchSize);
    return this.db.delete(invocations).where(inArray(invocations.seq, oldest)).run().changes;
  }
}

/** The first `max` bytes of `text` as stored (a character cut in two becomes U+FFFD). */
function clip(text: string, max: number): { text: string; clipped: boolean } {
  if (text.length <= max / 3 || Buffer.byteLength(text) <= max) return { text, clipped: false };
  return { text: Buffer.from(text).subarray(0, max).toString("utf8"), clipped: true };
}

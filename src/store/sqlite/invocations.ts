// The invocation log in SQLite. Longer than most files: its writes (the `running` rows, the
// ends), reads (pages by cursor or `after`, one row, stats) and pruning share its prepared
// statements and one invariant they all rely on, that started_at never decreases as seq grows.
import { and, desc, eq, getTableColumns, gt, gte, inArray, isNotNull, lt, type SQL, sql } from "drizzle-orm";
import type { InvocationFilter, InvocationPage, InvocationRow, InvocationStats, StoredEnd } from "../../core/invocations.js";
import { INVOCATION_STATUSES, type InvocationStatus, TIMED_STATUSES } from "../../core/statuses.js";
import type { InvocationRecords, StartedRow } from "../contract.js";
import type { Same } from "../rows.js";
import type { Db } from "./client.js";
import type { ReadInBackground } from "./reader.js";
import { invocations } from "./schema.js";

/** Each engine's row is the log's vocabulary, field for field. */
const rowsMatch: Same<typeof invocations.$inferSelect, InvocationRow> = true;
void rowsMatch;

const { stdout: _stdout, stderr: _stderr, ...summaryColumns } = getTableColumns(invocations);

export interface SqliteLogOptions {
  /** Where reads that may touch many rows run (stats); see reader.ts. */
  readInBackground: ReadInBackground;
  /** Bytes of the database's pages in use. */
  usedBytes: () => number;
}

/**
 * The log's statements. `start` and `finish` are on every invocation's path, so they use
 * prepared statements; everything else is built per call.
 */
export class SqliteInvocations implements InvocationRecords {
  private readonly insertRunning;
  private readonly updateEnd;
  private readonly readInBackground: ReadInBackground;
  /** The newest started_at written; started_at never goes below it (see `start`). */
  private lastStartedAt: number;

  constructor(
    private readonly db: Db,
    private readonly options: SqliteLogOptions,
  ) {
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
        node: p("node"),
        trigger: p("trigger"),
        attempt: p("attempt"),
        jobId: p("jobId"),
        startedAt: p("startedAt"),
        status: "running",
        requestBytes: p("requestBytes"),
        method: p("method"),
        path: p("path"),
      })
      .onConflictDoNothing()
      .returning({ seq: invocations.seq })
      .prepare();
    this.updateEnd = db
      .update(invocations)
      .set({
        status: sql`${p("status")}`,
        durationMs: sql`${p("durationMs")}`,
        firstByteMs: sql`${p("firstByteMs")}`,
        exitCode: sql`${p("exitCode")}`,
        signal: sql`${p("signal")}`,
        httpStatus: sql`${p("httpStatus")}`,
        responseBytes: sql`${p("responseBytes")}`,
        stdout: sql`${p("stdout")}`,
        stderr: sql`${p("stderr")}`,
        stdoutTruncated: sql`${p("stdoutTruncated")}`,
        stderrTruncated: sql`${p("stderrTruncated")}`,
        stdoutDroppedBytes: sql`${p("stdoutDroppedBytes")}`,
        stderrDroppedBytes: sql`${p("stderrDroppedBytes")}`,
        error: sql`${p("error")}`,
        blockedSyscall: sql`${p("blockedSyscall")}`,
        deniedSyscalls: sql`${p("deniedSyscalls")}`,
        finishedSeq: sql`(select coalesce(max(${invocations.finishedSeq}), 0) + 1 from ${invocations})`,
      })
      // A row ends once: when shutdown or a restart has marked it `interrupted`, a late end changes nothing.
      .where(and(eq(invocations.id, p("id")), eq(invocations.status, "running")))
      .returning({ finishedSeq: invocations.finishedSeq })
      .prepare();
  }

  /**
   * Rows in one transaction. started_at is held at its last value if the clock steps backwards:
   * it then never decreases as seq grows, which is what lets `list` turn since/until into a key range.
   */
  async start(rows: StartedRow[]): Promise<{ id: string; seq: number; startedAt: number }[]> {
    return this.db.transaction(() => {
      const written: { id: string; seq: number; startedAt: number }[] = [];
      for (const row of rows) {
        const startedAt = Math.max(row.startedAt, this.lastStartedAt);
        // all(), not get(): get() stops at the first row and resets the statement, and the commit's
        // error (SQLITE_FULL on a full disk) is lost there; all() steps to the end, where it is thrown.
        const [inserted] = this.insertRunning.all({
          ...row,
          trigger: row.trigger ?? "http",
          attempt: row.attempt ?? 1,
          jobId: row.jobId ?? null,
          startedAt,
        });
        if (!inserted) continue;
        this.lastStartedAt = startedAt;
        written.push({ id: row.id, seq: inserted.seq, startedAt });
      }
      return written;
    });
  }

  async finish(ends: { id: string; end: StoredEnd }[]): Promise<(number | null)[]> {
    return this.db.transaction(() =>
      ends.map(({ id, end }) => {
        const [ended] = this.updateEnd.all({
          id,
          ...end,
          firstByteMs: end.firstByteMs ?? null,
          deniedSyscalls: end.deniedSyscalls ? JSON.stringify(end.deniedSyscalls) : null,
          // SQLite has no boolean; the prepared SET bypasses the column's mapping.
          stdoutTruncated: end.stdoutTruncated ? 1 : 0,
          stderrTruncated: end.stderrTruncated ? 1 : 0,
        });
        return ended?.finishedSeq ?? null;
      }),
    );
  }

  async markInterrupted(node: string, message: string): Promise<number> {
    // "": rows written before gateways had ids, by this data dir's one gateway.
    return this.interruptRunning([node, ""], message);
  }

  /** Ends the `running` rows of these gateways as `interrupted` (synchronous: callable inside a transaction). */
  interruptRunning(nodeIds: string[], message: string): number {
    return (
      this.db
        .update(invocations)
        // One scalar subquery, evaluated once: the rows end after every earlier one, in start order.
        .set({
          status: "interrupted",
          error: message,
          finishedSeq: sql`(select coalesce(max(${invocations.finishedSeq}), 0) from ${invocations}) + ${invocations.seq}`,
        })
        .where(and(eq(invocations.status, "running"), inArray(invocations.node, nodeIds)))
        .run().changes
    );
  }

  async lastFinishedSeq(): Promise<number> {
    return (
      this.db
        .select({ max: sql<number | null>`max(${invocations.finishedSeq})` })
        .from(invocations)
        .get()?.max ?? 0
    );
  }

  async finishedSeqOf(id: string): Promise<number | null | undefined> {
    const row = this.db.select({ finishedSeq: invocations.finishedSeq }).from(invocations).where(eq(invocations.id, id)).get();
    return row?.finishedSeq;
  }

  async get(id: string): Promise<InvocationRow | undefined> {
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
  async list(filter: InvocationFilter): Promise<InvocationPage> {
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
    if (filter.jobId !== undefined) conditions.push(eq(invocations.jobId, filter.jobId));
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
  async hasFunction(functionName: string): Promise<boolean> {
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
  async pruneBatch(options: { olderThan: number | null; keepRows: number | null; batchSize: number }): Promise<number> {
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
  async pruneOldest(batchSize: number): Promise<number> {
    const oldest = this.db.select({ seq: invocations.seq }).from(invocations).orderBy(invocations.seq).limit(batchSize);
    return this.db.delete(invocations).where(inArray(invocations.seq, oldest)).run().changes;
  }

  async usedBytes(): Promise<number> {
    return this.options.usedBytes();
  }
}

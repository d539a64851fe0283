// The invocation log in PostgreSQL. Longer than most files: its writes (the `running` rows in one
// multi-row insert, the ends in one update under the finish-order lock), reads, stats and pruning
// share one table and the byte count LOG_MAX_MB bounds.
import { and, desc, eq, getTableColumns, gt, gte, inArray, isNotNull, lt, type SQL, sql } from "drizzle-orm";
import type { InvocationFilter, InvocationPage, InvocationRow, InvocationStats, StoredEnd } from "../../core/invocations.js";
import { INVOCATION_STATUSES, type InvocationStatus, TIMED_STATUSES } from "../../core/statuses.js";
import type { InvocationRecords, StartedRow } from "../contract.js";
import { type Db, LOCKS, type Tx, transaction } from "./client.js";
import { finishOrder, invocations, logUsage } from "./schema.js";

/** Each engine's row is the log's vocabulary, field for field. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const rowsMatch: Same<typeof invocations.$inferSelect, InvocationRow> = true;
void rowsMatch;

const { stdout: _stdout, stderr: _stderr, ...summaryColumns } = getTableColumns(invocations);

/** What a row costs besides its output, in the log's byte count (its other columns and indexes, roughly). */
export const ROW_OVERHEAD_BYTES = 400;

/** The next place in the finish order. */
const nextPlace = sql.raw(`nextval('${finishOrder.seqName}')`);

/** A row's size in the byte count, as SQL over the table's columns. */
const rowBytes = sql`(octet_length(${invocations.stdout}) + octet_length(${invocations.stderr}) + ${ROW_OVERHEAD_BYTES})`;

export class PostgresInvocations implements InvocationRecords {
  constructor(private readonly db: Db) {}

  async start(rows: StartedRow[]): Promise<{ id: string; seq: number; startedAt: number }[]> {
    if (rows.length === 0) return [];
    return this.db
      .insert(invocations)
      .values(
        rows.map((row) => ({
          id: row.id,
          functionName: row.functionName,
          version: row.version,
          node: row.node,
          trigger: row.trigger ?? "http",
          attempt: row.attempt ?? 1,
          jobId: row.jobId ?? null,
          startedAt: row.startedAt,
          status: "running" as const,
          requestBytes: row.requestBytes,
          method: row.method,
          path: row.path,
        })),
      )
      .onConflictDoNothing({ target: invocations.id })
      .returning({ id: invocations.id, seq: invocations.seq, startedAt: invocations.startedAt });
  }

  /** Takes the finish-order lock for the rest of the transaction: places are then handed out in commit order. */
  private async lockFinishOrder(tx: Tx): Promise<void> {
    await tx.execute(sql`select pg_advisory_xact_lock(${LOCKS.finishOrder}::bigint)`);
  }

  async finish(ends: { id: string; end: StoredEnd }[]): Promise<(number | null)[]> {
    if (ends.length === 0) return [];
    const values = sql.join(
      ends.map(
        ({ id, end }, ord) =>
          sql`(${ord}::int, ${id}::text, ${end.status}::text, ${end.durationMs}::float8, ${end.firstByteMs ?? null}::float8, ${end.exitCode}::int,
               ${end.signal}::text, ${end.httpStatus}::int, ${end.responseBytes}::bigint, ${end.stdout}::text, ${end.stderr}::text,
               ${end.stdoutTruncated}::boolean, ${end.stderrTruncated}::boolean, ${end.stdoutDroppedBytes}::bigint,
               ${end.stderrDroppedBytes}::bigint, ${end.error}::text, ${end.blockedSyscall}::text,
               ${end.deniedSyscalls ? JSON.stringify(end.deniedSyscalls) : null}::jsonb)`,
      ),
      sql`, `,
    );
    // One statement, one round trip, its own transaction: the finish-order lock is taken first (the
    // numbered rows join it, and the sort reads every input before the first place is drawn), places
    // are drawn in the order given (a materialized CTE evaluated once, in its ORDER BY's order),
    // and the byte count moves with the rows. The lock is held until the statement commits.
    const { rows: written } = await this.db.execute<{ id: string; finished_seq: string }>(sql`
      with held as (select pg_advisory_xact_lock(${LOCKS.finishOrder}::bigint)),
      e as materialized (
        select v.*, ${nextPlace} as place from (
          select v.* from (values ${values}) as v(ord, id, status, duration_ms, first_byte_ms, exit_code, signal, http_status,
            response_bytes, stdout, stderr, stdout_truncated, stderr_truncated, stdout_dropped_bytes, stderr_dropped_bytes, error,
            blocked_syscall, denied_syscalls)
          join ${invocations} on ${invocations.id} = v.id and ${invocations.status} = 'running'
          cross join held
          order by v.ord
        ) as v
      ),
      ended as (
        update ${invocations} set
          status = e.status, duration_ms = e.duration_ms, first_byte_ms = e.first_byte_ms, exit_code = e.exit_code,
          signal = e.signal, http_status = e.http_status, response_bytes = e.response_bytes, stdout = e.stdout,
          stderr = e.stderr, stdout_truncated = e.stdout_truncated, stderr_truncated = e.stderr_truncated,
          stdout_dropped_bytes = e.stdout_dropped_bytes, stderr_dropped_bytes = e.stderr_dropped_bytes, error = e.error,
          blocked_syscall = e.blocked_syscall, denied_syscalls = e.denied_syscalls, finished_seq = e.place
        from e
        where ${invocations.id} = e.id and ${invocations.status} = 'running'
        returning ${invocations.id} as id, ${invocations.finishedSeq} as finished_seq, ${rowBytes} as bytes
      ),
      counted as (
        update ${logUsage} set bytes = greatest(0, ${logUsage.bytes} + (select coalesce(sum(bytes), 0) from ended))
        where ${logUsage.id} = 1 and exists (select 1 from ended)
      )
      select id, finished_seq from ended`);
    const places = new Map(written.map((row) => [row.id, Number(row.finished_seq)]));
    return ends.map(({ id }) => places.get(id) ?? null);
  }

  private async countBytes(tx: Tx, bytes: number): Promise<void> {
    if (bytes !== 0) await tx.update(logUsage).set({ bytes: sql`greatest(0, ${logUsage.bytes} + ${bytes})` });
  }

  async markInterrupted(node: string, message: string): Promise<number> {
    return transaction(this.db, (tx) => this.interruptRunning(tx, node, message));
  }

  /** Ends gateway `node`'s `running` rows as `interrupted`, inside `tx`. */
  async interruptRunning(tx: Tx, node: string, message: string): Promise<number> {
    await this.lockFinishOrder(tx);
    // In start order, as on SQLite: numbered once, sorted by key, in a materialized CTE (see `finish`).
    const { rows: ended } = await tx.execute<{ bytes: string }>(sql`
      with placed as materialized (
        select running.seq, ${nextPlace} as place from (
          select ${invocations.seq} as seq from ${invocations}
          where ${invocations.status} = 'running' and ${invocations.node} = ${node}
          order by ${invocations.seq}
        ) as running
      )
      update ${invocations} set status = 'interrupted', error = ${message}, finished_seq = placed.place
      from placed
      where ${invocations.seq} = placed.seq and ${invocations.status} = 'running'
      returning ${rowBytes} as bytes`);
    await this.countBytes(
      tx,
      ended.reduce((sum, row) => sum + Number(row.bytes), 0),
    );
    return ended.length;
  }

  async lastFinishedSeq(): Promise<number> {
    const [row] = await this.db.select({ max: sql<string | null>`max(${invocations.finishedSeq})` }).from(invocations);
    return Number(row?.max ?? 0);
  }

  async finishedSeqOf(id: string): Promise<number | null | undefined> {
    const [row] = await this.db.select({ finishedSeq: invocations.finishedSeq }).from(invocations).where(eq(invocations.id, id));
    return row?.finishedSeq;
  }

  async get(id: string): Promise<InvocationRow | undefined> {
    const [row] = await this.db.select().from(invocations).where(eq(invocations.id, id));
    return row;
  }

  async list(filter: InvocationFilter): Promise<InvocationPage> {
    const conditions: SQL[] = [];
    if (filter.functionName !== undefined) conditions.push(eq(invocations.functionName, filter.functionName));
    if (filter.status !== undefined) conditions.push(eq(invocations.status, filter.status));
    if (filter.since !== undefined) conditions.push(gte(invocations.startedAt, filter.since));
    if (filter.until !== undefined) conditions.push(lt(invocations.startedAt, filter.until));
    if (filter.beforeSeq !== undefined) conditions.push(lt(invocations.seq, filter.beforeSeq));
    if (filter.jobId !== undefined) conditions.push(eq(invocations.jobId, filter.jobId));
    const following = filter.afterFinishedSeq !== undefined;
    if (following) conditions.push(gt(invocations.finishedSeq, filter.afterFinishedSeq ?? 0));
    const rows = await this.db
      .select(summaryColumns)
      .from(invocations)
      .where(and(...conditions))
      .orderBy(following ? invocations.finishedSeq : desc(invocations.seq))
      .limit(filter.limit + 1);
    const items = rows.slice(0, filter.limit);
    const more = rows.length > filter.limit;
    return { items, nextBeforeSeq: more && !following ? (items.at(-1)?.seq ?? null) : null, more };
  }

  async hasFunction(functionName: string): Promise<boolean> {
    const rows = await this.db.select({ one: sql<number>`1` }).from(invocations).where(eq(invocations.functionName, functionName)).limit(1);
    return rows.length > 0;
  }

  /** Nearest-rank percentiles: percentile_disc(p) is the first value whose cumulative share reaches p, the value at rank ceil(p * n). */
  async stats(functionName: string, since: number, until: number): Promise<InvocationStats> {
    const inWindow = and(eq(invocations.functionName, functionName), gte(invocations.startedAt, since), lt(invocations.startedAt, until));
    const ran = and(inWindow, inArray(invocations.status, TIMED_STATUSES), isNotNull(invocations.durationMs));
    const at = (p: number) => sql<number | null>`percentile_disc(${p}::float8) within group (order by ${invocations.durationMs})`;
    const [counts, [durations]] = await Promise.all([
      this.db
        .select({ status: invocations.status, count: sql<number>`count(*)::int` })
        .from(invocations)
        .where(inWindow)
        .groupBy(invocations.status),
      this.db
        .select({
          p50: at(0.5),
          p95: at(0.95),
          p99: at(0.99),
          max: sql<number | null>`max(${invocations.durationMs})`,
          mean: sql<number | null>`avg(${invocations.durationMs})`,
        })
        .from(invocations)
        .where(ran),
    ]);
    const byStatus = Object.fromEntries(INVOCATION_STATUSES.map((s) => [s, 0])) as Record<InvocationStatus, number>;
    let count = 0;
    for (const row of counts) {
      byStatus[row.status] = row.count;
      count += row.count;
    }
    const number = (value: unknown) => (value === null || value === undefined ? null : Number(value));
    return {
      count,
      byStatus,
      durationMs: {
        p50: number(durations?.p50),
        p95: number(durations?.p95),
        p99: number(durations?.p99),
        max: number(durations?.max),
        mean: number(durations?.mean),
      },
    };
  }

  /** Deletes the rows `victims` selects, taking their bytes off the count; returns how many went. */
  private async deleteRows(victims: SQL): Promise<number> {
    return transaction(this.db, async (tx) => {
      const { rows } = await tx.execute<{ bytes: string | null }>(sql`
        delete from ${invocations} where ${invocations.seq} in (${victims})
        returning case when ${invocations.status} <> 'running' then ${rowBytes} else 0 end as bytes`);
      await this.countBytes(tx, -rows.reduce((sum, row) => sum + Number(row.bytes ?? 0), 0));
      return rows.length;
    });
  }

  async pruneBatch(options: { olderThan: number | null; keepRows: number | null; batchSize: number }): Promise<number> {
    const { olderThan, keepRows, batchSize } = options;
    let deleted = 0;
    if (olderThan !== null) {
      deleted += await this.deleteRows(
        sql`select ${invocations.seq} from ${invocations} where ${invocations.startedAt} < ${olderThan} order by ${invocations.startedAt} limit ${batchSize}`,
      );
    }
    if (keepRows !== null && deleted < batchSize) {
      deleted += await this.deleteRows(
        sql`select ${invocations.seq} from ${invocations} order by ${invocations.seq} desc offset ${keepRows} limit ${batchSize - deleted}`,
      );
    }
    return deleted;
  }

  async pruneOldest(batchSize: number): Promise<number> {
    return this.deleteRows(sql`select ${invocations.seq} from ${invocations} order by ${invocations.seq} limit ${batchSize}`);
  }

  async usedBytes(): Promise<number> {
    const [row] = await this.db.select({ bytes: logUsage.bytes }).from(logUsage);
    return row?.bytes ?? 0;
  }
}

// The invocation log in PostgreSQL. Longer than most files: its writes (the `running` rows in one
// multi-row insert, the ends in one update under the finish-order lock), reads, stats and pruning
// share one table and the byte count LOG_MAX_MB bounds.
import { and, desc, eq, getTableColumns, gt, gte, inArray, isNotNull, lt, type SQL, sql } from "drizzle-orm";
import type { InvocationFilter, InvocationPage, InvocationRow, InvocationStats, StoredEnd } from "../../core/invocations.js";
import { INVOCATION_STATUSES, type InvocationStatus, TIMED_STATUSES } from "../../core/statuses.js";
import type { InvocationRecords, StartedRow } from "../contract.js";
import type { Same } from "../rows.js";
import { type Db, LOCKS, prepared, type Tx, transaction } from "./client.js";
import { finishOrder, invocations, logUsage } from "./schema.js";

/** Each engine's row is the log's vocabulary, field for field. */
const rowsMatch: Same<typeof invocations.$inferSelect, InvocationRow> = true;
void rowsMatch;

const { stdout: _stdout, stderr: _stderr, ...summaryColumns } = getTableColumns(invocations);

/** What a row costs besides its output, in the log's byte count (its other columns and indexes, roughly). */
export const ROW_OVERHEAD_BYTES = 400;

/** The next place in the finish order. */
const nextPlace = sql.raw(`nextval('${finishOrder.seqName}')`);

/** A row's size in the byte count, as SQL over the table's columns. */
const ROW_BYTES_SQL = `octet_length(invocations.stdout) + octet_length(invocations.stderr) + ${ROW_OVERHEAD_BYTES}`;

/** The `running` rows of a batch, one array per column. */
const START = `
  insert into invocations (id, function_name, version, node, trigger, attempt, job_id, started_at, status, request_bytes, method, path)
  select r.id, r.function_name, r.version, r.node, r.trigger, r.attempt, r.job_id, r.started_at, 'running', r.request_bytes, r.method, r.path
  from unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::int[], $7::text[], $8::bigint[], $9::int[], $10::text[], $11::text[])
    as r(id, function_name, version, node, trigger, attempt, job_id, started_at, request_bytes, method, path)
  on conflict (id) do nothing
  returning id, seq, started_at`;

/**
 * The ends of a batch, one array per column, in one statement (its own transaction): the
 * finish-order lock first (the numbered rows join it, and the sort reads every input before the
 * first place is drawn), places drawn in the order given (a materialized CTE evaluated once, in
 * its ORDER BY's order), the rows, and the byte count. The lock is held until the statement commits.
 */
const FINISH = `
  with held as (select pg_advisory_xact_lock($1::bigint)),
  e as materialized (
    select v.*, nextval('${finishOrder.seqName}') as place from (
      select v.* from unnest($2::text[], $3::text[], $4::float8[], $5::float8[], $6::int[], $7::text[], $8::int[], $9::bigint[],
          $10::text[], $11::text[], $12::boolean[], $13::boolean[], $14::bigint[], $15::bigint[], $16::text[], $17::text[], $18::jsonb[])
        with ordinality as v(id, status, duration_ms, first_byte_ms, exit_code, signal, http_status, response_bytes, stdout, stderr,
          stdout_truncated, stderr_truncated, stdout_dropped_bytes, stderr_dropped_bytes, error, blocked_syscall, denied_syscalls, ord)
      join invocations on invocations.id = v.id and invocations.status = 'running'
      cross join held
      order by v.ord
    ) as v
  ),
  ended as (
    update invocations set
      status = e.status, duration_ms = e.duration_ms, first_byte_ms = e.first_byte_ms, exit_code = e.exit_code, signal = e.signal,
      http_status = e.http_status, response_bytes = e.response_bytes, stdout = e.stdout, stderr = e.stderr,
      stdout_truncated = e.stdout_truncated, stderr_truncated = e.stderr_truncated, stdout_dropped_bytes = e.stdout_dropped_bytes,
      stderr_dropped_bytes = e.stderr_dropped_bytes, error = e.error, blocked_syscall = e.blocked_syscall,
      denied_syscalls = e.denied_syscalls, finished_seq = e.place
    from e
    where invocations.id = e.id and invocations.status = 'running'
    returning invocations.id, invocations.finished_seq, ${ROW_BYTES_SQL} as bytes
  ),
  counted as (
    update log_usage set bytes = greatest(0, bytes + (select coalesce(sum(bytes), 0) from ended))
    where id = 1 and exists (select 1 from ended)
  )
  select id, finished_seq from ended`;

/** A row's size in the byte count, as SQL over the table's columns (for drizzle's statements). */
const rowBytes = sql`(octet_length(${invocations.stdout}) + octet_length(${invocations.stderr}) + ${ROW_OVERHEAD_BYTES})`;

export class PostgresInvocations implements InvocationRecords {
  constructor(private readonly db: Db) {}

  async start(rows: StartedRow[]): Promise<{ id: string; seq: number; startedAt: number }[]> {
    if (rows.length === 0) return [];
    const column = <T>(pick: (row: StartedRow) => T) => rows.map(pick);
    const written = await prepared<{ id: string; seq: string; started_at: string }>(this.db, "fngw_log_start", START, [
      column((r) => r.id),
      column((r) => r.functionName),
      column((r) => r.version),
      column((r) => r.node),
      column((r) => r.trigger ?? "http"),
      column((r) => r.attempt ?? 1),
      column((r) => r.jobId ?? null),
      column((r) => r.startedAt),
      column((r) => r.requestBytes),
      column((r) => r.method),
      column((r) => r.path),
    ]);
    return written.map((row) => ({ id: row.id, seq: Number(row.seq), startedAt: Number(row.started_at) }));
  }

  /** Takes the finish-order lock for the rest of the transaction: places are then handed out in commit order. */
  private async lockFinishOrder(tx: Tx): Promise<void> {
    await tx.execute(sql`select pg_advisory_xact_lock(${LOCKS.finishOrder}::bigint)`);
  }

  async finish(ends: { id: string; end: StoredEnd }[]): Promise<(number | null)[]> {
    if (ends.length === 0) return [];
    const column = <T>(pick: (end: StoredEnd) => T) => ends.map(({ end }) => pick(end));
    const written = await prepared<{ id: string; finished_seq: string }>(this.db, "fngw_log_finish", FINISH, [
      LOCKS.finishOrder,
      ends.map(({ id }) => id),
      column((e) => e.status),
      column((e) => e.durationMs),
      column((e) => e.firstByteMs ?? null),
      column((e) => e.exitCode),
      column((e) => e.signal),
      column((e) => e.httpStatus),
      column((e) => e.responseBytes),
      column((e) => e.stdout),
      column((e) => e.stderr),
      column((e) => e.stdoutTruncated),
      column((e) => e.stderrTruncated),
      column((e) => e.stdoutDroppedBytes),
      column((e) => e.stderrDroppedBytes),
      column((e) => e.error),
      column((e) => e.blockedSyscall),
      column((e) => (e.deniedSyscalls ? JSON.stringify(e.deniedSyscalls) : null)),
    ]);
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

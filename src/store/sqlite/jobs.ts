import { and, asc, desc, eq, getTableColumns, inArray, isNull, lt, lte, notInArray, or, type SQL, sql } from "drizzle-orm";
import { FINAL_JOB_STATES, PENDING_JOB_STATES } from "../../core/jobs.js";
import type { TickOutcome } from "../../core/schedules.js";
import type {
  CallbackDelivery,
  EnqueueResult,
  JobFilter,
  JobRecord,
  JobRecords,
  NewJob,
  QueueBounds,
  ScheduleRecords,
  Settlement,
  TickRecord,
} from "../contract.js";
import type { Db } from "./client.js";
import { callbackDeliveries, jobs, jobUsage, scheduleTicks } from "./schema.js";

// The job queue and schedule ticks in SQLite: one gateway writes the file, so every method is one
// synchronous transaction (no two can interleave).

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const rowsMatch: Same<typeof jobs.$inferSelect, JobRecord> = true;
void rowsMatch;

type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

const { body: _body, resultBody: _resultBody, ...listColumns } = getTableColumns(jobs);
/** The whole queue's row in job_usage. */
const ALL = "";

export function newJobRow(job: NewJob) {
  return {
    id: job.id,
    functionName: job.functionName,
    version: job.version,
    trigger: job.trigger,
    state: "queued" as const,
    attempts: 0,
    maxAttempts: job.maxAttempts,
    createdAt: job.createdAt,
    expiresAt: job.expiresAt,
    runAt: job.runAt,
    method: job.request.method,
    path: job.request.path,
    url: job.request.url,
    headers: job.request.headers,
    body: job.request.body,
    requestBytes: job.requestBytes,
    idempotencyKey: job.idempotencyKey,
    callbackUrl: job.callbackUrl,
    scheduledAt: job.scheduledAt ?? null,
    scheduleKey: job.scheduleKey ?? null,
    redriveOf: job.redriveOf ?? null,
  };
}

export class SqliteJobs implements JobRecords {
  constructor(private readonly db: Db) {}

  async enqueue(job: NewJob, bounds: QueueBounds, idempotentSince: number): Promise<EnqueueResult> {
    return this.db.transaction((tx) => {
      if (job.idempotencyKey !== null) {
        const key = and(eq(jobs.functionName, job.functionName), eq(jobs.idempotencyKey, job.idempotencyKey));
        const [existing] = tx.select().from(jobs).where(key).all();
        if (existing && existing.createdAt >= idempotentSince) return { kind: "existing", job: existing } as const;
        // A key past its window names nothing any more.
        if (existing) tx.update(jobs).set({ idempotencyKey: null }).where(eq(jobs.id, existing.id)).run();
      }
      const full = this.take(tx, job.functionName, job.requestBytes, bounds);
      if (full) return { kind: "full", scope: full } as const;
      const [stored] = tx.insert(jobs).values(newJobRow(job)).returning().all();
      return { kind: "enqueued", job: stored! } as const;
    });
  }

  /** Counts a job into the queue's use, unless it would pass a bound (then nothing changes). */
  take(tx: Tx, functionName: string, bytes: number, bounds: QueueBounds): "queue" | "function" | null {
    tx.insert(jobUsage)
      .values([{ functionName: ALL }, { functionName }])
      .onConflictDoNothing()
      .run();
    const fits = (name: string, maxJobs: number, maxBytes: number) =>
      tx
        .update(jobUsage)
        .set({ jobs: sql`${jobUsage.jobs} + 1`, bytes: sql`${jobUsage.bytes} + ${bytes}` })
        .where(and(eq(jobUsage.functionName, name), lt(jobUsage.jobs, maxJobs), lte(sql`${jobUsage.bytes} + ${bytes}`, maxBytes)))
        .run().changes === 1;
    if (!fits(ALL, bounds.maxJobs, bounds.maxBytes)) return "queue";
    if (!fits(functionName, bounds.functionMaxJobs, bounds.functionMaxBytes)) {
      tx.update(jobUsage)
        .set({ jobs: sql`${jobUsage.jobs} - 1`, bytes: sql`${jobUsage.bytes} - ${bytes}` })
        .where(eq(jobUsage.functionName, ALL))
        .run();
      return "function";
    }
    return null;
  }

  /** Counts a job out of the queue's use (it ended). */
  private give(tx: Tx, functionName: string, bytes: number): void {
    tx.update(jobUsage)
      .set({ jobs: sql`max(0, ${jobUsage.jobs} - 1)`, bytes: sql`max(0, ${jobUsage.bytes} - ${bytes})` })
      .where(inArray(jobUsage.functionName, [ALL, functionName]))
      .run();
  }

  async get(id: string): Promise<JobRecord | undefined> {
    return this.db.select().from(jobs).where(eq(jobs.id, id)).get();
  }

  async list(filter: JobFilter): Promise<JobRecord[]> {
    const conditions: SQL[] = [];
    if (filter.state) conditions.push(eq(jobs.state, filter.state));
    if (filter.functionName) conditions.push(eq(jobs.functionName, filter.functionName));
    if (filter.before) {
      const { createdAt, id } = filter.before;
      conditions.push(or(lt(jobs.createdAt, createdAt), and(eq(jobs.createdAt, createdAt), lt(jobs.id, id)))!);
    }
    const rows = this.db
      .select(listColumns)
      .from(jobs)
      .where(and(...conditions))
      .orderBy(desc(jobs.createdAt), desc(jobs.id))
      .limit(filter.limit)
      .all();
    return rows.map((row) => ({ ...row, body: null, resultBody: null }));
  }

  async lease(node: string, now: number, leaseUntil: number, limit: number, exclude: string[]): Promise<JobRecord[]> {
    if (limit <= 0) return [];
    return this.db.transaction((tx) => {
      const due = or(
        and(inArray(jobs.state, ["queued", "retrying"]), lte(jobs.runAt, now)),
        and(eq(jobs.state, "running"), lt(jobs.leaseUntil, now)),
      );
      const ids = tx
        .select({ id: jobs.id })
        .from(jobs)
        .where(exclude.length > 0 ? and(due, notInArray(jobs.functionName, exclude)) : due)
        .orderBy(asc(jobs.runAt))
        .limit(limit)
        .all()
        .map((row) => row.id);
      if (ids.length === 0) return [];
      return tx
        .update(jobs)
        .set({ state: "running", leaseNode: node, leaseUntil, attempts: sql`${jobs.attempts} + 1` })
        .where(inArray(jobs.id, ids))
        .returning()
        .all();
    });
  }

  async renew(node: string, ids: string[], leaseUntil: number): Promise<string[]> {
    if (ids.length === 0) return [];
    return this.db
      .update(jobs)
      .set({ leaseUntil })
      .where(and(inArray(jobs.id, ids), eq(jobs.leaseNode, node), eq(jobs.state, "running")))
      .returning({ id: jobs.id })
      .all()
      .map((row) => row.id);
  }

  async release(id: string, node: string, runAt: number): Promise<void> {
    this.db
      .update(jobs)
      .set({
        state: sql`case when ${jobs.attempts} > 1 then 'retrying' else 'queued' end`,
        attempts: sql`${jobs.attempts} - 1`,
        leaseNode: null,
        leaseUntil: null,
        runAt,
      })
      .where(and(eq(jobs.id, id), eq(jobs.leaseNode, node), eq(jobs.state, "running")))
      .run();
  }

  async releaseNode(node: string, now: number): Promise<number> {
    const jobsBack = this.db
      .update(jobs)
      .set({ leaseUntil: now - 1 })
      .where(and(eq(jobs.leaseNode, node), eq(jobs.state, "running")))
      .run().changes;
    const callbacksBack = this.db
      .update(jobs)
      .set({ leaseNode: null, leaseUntil: null })
      .where(and(eq(jobs.leaseNode, node), eq(jobs.callbackState, "pending")))
      .run().changes;
    return jobsBack + callbacksBack;
  }

  async settle(id: string, node: string, attempt: number, settlement: Settlement): Promise<boolean> {
    return this.db.transaction((tx) => {
      const held = and(eq(jobs.id, id), eq(jobs.leaseNode, node), eq(jobs.state, "running"), eq(jobs.attempts, attempt));
      if (settlement.state === "retrying") {
        const { state, runAt, lastInvocationId, lastStatus, lastError } = settlement;
        return (
          tx
            .update(jobs)
            .set({ state, runAt, lastInvocationId, lastStatus, lastError, leaseNode: null, leaseUntil: null })
            .where(held)
            .run().changes === 1
        );
      }
      const [ended] = tx
        .update(jobs)
        .set({
          state: settlement.state,
          finishedAt: settlement.finishedAt,
          lastInvocationId: settlement.lastInvocationId,
          lastStatus: settlement.lastStatus,
          lastError: settlement.lastError,
          resultHttpStatus: settlement.result?.httpStatus ?? null,
          resultHeaders: settlement.result?.headers ?? null,
          resultBody: settlement.result?.body ?? null,
          resultTruncated: settlement.result?.truncated ?? false,
          durationMs: settlement.durationMs,
          leaseNode: null,
          leaseUntil: null,
          runAt: settlement.finishedAt,
          callbackState: sql`case when ${jobs.callbackUrl} is null then null else 'pending' end`,
          // Nothing runs a succeeded job again: its request is not kept.
          ...(settlement.state === "succeeded" ? { body: null } : {}),
        })
        .where(held)
        .returning({ functionName: jobs.functionName, requestBytes: jobs.requestBytes })
        .all();
      if (!ended) return false;
      this.give(tx, ended.functionName, ended.requestBytes);
      return true;
    });
  }

  async cancel(id: string, now: number): Promise<{ job: JobRecord; cancelled: boolean } | undefined> {
    return this.db.transaction((tx) => {
      const [cancelled] = tx
        .update(jobs)
        .set({ state: "cancelled", finishedAt: now, runAt: now, leaseNode: null, leaseUntil: null })
        .where(and(eq(jobs.id, id), inArray(jobs.state, ["queued", "retrying"])))
        .returning()
        .all();
      if (cancelled) {
        this.give(tx, cancelled.functionName, cancelled.requestBytes);
        return { job: cancelled, cancelled: true };
      }
      const job = tx.select().from(jobs).where(eq(jobs.id, id)).get();
      return job && { job, cancelled: false };
    });
  }

  async leaseCallbacks(node: string, now: number, leaseUntil: number, limit: number): Promise<JobRecord[]> {
    if (limit <= 0) return [];
    return this.db.transaction((tx) => {
      const ids = tx
        .select({ id: jobs.id })
        .from(jobs)
        .where(
          and(
            eq(jobs.callbackState, "pending"),
            lte(jobs.runAt, now),
            inArray(jobs.state, FINAL_JOB_STATES),
            or(isNull(jobs.leaseUntil), lt(jobs.leaseUntil, now)),
          ),
        )
        .orderBy(asc(jobs.runAt))
        .limit(limit)
        .all()
        .map((row) => row.id);
      if (ids.length === 0) return [];
      return tx
        .update(jobs)
        .set({ leaseNode: node, leaseUntil, callbackAttempts: sql`${jobs.callbackAttempts} + 1` })
        .where(inArray(jobs.id, ids))
        .returning()
        .all();
    });
  }

  async recordDelivery(
    delivery: CallbackDelivery,
    next: { state: "pending"; runAt: number } | { state: "delivered" | "failed" },
  ): Promise<boolean> {
    return this.db.transaction((tx) => {
      const changed = tx
        .update(jobs)
        .set({
          callbackState: next.state,
          leaseNode: null,
          leaseUntil: null,
          ...(next.state === "pending" ? { runAt: next.runAt } : {}),
        })
        .where(and(eq(jobs.id, delivery.jobId), eq(jobs.leaseNode, delivery.node), eq(jobs.callbackAttempts, delivery.attempt)))
        .run().changes;
      if (changed === 0) return false;
      tx.insert(callbackDeliveries).values(delivery).onConflictDoNothing().run();
      return true;
    });
  }

  async deliveries(jobId: string): Promise<CallbackDelivery[]> {
    return this.db
      .select()
      .from(callbackDeliveries)
      .where(eq(callbackDeliveries.jobId, jobId))
      .orderBy(asc(callbackDeliveries.attempt))
      .all();
  }

  async usage() {
    const rows = this.db.select().from(jobUsage).all();
    const byFunction = new Map(rows.filter((r) => r.functionName !== ALL).map((r) => [r.functionName, { jobs: r.jobs, bytes: r.bytes }]));
    const all = rows.find((r) => r.functionName === ALL);
    return { jobs: all?.jobs ?? 0, bytes: all?.bytes ?? 0, byFunction };
  }

  async prune(finishedBefore: number, batchSize: number): Promise<number> {
    const ids = this.db
      .select({ id: jobs.id })
      .from(jobs)
      .where(
        and(
          inArray(jobs.state, FINAL_JOB_STATES),
          lt(jobs.finishedAt, finishedBefore),
          or(isNull(jobs.callbackState), inArray(jobs.callbackState, ["delivered", "failed"])),
        ),
      )
      .limit(batchSize)
      .all()
      .map((row) => row.id);
    if (ids.length === 0) return 0;
    return this.db.delete(jobs).where(inArray(jobs.id, ids)).run().changes;
  }
}

export class SqliteSchedules implements ScheduleRecords {
  constructor(
    private readonly db: Db,
    private readonly jobRecords: SqliteJobs,
  ) {}

  async lastTick(functionName: string, scheduleKey: string): Promise<number | null> {
    const row = this.db
      .select({ last: sql<number | null>`max(${scheduleTicks.tickAt})` })
      .from(scheduleTicks)
      .where(and(eq(scheduleTicks.functionName, functionName), eq(scheduleTicks.scheduleKey, scheduleKey)))
      .get();
    return row?.last ?? null;
  }

  async claim(
    tick: Omit<TickRecord, "outcome" | "jobId" | "jobState">,
    work: { job: NewJob; bounds: QueueBounds; skipWhileRunning: boolean } | { outcome: "missed" },
  ): Promise<TickOutcome | null> {
    return this.db.transaction((tx) => {
      const claimed = tx
        .insert(scheduleTicks)
        .values({ ...tick, outcome: "missed", jobId: null })
        .onConflictDoNothing()
        .run().changes;
      if (claimed === 0) return null;
      if ("outcome" in work) return work.outcome;
      let outcome: TickOutcome = "enqueued";
      const { job } = work;
      if (work.skipWhileRunning) {
        const running = tx
          .select({ id: jobs.id })
          .from(jobs)
          .where(
            and(eq(jobs.functionName, tick.functionName), eq(jobs.scheduleKey, tick.scheduleKey), inArray(jobs.state, PENDING_JOB_STATES)),
          )
          .limit(1)
          .all();
        if (running.length > 0) outcome = "skipped";
      }
      if (outcome === "enqueued" && this.jobRecords.take(tx, job.functionName, job.requestBytes, work.bounds)) outcome = "refused";
      if (outcome === "enqueued") tx.insert(jobs).values(newJobRow(job)).run();
      const where = and(
        eq(scheduleTicks.functionName, tick.functionName),
        eq(scheduleTicks.scheduleKey, tick.scheduleKey),
        eq(scheduleTicks.tickAt, tick.tickAt),
      );
      tx.update(scheduleTicks)
        .set({ outcome, jobId: outcome === "enqueued" ? job.id : null })
        .where(where)
        .run();
      return outcome;
    });
  }

  async recent(functionName: string, limit: number): Promise<TickRecord[]> {
    return this.db
      .select({ ...getTableColumns(scheduleTicks), jobState: jobs.state })
      .from(scheduleTicks)
      .leftJoin(jobs, eq(jobs.id, scheduleTicks.jobId))
      .where(eq(scheduleTicks.functionName, functionName))
      .orderBy(desc(scheduleTicks.tickAt))
      .limit(limit)
      .all();
  }
}

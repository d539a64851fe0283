import { and, asc, desc, eq, getTableColumns, inArray, isNull, lt, lte, max, notExists, notInArray, or, type SQL, sql } from "drizzle-orm";
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
import { newJobRow, type Same } from "../rows.js";
import { type Db, Rollback, savepoint, type Tx, transaction } from "./client.js";
import { callbackDeliveries, jobs, jobUsage, scheduleTicks } from "./schema.js";

// The job queue and schedule ticks in PostgreSQL, shared by every gateway on the database: leases
// are taken with FOR UPDATE SKIP LOCKED (two gateways never take one job), the queue's use is a
// row per function updated in the enqueue's transaction (a bound holds across gateways), and a
// tick's key is its claim.

const rowsMatch: Same<typeof jobs.$inferSelect, JobRecord> = true;
void rowsMatch;

const { body: _body, resultBody: _resultBody, ...listColumns } = getTableColumns(jobs);
const ALL = "";

export class PostgresJobs implements JobRecords {
  constructor(private readonly db: Db) {}

  async enqueue(job: NewJob, bounds: QueueBounds, idempotentSince: number): Promise<EnqueueResult> {
    const attempt = () =>
      transaction(this.db, async (tx): Promise<EnqueueResult> => {
        if (job.idempotencyKey !== null) {
          const key = and(eq(jobs.functionName, job.functionName), eq(jobs.idempotencyKey, job.idempotencyKey));
          const [existing] = await tx.select().from(jobs).where(key);
          if (existing && existing.createdAt >= idempotentSince) return { kind: "existing", job: existing };
          if (existing) await tx.update(jobs).set({ idempotencyKey: null }).where(eq(jobs.id, existing.id));
        }
        const full = await this.take(tx, job.functionName, job.requestBytes, bounds);
        if (full) {
          // Nothing of the job may stay: the counts taken so far go with the rollback.
          throw new Rollback();
        }
        const [stored] = await tx.insert(jobs).values(newJobRow(job)).returning();
        return { kind: "enqueued", job: stored! };
      });
    for (let tries = 0; ; tries++) {
      try {
        return await attempt();
      } catch (err) {
        if (isRollback(err)) return { kind: "full", scope: (await this.fullScope(job, bounds)) ?? "queue" };
        // Two gateways given the same key at once: the second's insert meets the first's row; answer it.
        if (isUniqueViolation(err) && job.idempotencyKey !== null && tries < 2) continue;
        throw err;
      }
    }
  }

  /** Which bound a refused job passed (read again after the rollback, for the answer's message). */
  private async fullScope(job: NewJob, bounds: QueueBounds): Promise<"queue" | "function" | null> {
    const rows = await this.db
      .select()
      .from(jobUsage)
      .where(inArray(jobUsage.functionName, [ALL, job.functionName]));
    const all = rows.find((r) => r.functionName === ALL);
    if (all && (all.jobs + 1 > bounds.maxJobs || all.bytes + job.requestBytes > bounds.maxBytes)) return "queue";
    return "function";
  }

  /** Counts a job into the queue's use; the bound it would pass, or null. The caller rolls back on a bound. */
  async take(tx: Tx, functionName: string, bytes: number, bounds: QueueBounds): Promise<"queue" | "function" | null> {
    await tx
      .insert(jobUsage)
      .values([{ functionName: ALL }, { functionName }])
      .onConflictDoNothing();
    const fits = async (name: string, maxJobs: number, maxBytes: number) =>
      (
        await tx
          .update(jobUsage)
          .set({ jobs: sql`${jobUsage.jobs} + 1`, bytes: sql`${jobUsage.bytes} + ${bytes}` })
          .where(and(eq(jobUsage.functionName, name), lt(jobUsage.jobs, maxJobs), lte(sql`${jobUsage.bytes} + ${bytes}`, maxBytes)))
          .returning({ jobs: jobUsage.jobs })
      ).length === 1;
    if (!(await fits(ALL, bounds.maxJobs, bounds.maxBytes))) return "queue";
    if (!(await fits(functionName, bounds.functionMaxJobs, bounds.functionMaxBytes))) return "function";
    return null;
  }

  private async give(tx: Tx, functionName: string, bytes: number): Promise<void> {
    await tx
      .update(jobUsage)
      .set({ jobs: sql`greatest(0, ${jobUsage.jobs} - 1)`, bytes: sql`greatest(0, ${jobUsage.bytes} - ${bytes})` })
      .where(inArray(jobUsage.functionName, [ALL, functionName]));
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const [row] = await this.db.select().from(jobs).where(eq(jobs.id, id));
    return row;
  }

  async list(filter: JobFilter): Promise<JobRecord[]> {
    const conditions: SQL[] = [];
    if (filter.state) conditions.push(eq(jobs.state, filter.state));
    if (filter.functionName) conditions.push(eq(jobs.functionName, filter.functionName));
    if (filter.before) {
      const { createdAt, id } = filter.before;
      conditions.push(or(lt(jobs.createdAt, createdAt), and(eq(jobs.createdAt, createdAt), lt(jobs.id, id)))!);
    }
    const rows = await this.db
      .select(listColumns)
      .from(jobs)
      .where(and(...conditions))
      .orderBy(desc(jobs.createdAt), desc(jobs.id))
      .limit(filter.limit);
    return rows.map((row) => ({ ...row, body: null, resultBody: null }));
  }

  async lease(node: string, now: number, leaseUntil: number, limit: number, exclude: string[]): Promise<JobRecord[]> {
    if (limit <= 0) return [];
    return transaction(this.db, async (tx) => {
      const others = exclude.length > 0 ? notInArray(jobs.functionName, exclude) : undefined;
      // One range of the (state, run_at) index each; rows another gateway is taking are passed by.
      const pick = (where: SQL | undefined) =>
        tx
          .select({ id: jobs.id, runAt: jobs.runAt })
          .from(jobs)
          .where(and(where, others))
          .orderBy(asc(jobs.runAt))
          .limit(limit)
          .for("update", { skipLocked: true });
      const due = [
        ...(await pick(and(eq(jobs.state, "queued"), lte(jobs.runAt, now)))),
        ...(await pick(and(eq(jobs.state, "retrying"), lte(jobs.runAt, now)))),
        ...(await pick(and(eq(jobs.state, "running"), lt(jobs.leaseUntil, now)))),
      ];
      const ids = due
        .sort((x, y) => x.runAt - y.runAt)
        .slice(0, limit)
        .map((row) => row.id);
      if (ids.length === 0) return [];
      return tx
        .update(jobs)
        .set({ state: "running", leaseNode: node, leaseUntil, attempts: sql`${jobs.attempts} + 1` })
        .where(inArray(jobs.id, ids))
        .returning();
    });
  }

  async renew(node: string, ids: string[], leaseUntil: number): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await this.db
      .update(jobs)
      .set({ leaseUntil })
      .where(and(inArray(jobs.id, ids), eq(jobs.leaseNode, node), eq(jobs.state, "running")))
      .returning({ id: jobs.id });
    return rows.map((row) => row.id);
  }

  async release(id: string, node: string, runAt: number): Promise<void> {
    await this.db
      .update(jobs)
      .set({
        state: sql`case when ${jobs.attempts} > 1 then 'retrying' else 'queued' end`,
        attempts: sql`${jobs.attempts} - 1`,
        leaseNode: null,
        leaseUntil: null,
        runAt,
      })
      .where(and(eq(jobs.id, id), eq(jobs.leaseNode, node), eq(jobs.state, "running")));
  }

  async releaseNode(node: string, now: number): Promise<number> {
    const back = await this.db
      .update(jobs)
      .set({ leaseUntil: now - 1 })
      .where(and(eq(jobs.leaseNode, node), eq(jobs.state, "running")))
      .returning({ id: jobs.id });
    const callbacks = await this.db
      .update(jobs)
      .set({ leaseNode: null, leaseUntil: null })
      .where(and(eq(jobs.leaseNode, node), eq(jobs.callbackState, "pending")))
      .returning({ id: jobs.id });
    return back.length + callbacks.length;
  }

  async settle(id: string, node: string, attempt: number, settlement: Settlement): Promise<boolean> {
    return transaction(this.db, async (tx) => {
      const held = and(eq(jobs.id, id), eq(jobs.leaseNode, node), eq(jobs.state, "running"), eq(jobs.attempts, attempt));
      if (settlement.state === "retrying") {
        const { state, runAt, lastInvocationId, lastStatus, lastError } = settlement;
        const rows = await tx
          .update(jobs)
          .set({ state, runAt, lastInvocationId, lastStatus, lastError, leaseNode: null, leaseUntil: null })
          .where(held)
          .returning({ id: jobs.id });
        return rows.length === 1;
      }
      const [ended] = await tx
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
          ...(settlement.state === "succeeded" ? { body: null } : {}),
        })
        .where(held)
        .returning({ functionName: jobs.functionName, requestBytes: jobs.requestBytes });
      if (!ended) return false;
      await this.give(tx, ended.functionName, ended.requestBytes);
      return true;
    });
  }

  async cancel(id: string, now: number): Promise<{ job: JobRecord; cancelled: boolean } | undefined> {
    return transaction(this.db, async (tx) => {
      const [cancelled] = await tx
        .update(jobs)
        .set({ state: "cancelled", finishedAt: now, runAt: now, leaseNode: null, leaseUntil: null })
        .where(and(eq(jobs.id, id), inArray(jobs.state, ["queued", "retrying"])))
        .returning();
      if (cancelled) {
        await this.give(tx, cancelled.functionName, cancelled.requestBytes);
        return { job: cancelled, cancelled: true };
      }
      const [job] = await tx.select().from(jobs).where(eq(jobs.id, id));
      return job && { job, cancelled: false };
    });
  }

  async leaseCallbacks(node: string, now: number, leaseUntil: number, limit: number): Promise<JobRecord[]> {
    if (limit <= 0) return [];
    return transaction(this.db, async (tx) => {
      const picked = await tx
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
        .for("update", { skipLocked: true });
      if (picked.length === 0) return [];
      return tx
        .update(jobs)
        .set({ leaseNode: node, leaseUntil, callbackAttempts: sql`${jobs.callbackAttempts} + 1` })
        .where(
          inArray(
            jobs.id,
            picked.map((row) => row.id),
          ),
        )
        .returning();
    });
  }

  async recordDelivery(
    delivery: CallbackDelivery,
    next: { state: "pending"; runAt: number } | { state: "delivered" | "failed" },
  ): Promise<boolean> {
    return transaction(this.db, async (tx) => {
      const changed = await tx
        .update(jobs)
        .set({
          callbackState: next.state,
          leaseNode: null,
          leaseUntil: null,
          ...(next.state === "pending" ? { runAt: next.runAt } : {}),
        })
        .where(and(eq(jobs.id, delivery.jobId), eq(jobs.leaseNode, delivery.node), eq(jobs.callbackAttempts, delivery.attempt)))
        .returning({ id: jobs.id });
      if (changed.length === 0) return false;
      await tx.insert(callbackDeliveries).values(delivery).onConflictDoNothing();
      return true;
    });
  }

  async deliveries(jobId: string): Promise<CallbackDelivery[]> {
    return this.db.select().from(callbackDeliveries).where(eq(callbackDeliveries.jobId, jobId)).orderBy(asc(callbackDeliveries.attempt));
  }

  async usage() {
    const rows = await this.db.select().from(jobUsage);
    const byFunction = new Map(rows.filter((r) => r.functionName !== ALL).map((r) => [r.functionName, { jobs: r.jobs, bytes: r.bytes }]));
    const all = rows.find((r) => r.functionName === ALL);
    return { jobs: all?.jobs ?? 0, bytes: all?.bytes ?? 0, byFunction };
  }

  async prune(finishedBefore: number, batchSize: number): Promise<number> {
    const victims = this.db
      .select({ id: jobs.id })
      .from(jobs)
      .where(
        and(
          inArray(jobs.state, FINAL_JOB_STATES),
          lt(jobs.finishedAt, finishedBefore),
          or(isNull(jobs.callbackState), inArray(jobs.callbackState, ["delivered", "failed"])),
        ),
      )
      .limit(batchSize);
    const deleted = await this.db.delete(jobs).where(inArray(jobs.id, victims)).returning({ id: jobs.id });
    return deleted.length;
  }
}

export class PostgresSchedules implements ScheduleRecords {
  constructor(
    private readonly db: Db,
    private readonly jobRecords: PostgresJobs,
  ) {}

  async lastTick(functionName: string, scheduleKey: string): Promise<number | null> {
    const [row] = await this.db
      .select({ last: sql<string | null>`max(${scheduleTicks.tickAt})` })
      .from(scheduleTicks)
      .where(and(eq(scheduleTicks.functionName, functionName), eq(scheduleTicks.scheduleKey, scheduleKey)));
    return row?.last === null || row?.last === undefined ? null : Number(row.last);
  }

  async claim(
    tick: Omit<TickRecord, "outcome" | "jobId" | "jobState">,
    work: { job: NewJob; bounds: QueueBounds; skipWhileRunning: boolean } | { outcome: "missed" },
  ): Promise<TickOutcome | null> {
    return transaction(this.db, async (tx) => {
      // The tick's key is the claim: a second gateway's insert finds the row and does nothing.
      const claimed = await tx
        .insert(scheduleTicks)
        .values({ ...tick, outcome: "missed", jobId: null })
        .onConflictDoNothing()
        .returning({ tickAt: scheduleTicks.tickAt });
      if (claimed.length === 0) return null;
      if ("outcome" in work) return work.outcome;
      let outcome: TickOutcome = "enqueued";
      const { job } = work;
      if (work.skipWhileRunning) {
        const running = await tx
          .select({ id: jobs.id })
          .from(jobs)
          .where(
            and(eq(jobs.functionName, tick.functionName), eq(jobs.scheduleKey, tick.scheduleKey), inArray(jobs.state, PENDING_JOB_STATES)),
          )
          .limit(1);
        if (running.length > 0) outcome = "skipped";
      }
      if (outcome === "enqueued") {
        // The counts are taken under a savepoint: a full queue undoes them and keeps the claim.
        const full = await savepoint(tx, async (inner) => {
          const bound = await this.jobRecords.take(inner, job.functionName, job.requestBytes, work.bounds);
          if (bound) throw new Rollback();
          return bound;
        }).catch((err: unknown) => {
          if (isRollback(err)) return "queue" as const;
          throw err;
        });
        if (full) outcome = "refused";
      }
      if (outcome === "enqueued") await tx.insert(jobs).values(newJobRow(job));
      await tx
        .update(scheduleTicks)
        .set({ outcome, jobId: outcome === "enqueued" ? job.id : null })
        .where(
          and(
            eq(scheduleTicks.functionName, tick.functionName),
            eq(scheduleTicks.scheduleKey, tick.scheduleKey),
            eq(scheduleTicks.tickAt, tick.tickAt),
          ),
        );
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
      .limit(limit);
  }

  async prune(claimedBefore: number): Promise<number> {
    // Each schedule's newest tick stays: it is where the next look at the schedule starts.
    const newest = this.db
      .select({
        functionName: scheduleTicks.functionName,
        scheduleKey: scheduleTicks.scheduleKey,
        last: max(scheduleTicks.tickAt).as("last"),
      })
      .from(scheduleTicks)
      .groupBy(scheduleTicks.functionName, scheduleTicks.scheduleKey)
      .as("newest");
    const gone = await this.db
      .delete(scheduleTicks)
      .where(
        and(
          lt(scheduleTicks.claimedAt, claimedBefore),
          notExists(
            this.db
              .select({ one: sql`1` })
              .from(newest)
              .where(
                and(
                  eq(newest.functionName, scheduleTicks.functionName),
                  eq(newest.scheduleKey, scheduleTicks.scheduleKey),
                  eq(newest.last, scheduleTicks.tickAt),
                ),
              ),
          ),
        ),
      )
      .returning({ tickAt: scheduleTicks.tickAt });
    return gone.length;
  }
}

function isRollback(err: unknown): boolean {
  return err instanceof Rollback;
}

function isUniqueViolation(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) if ((e as { code?: unknown }).code === "23505") return true;
  return false;
}

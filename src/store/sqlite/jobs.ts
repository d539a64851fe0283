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
import type { Db } from "./client.js";
import { callbackDeliveries, jobs, jobUsage, scheduleTicks } from "./schema.js";

// The job queue and schedule ticks in SQLite: one gateway writes the file, so every method is one
// synchronous transaction (no two can interleave).

const rowsMatch: Same<typeof jobs.$inferSelect, JobRecord> = true;
void rowsMatch;

type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

const { body: _body, resultBody: _resultBody, ...listColumns } = getTableColumns(jobs);
/** The whole queue's row in job_usage. */
const ALL = "";

/** The columns a new job's row leaves to their defaults, as the row reads back. */
const emptyJob = {
  leaseNode: null,
  leaseUntil: null,
  lastInvocationId: null,
  lastStatus: null,
  lastError: null,
  resultHttpStatus: null,
  resultHeaders: null,
  resultBody: null,
  resultTruncated: false,
  durationMs: null,
  finishedAt: null,
  callbackState: null,
  callbackAttempts: 0,
} as const;

interface PendingEnqueue {
  job: NewJob;
  bounds: QueueBounds;
  idempotentSince: number;
  done: (result: EnqueueResult) => void;
  failed: (error: unknown) => void;
}

export class SqliteJobs implements JobRecords {
  // The enqueue path is every async request's: prepared once, and the enqueues of one event-loop
  // turn committed together (each keeps its own bounds and idempotency check, in order).
  private readonly byKey;
  private readonly forgetKey;
  private readonly addUsage;
  private readonly takeUsage;
  private readonly giveUsage;
  private readonly insertJob;
  private readonly dueOf;
  private readonly leaseOne;
  private readonly retryJob;
  private readonly endJob;
  private pending: PendingEnqueue[] = [];

  constructor(private readonly db: Db) {
    const p = sql.placeholder;
    this.byKey = db
      .select()
      .from(jobs)
      .where(and(eq(jobs.functionName, p("functionName")), eq(jobs.idempotencyKey, p("key"))))
      .prepare();
    this.forgetKey = db
      .update(jobs)
      .set({ idempotencyKey: null })
      .where(eq(jobs.id, p("id")))
      .prepare();
    this.addUsage = db
      .insert(jobUsage)
      .values([{ functionName: ALL }, { functionName: p("functionName") }])
      .onConflictDoNothing()
      .prepare();
    this.takeUsage = db
      .update(jobUsage)
      .set({ jobs: sql`${jobUsage.jobs} + 1`, bytes: sql`${jobUsage.bytes} + ${p("bytes")}` })
      .where(
        and(
          eq(jobUsage.functionName, p("name")),
          lt(jobUsage.jobs, p("maxJobs")),
          lte(sql`${jobUsage.bytes} + ${p("bytes")}`, p("maxBytes")),
        ),
      )
      .prepare();
    this.giveUsage = db
      .update(jobUsage)
      .set({ jobs: sql`max(0, ${jobUsage.jobs} - 1)`, bytes: sql`max(0, ${jobUsage.bytes} - ${p("bytes")})` })
      .where(eq(jobUsage.functionName, p("name")))
      .prepare();
    const row = newJobRow({
      id: "",
      functionName: "",
      version: null,
      trigger: "async",
      request: { method: "", path: "", url: "", headers: [], body: Buffer.alloc(0) },
      requestBytes: 0,
      maxAttempts: 0,
      createdAt: 0,
      expiresAt: 0,
      runAt: 0,
      idempotencyKey: null,
      callbackUrl: null,
    });
    this.insertJob = db
      .insert(jobs)
      .values(
        Object.fromEntries(
          Object.keys(row).map((key) => [key, key === "state" || key === "attempts" ? row[key as keyof typeof row] : p(key)]),
        ) as typeof row,
      )
      .prepare();
    // Leasing and settling are every job's: prepared too.
    const due = (state: "queued" | "retrying") =>
      db
        .select({ id: jobs.id, runAt: jobs.runAt })
        .from(jobs)
        .where(and(eq(jobs.state, state), lte(jobs.runAt, p("now"))))
        .orderBy(jobs.runAt)
        .limit(p("limit"))
        .prepare();
    this.dueOf = {
      queued: due("queued"),
      retrying: due("retrying"),
      lost: db
        .select({ id: jobs.id, runAt: jobs.runAt })
        .from(jobs)
        .where(and(eq(jobs.state, "running"), lt(jobs.leaseUntil, p("now"))))
        .orderBy(jobs.runAt)
        .limit(p("limit"))
        .prepare(),
    };
    this.leaseOne = db
      .update(jobs)
      .set({ state: "running", leaseNode: sql`${p("node")}`, leaseUntil: sql`${p("leaseUntil")}`, attempts: sql`${jobs.attempts} + 1` })
      .where(eq(jobs.id, p("id")))
      .returning()
      .prepare();
    const held = and(eq(jobs.id, p("id")), eq(jobs.leaseNode, p("node")), eq(jobs.state, "running"), eq(jobs.attempts, p("attempt")));
    this.retryJob = db
      .update(jobs)
      .set({
        state: "retrying",
        runAt: sql`${p("runAt")}`,
        lastInvocationId: sql`${p("lastInvocationId")}`,
        lastStatus: sql`${p("lastStatus")}`,
        lastError: sql`${p("lastError")}`,
        leaseNode: null,
        leaseUntil: null,
      })
      .where(held)
      .prepare();
    this.endJob = db
      .update(jobs)
      .set({
        state: sql`${p("state")}`,
        finishedAt: sql`${p("finishedAt")}`,
        lastInvocationId: sql`${p("lastInvocationId")}`,
        lastStatus: sql`${p("lastStatus")}`,
        lastError: sql`${p("lastError")}`,
        resultHttpStatus: sql`${p("resultHttpStatus")}`,
        resultHeaders: sql`${p("resultHeaders")}`,
        resultBody: sql`${p("resultBody")}`,
        resultTruncated: sql`${p("resultTruncated")}`,
        durationMs: sql`${p("durationMs")}`,
        leaseNode: null,
        leaseUntil: null,
        runAt: sql`${p("finishedAt")}`,
        callbackState: sql`case when ${jobs.callbackUrl} is null then null else 'pending' end`,
        // Nothing runs a succeeded job again: its request is not kept.
        body: sql`case when ${p("state")} = 'succeeded' then null else ${jobs.body} end`,
      })
      .where(held)
      .returning({ functionName: jobs.functionName, requestBytes: jobs.requestBytes })
      .prepare();
  }

  enqueue(job: NewJob, bounds: QueueBounds, idempotentSince: number): Promise<EnqueueResult> {
    return new Promise((done, failed) => {
      this.pending.push({ job, bounds, idempotentSince, done, failed });
      if (this.pending.length === 1) setImmediate(() => this.commitPending());
    });
  }

  private commitPending(): void {
    const batch = this.pending;
    this.pending = [];
    let results: EnqueueResult[];
    try {
      results = this.db.transaction(() => batch.map((item) => this.enqueueOne(item)));
    } catch {
      // One the database refuses must not cost the others theirs: each on its own.
      for (const item of batch) {
        try {
          item.done(this.db.transaction(() => this.enqueueOne(item)));
        } catch (err) {
          item.failed(err);
        }
      }
      return;
    }
    for (const [k, item] of batch.entries()) item.done(results[k]!);
  }

  private enqueueOne({ job, bounds, idempotentSince }: PendingEnqueue): EnqueueResult {
    if (job.idempotencyKey !== null) {
      const existing = this.byKey.get({ functionName: job.functionName, key: job.idempotencyKey });
      if (existing && existing.createdAt >= idempotentSince) return { kind: "existing", job: existing };
      // A key past its window names nothing any more.
      if (existing) this.forgetKey.run({ id: existing.id });
    }
    const full = this.takePrepared(job.functionName, job.requestBytes, bounds);
    if (full) return { kind: "full", scope: full };
    const row = newJobRow(job);
    this.insertJob.run(row);
    return { kind: "enqueued", job: { ...emptyJob, ...row } };
  }

  /** Counts a job into the queue's use, unless it would pass a bound (then nothing changes). Inside a transaction. */
  private takePrepared(functionName: string, bytes: number, bounds: QueueBounds): "queue" | "function" | null {
    this.addUsage.run({ functionName });
    if (this.takeUsage.run({ name: ALL, bytes, maxJobs: bounds.maxJobs, maxBytes: bounds.maxBytes }).changes !== 1) return "queue";
    if (
      this.takeUsage.run({ name: functionName, bytes, maxJobs: bounds.functionMaxJobs, maxBytes: bounds.functionMaxBytes }).changes !== 1
    ) {
      this.giveUsage.run({ name: ALL, bytes });
      return "function";
    }
    return null;
  }

  /** Counts a job into the queue's use (a schedule's tick, inside its claim's transaction). */
  take(_tx: Tx, functionName: string, bytes: number, bounds: QueueBounds): "queue" | "function" | null {
    return this.takePrepared(functionName, bytes, bounds);
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
      // One range of the (state, run_at) index each: an OR of the three would read every due row to sort them.
      let due: { id: string; runAt: number }[];
      if (exclude.length === 0) {
        due = [this.dueOf.queued, this.dueOf.retrying, this.dueOf.lost].flatMap((statement) => statement.all({ now, limit }));
      } else {
        const others = notInArray(jobs.functionName, exclude);
        const pick = (where: SQL | undefined) =>
          tx.select({ id: jobs.id, runAt: jobs.runAt }).from(jobs).where(and(where, others)).orderBy(jobs.runAt).limit(limit).all();
        due = [
          ...pick(and(eq(jobs.state, "queued"), lte(jobs.runAt, now))),
          ...pick(and(eq(jobs.state, "retrying"), lte(jobs.runAt, now))),
          ...pick(and(eq(jobs.state, "running"), lt(jobs.leaseUntil, now))),
        ];
      }
      return due
        .sort((x, y) => x.runAt - y.runAt)
        .slice(0, limit)
        .flatMap(({ id }) => this.leaseOne.all({ id, node, leaseUntil }));
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
    return this.db.transaction(() => {
      if (settlement.state === "retrying") {
        const { runAt, lastInvocationId, lastStatus, lastError } = settlement;
        return this.retryJob.run({ id, node, attempt, runAt, lastInvocationId, lastStatus, lastError }).changes === 1;
      }
      const { result } = settlement;
      // The prepared SET bypasses the columns' mapping: JSON and booleans as SQLite stores them.
      const [ended] = this.endJob.all({
        id,
        node,
        attempt,
        state: settlement.state,
        finishedAt: settlement.finishedAt,
        lastInvocationId: settlement.lastInvocationId,
        lastStatus: settlement.lastStatus,
        lastError: settlement.lastError,
        resultHttpStatus: result?.httpStatus ?? null,
        resultHeaders: result ? JSON.stringify(result.headers) : null,
        resultBody: result?.body ?? null,
        resultTruncated: result?.truncated ? 1 : 0,
        durationMs: settlement.durationMs,
      });
      if (!ended) return false;
      this.giveUsage.run({ name: ALL, bytes: ended.requestBytes });
      this.giveUsage.run({ name: ended.functionName, bytes: ended.requestBytes });
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
      .returning({ tickAt: scheduleTicks.tickAt })
      .all();
    return gone.length;
  }
}

import { performance } from "node:perf_hooks";
import { v7 as uuidv7 } from "uuid";
import type { FunctionCatalog } from "../cluster/functions.js";
import { beforeAttempt, nextStep } from "../core/jobs.js";
import { log } from "../core/log.js";
import { invocationSpec, type Runner } from "../core/runner.js";
import type { FunctionVersion, JobRecord, Settlement, Store } from "../store/contract.js";
import type { InvocationLogWriter } from "../store/log-writer.js";
import { attemptOutcome, attemptRefused, attemptRequest, attemptRunnerError, type JobAnswer } from "./attempt.js";
import { Pause } from "./pause.js";

/** The gateway's admission control, as jobs use it (src/http/admission.ts): jobs take the same places as calls that wait. */
export interface Slots {
  wouldAdmit(name: string, maxConcurrency: number | null): boolean;
  enter(name: string, maxConcurrency: number | null): (() => void) | null;
}

/** Where a version's packages are, when they are ready (src/packages). */
export interface PackageTrees {
  treeDir(key: string): string | null;
}

export interface WorkerOptions {
  node: string;
  /** Jobs run at once here (ASYNC_MAX_CONCURRENCY). */
  concurrency: number;
  leaseMs: number;
  pollMs: number;
  /** Bytes of a final answer kept (ASYNC_RESULT_MAX_BYTES). */
  resultMaxBytes: number;
  now?: () => number;
  random?: () => number;
  newId?: () => string;
}

export interface WorkerDeps {
  store: Store;
  functions: FunctionCatalog;
  log: InvocationLogWriter;
  runner: Runner;
  slots: Slots;
  packages?: PackageTrees;
  /** Told when this gateway wrote ends (the live tail). */
  nudge?: () => void;
  /** Told when a job ended with a callback to deliver. */
  callbackDue?: () => void;
}

/** How long a job handed back unrun (its function at max_concurrency here) waits before it is due again. */
const RELEASE_DELAY_MS = 200;

/**
 * Runs the queue's jobs on this gateway: leases due jobs while it has room (ASYNC_MAX_CONCURRENCY,
 * and the function's max_concurrency in the gateway's one admission control), runs each attempt in
 * the sandbox as a synchronous call would run, with a log row of its own, and settles it by the
 * rules of `core/jobs.ts`. Leases are renewed while jobs run; a job whose lease this gateway lost
 * (it stalled past the lease) is not settled by it.
 */
export class JobWorker {
  private readonly running = new Map<string, Promise<void>>();
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly newId: () => string;
  private stopped = false;
  private readonly pause = new Pause();
  private loop: Promise<void> | null = null;
  private renewTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly deps: WorkerDeps,
    private readonly options: WorkerOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.newId = options.newId ?? uuidv7;
  }

  /** Hands back what this node held when it last stopped, then starts taking jobs. */
  async start(): Promise<void> {
    if (this.options.concurrency <= 0) return;
    const back = await this.deps.store.jobs.releaseNode(this.options.node, this.now());
    if (back > 0) log.info(`${back} job(s) this gateway held when it stopped are due again`);
    this.loop = this.pump();
    this.renewTimer = setInterval(() => void this.renew(), Math.max(250, Math.floor(this.options.leaseMs / 3)));
    this.renewTimer.unref();
  }

  /** A job was enqueued here: look now rather than at the next poll. */
  wake(): void {
    this.pause.wake();
  }

  get active(): number {
    return this.running.size;
  }

  /** Stops taking jobs; those running finish (or are cut by the sandbox closing) and are settled. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    if (this.renewTimer) clearInterval(this.renewTimer);
    await this.loop;
    await Promise.all(this.running.values());
  }

  private async pump(): Promise<void> {
    while (!this.stopped) {
      let leased: JobRecord[] = [];
      const room = this.options.concurrency - this.running.size;
      // A gateway whose admission is full (calls that wait) takes no job: it could not start it.
      if (room > 0 && this.deps.slots.wouldAdmit("", null)) {
        try {
          const now = this.now();
          leased = await this.deps.store.jobs.lease(this.options.node, now, now + this.options.leaseMs, room, this.busyFunctions());
        } catch (err) {
          log.warn({ err }, `could not take jobs from the queue: ${(err as Error).message}`);
        }
      }
      for (const job of leased) {
        const run = this.runJob(job).finally(() => {
          this.running.delete(job.id);
          this.wake();
        });
        this.running.set(job.id, run);
      }
      // A full batch may have more behind it; otherwise wait for a wake-up (an enqueue, a job done) or the poll.
      if (leased.length === 0 || leased.length < room) await this.pause.sleep(this.options.pollMs);
    }
  }

  /** Functions this gateway cannot start another invocation of now (their max_concurrency), left in the queue for others. */
  private busyFunctions(): string[] {
    const busy: string[] = [];
    for (const summary of this.deps.functions.list()) {
      const fn = this.deps.functions.get(summary.name);
      if (fn && fn.maxConcurrency !== null && !this.deps.slots.wouldAdmit(fn.name, fn.maxConcurrency)) busy.push(fn.name);
    }
    return busy;
  }

  private async renew(): Promise<void> {
    const ids = [...this.running.keys()];
    if (ids.length === 0) return;
    try {
      const held = new Set(await this.deps.store.jobs.renew(this.options.node, ids, this.now() + this.options.leaseMs));
      for (const id of ids) {
        if (!held.has(id) && this.running.has(id)) log.warn(`job ${id}: this gateway lost its lease (another may run it again)`);
      }
    } catch (err) {
      log.warn({ err }, `could not renew the leases of ${ids.length} job(s): ${(err as Error).message}`);
    }
  }

  private async runJob(job: JobRecord): Promise<void> {
    const { store } = this.deps;
    const attempt = job.attempts;
    const before = beforeAttempt({ attempts: job.maxAttempts, attempt, expiresAt: job.expiresAt }, this.now());
    if (!before.run) {
      await this.settle(job, attempt, this.final(before.state, null, before.reason, null, null));
      return;
    }
    const fn = await this.versionOf(job);
    if (!fn) {
      const missing =
        job.version === null ? `the function '${job.functionName}' was deleted` : `version ${job.version} of '${job.functionName}' is gone`;
      await this.settle(job, attempt, this.final("failed", null, missing, null, null));
      return;
    }
    const release = this.deps.slots.enter(fn.name, fn.maxConcurrency);
    if (!release) {
      // Calls that wait took the places first: the job goes back, its attempt not counted.
      await store.jobs.release(job.id, this.options.node, this.now() + RELEASE_DELAY_MS).catch((err: unknown) => {
        log.warn({ err }, `job ${job.id}: could not hand it back (its lease runs out instead)`);
      });
      return;
    }
    try {
      await this.attempt(job, attempt, fn);
    } finally {
      release();
    }
  }

  private async versionOf(job: JobRecord): Promise<FunctionVersion | undefined> {
    try {
      return job.version === null
        ? this.deps.functions.get(job.functionName)
        : await this.deps.functions.version(job.functionName, job.version);
    } catch (err) {
      log.warn({ err }, `job ${job.id}: could not read version ${job.version} of '${job.functionName}'`);
      return undefined;
    }
  }

  private async attempt(job: JobRecord, attempt: number, fn: FunctionVersion): Promise<void> {
    const id = this.newId();
    const request = attemptRequest(job, attempt);
    let logged = false;
    try {
      await this.deps.log.start({
        id,
        functionName: fn.name,
        version: fn.version,
        requestBytes: request.body.byteLength,
        method: request.method,
        path: request.path,
        trigger: job.trigger,
        attempt,
        jobId: job.id,
      });
      logged = true;
    } catch (err) {
      log.error(
        { err, invocation_id: id, job_id: job.id },
        `job ${job.id} attempt ${attempt} could not be logged: ${(err as Error).message}`,
      );
    }
    let outcome: ReturnType<typeof attemptOutcome>;
    const packagesDir = fn.environmentKey === null ? undefined : (this.deps.packages?.treeDir(fn.environmentKey) ?? null);
    if (packagesDir === null) {
      outcome = attemptRefused(503, "packages_not_ready", `the packages of version ${fn.version} of '${fn.name}' are not ready`, id);
    } else {
      const spec = invocationSpec(fn, request, packagesDir);
      const started = performance.now();
      try {
        outcome = attemptOutcome(await this.deps.runner.run(spec), id);
      } catch (err) {
        outcome = attemptRunnerError(err, id, performance.now() - started);
      }
    }
    if (logged) {
      try {
        await this.deps.log.finish(id, outcome.end);
        this.deps.nudge?.();
      } catch (err) {
        log.error({ err, invocation_id: id }, `job ${job.id} attempt ${attempt}: could not record its end: ${(err as Error).message}`);
      }
    }
    const { end, answer } = outcome;
    const step = nextStep(
      { status: end.status, httpStatus: end.httpStatus },
      { attempts: job.maxAttempts, attempt, expiresAt: job.expiresAt },
      this.now(),
      this.random(),
    );
    const settlement: Settlement =
      step.state === "retrying"
        ? { state: "retrying", runAt: step.runAt, lastInvocationId: id, lastStatus: end.status, lastError: end.error }
        : this.final(step.state, id, end.error, answer, end.durationMs, end.status);
    await this.settle(job, attempt, settlement);
  }

  private final(
    state: "succeeded" | "failed" | "expired",
    invocationId: string | null,
    error: string | null,
    answer: JobAnswer | null,
    durationMs: number | null,
    status: Settlement["lastStatus"] = null,
  ): Settlement {
    const max = this.options.resultMaxBytes;
    const result = answer && {
      httpStatus: answer.httpStatus,
      headers: answer.headers,
      body: answer.body.byteLength > max ? answer.body.subarray(0, max) : answer.body,
      truncated: answer.body.byteLength > max,
    };
    return { state, finishedAt: this.now(), lastInvocationId: invocationId, lastStatus: status, lastError: error, result, durationMs };
  }

  private async settle(job: JobRecord, attempt: number, settlement: Settlement): Promise<void> {
    try {
      const settled = await this.deps.store.jobs.settle(job.id, this.options.node, attempt, settlement);
      if (!settled)
        log.warn(`job ${job.id} attempt ${attempt}: ended after this gateway lost its lease; the end is not recorded on the job`);
      else if (settlement.state !== "retrying" && job.callbackUrl !== null) this.deps.callbackDue?.();
    } catch (err) {
      // The lease runs out and the job is taken again: at least once.
      log.error({ err }, `job ${job.id} attempt ${attempt}: could not record its end: ${(err as Error).message}`);
    }
  }
}

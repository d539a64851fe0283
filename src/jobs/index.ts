import type { Cluster } from "../cluster/index.js";
import type { Config } from "../core/config.js";
import { functionShare, IDEMPOTENCY_WINDOW_MS, requestSize } from "../core/jobs.js";
import { log } from "../core/log.js";
import type { Runner } from "../core/runner.js";
import type { EnqueueResult, FunctionVersion, JobRecord, QueueBounds, QueuedRequest, Store } from "../store/contract.js";
import type { SecretBox } from "../store/secrets.js";
import { CallbackSecret, CallbackSender } from "./callbacks.js";
import { Scheduler } from "./scheduler.js";
import { JobWorker, type PackageTrees, type Slots } from "./worker.js";

export { CallbackUrlError, checkCallbackUrl } from "./callbacks.js";

/** What asks for a job: the version resolved at the request, the request kept, and the caller's options. */
export interface JobRequest {
  id: string;
  fn: FunctionVersion;
  /** The version named in the path (`@N`), or null for the current one at each attempt. */
  pinnedVersion: number | null;
  request: QueuedRequest;
  idempotencyKey: string | null;
  callbackUrl: string | null;
  redriveOf?: string | null;
}

/** The job queue as the HTTP layer uses it: enqueue (bounded, idempotent), redrive, and the callback secret. */
export interface JobQueue {
  enqueue(request: JobRequest): Promise<EnqueueResult>;
  /** A new job running `job`'s request again (a dead letter's redrive). */
  redrive(job: JobRecord, id: string): Promise<EnqueueResult>;
  readonly callbackSecret: CallbackSecret;
  readonly allowPrivateCallbacks: boolean;
}

export interface JobsDeps {
  config: Config;
  store: Store;
  cluster: Cluster;
  runner: Runner;
  slots: Slots;
  box: SecretBox;
  packages?: PackageTrees;
  now?: () => number;
  random?: () => number;
  newId?: () => string;
  /** Whether the scheduler looks every second by itself (tests on a clock of their own call runOnce instead). */
  schedulerTimer?: boolean;
}

/** The queue's bounds, from the configuration. */
export function queueBounds(config: Config): QueueBounds {
  const limits = {
    maxJobs: config.ASYNC_QUEUE_MAX_JOBS,
    maxBytes: config.ASYNC_QUEUE_MAX_MB * 1024 * 1024,
    functionSharePercent: config.ASYNC_QUEUE_FUNCTION_SHARE,
  };
  const share = functionShare(limits);
  return { maxJobs: limits.maxJobs, maxBytes: limits.maxBytes, functionMaxJobs: share.maxJobs, functionMaxBytes: share.maxBytes };
}

export interface Jobs {
  queue: JobQueue;
  worker: JobWorker;
  scheduler: Scheduler;
  callbacks: CallbackSender;
  /** Starts taking jobs, delivering callbacks and firing schedules; returns the callback secret when this start made it (shown once). */
  start(): Promise<{ createdSecret: string | null }>;
  /** Stops taking work; running jobs finish (within the shutdown's grace). */
  stop(): Promise<void>;
}

/** The job runtime of one gateway: the queue's front, the worker, callback delivery and the scheduler. */
export function createJobs(deps: JobsDeps): Jobs {
  const { config, store, cluster } = deps;
  const now = deps.now ?? Date.now;
  const bounds = queueBounds(config);
  const callbackSecret = new CallbackSecret(store, deps.box);
  const callbacks = new CallbackSender(store, callbackSecret, {
    node: cluster.node,
    allowPrivate: config.CALLBACK_ALLOW_PRIVATE === "1",
    maxAttempts: config.CALLBACK_MAX_ATTEMPTS,
    timeoutMs: config.CALLBACK_TIMEOUT_MS,
    leaseMs: config.ASYNC_LEASE_MS,
    pollMs: config.ASYNC_POLL_MS,
    now: deps.now,
    random: deps.random,
  });
  const worker = new JobWorker(
    {
      store,
      functions: cluster.functions,
      log: cluster.log,
      runner: deps.runner,
      slots: deps.slots,
      packages: deps.packages,
      nudge: () => cluster.feed.nudge(),
      callbackDue: () => callbacks.wake(),
    },
    {
      node: cluster.node,
      concurrency: config.ASYNC_MAX_CONCURRENCY,
      leaseMs: config.ASYNC_LEASE_MS,
      pollMs: config.ASYNC_POLL_MS,
      resultMaxBytes: config.ASYNC_RESULT_MAX_BYTES,
      now: deps.now,
      random: deps.random,
      newId: deps.newId,
    },
  );
  const scheduler = new Scheduler(store, cluster.functions, {
    node: cluster.node,
    bounds,
    now: deps.now,
    newId: deps.newId,
    enqueued: () => worker.wake(),
  });

  const enqueue = async (request: JobRequest): Promise<EnqueueResult> => {
    const createdAt = now();
    const result = await store.jobs.enqueue(
      {
        id: request.id,
        functionName: request.fn.name,
        version: request.pinnedVersion,
        trigger: "async",
        request: request.request,
        requestBytes: requestSize(request.request),
        maxAttempts: request.fn.retries + 1,
        createdAt,
        expiresAt: createdAt + request.fn.maxEventAgeS * 1000,
        runAt: createdAt,
        idempotencyKey: request.idempotencyKey,
        callbackUrl: request.callbackUrl,
        redriveOf: request.redriveOf ?? null,
      },
      bounds,
      createdAt - IDEMPOTENCY_WINDOW_MS,
    );
    if (result.kind === "enqueued") worker.wake();
    return result;
  };

  const queue: JobQueue = {
    enqueue,
    async redrive(job, id) {
      const fn =
        job.version === null ? cluster.functions.get(job.functionName) : await cluster.functions.version(job.functionName, job.version);
      if (!fn) return { kind: "full", scope: "function" };
      return enqueue({
        id,
        fn,
        pinnedVersion: job.version,
        request: { method: job.method, path: job.path, url: job.url, headers: job.headers, body: job.body ?? Buffer.alloc(0) },
        idempotencyKey: null,
        callbackUrl: job.callbackUrl,
        redriveOf: job.id,
      });
    },
    callbackSecret,
    allowPrivateCallbacks: config.CALLBACK_ALLOW_PRIVATE === "1",
  };

  let pruneTimer: NodeJS.Timeout | null = null;
  const prune = async () => {
    if (config.LOG_RETENTION_DAYS <= 0) return;
    const before = now() - config.LOG_RETENTION_DAYS * 24 * 3600_000;
    await store.exclusively("job-retention", async () => {
      while ((await store.jobs.prune(before, 1000)) === 1000);
      await store.schedules.prune(before);
    });
  };

  return {
    queue,
    worker,
    scheduler,
    callbacks,
    async start() {
      const createdSecret = await callbackSecret.ensure();
      await worker.start();
      callbacks.start();
      if (deps.schedulerTimer !== false) scheduler.start();
      pruneTimer = setInterval(
        () => prune().catch((err: unknown) => log.warn({ err }, "job retention failed")),
        config.LOG_PRUNE_INTERVAL_MS,
      );
      pruneTimer.unref();
      return { createdSecret };
    },
    async stop() {
      if (pruneTimer) clearInterval(pruneTimer);
      await scheduler.stop();
      await Promise.all([worker.stop(), callbacks.stop()]);
    },
  };
}

import { FAILURE_HTTP_STATUS, type InvocationStatus } from "./statuses.js";

/**
 * Asynchronous invocations (jobs): their states and the policy that moves them, as pure functions
 * of what happened and the time given. The store keeps jobs and the worker runs them; neither
 * decides when to retry, how long to wait, or when a job is too old: this module does, so the two
 * engines and every gateway decide alike.
 */

/** queued → running → (retrying → running)* → succeeded | failed | expired; a queued or retrying job may be cancelled. */
export const JOB_STATES = ["queued", "running", "retrying", "succeeded", "failed", "expired", "cancelled"] as const;
export type JobState = (typeof JOB_STATES)[number];

/** States a job does not leave: what the dead-letter list and redrive look at. */
export const FINAL_JOB_STATES = ["succeeded", "failed", "expired", "cancelled"] as const satisfies readonly JobState[];
export type FinalJobState = (typeof FINAL_JOB_STATES)[number];
export const isFinal = (state: JobState): state is FinalJobState => (FINAL_JOB_STATES as readonly string[]).includes(state);

/** States in which a job holds its place in the queue (what ASYNC_QUEUE_MAX_JOBS and ASYNC_QUEUE_MAX_MB bound). */
export const PENDING_JOB_STATES = ["queued", "running", "retrying"] as const satisfies readonly JobState[];

/** What started a job: a request that asked for it, or a schedule's tick. */
export type JobTrigger = "async" | "schedule";

/** The bounds of the `retries` and `max_event_age_s` settings, and their defaults. */
export const RETRIES = { min: 0, max: 5, fallback: 2 } as const;
export const MAX_EVENT_AGE_S = { min: 60, max: 21_600, fallback: 21_600 } as const;

/** How long an Idempotency-Key names the job it first made. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3600_000;

/** The first retry's wait, and the cap of any wait. */
export const BACKOFF_BASE_MS = 1000;
export const BACKOFF_CAP_MS = 5 * 60_000;
/** Each wait is its nominal value times a factor drawn from [1 - JITTER, 1 + JITTER). */
export const BACKOFF_JITTER = 0.2;

/**
 * The wait before retry number `retry` (1 for the first retry): 1 s, 2 s, 4 s … capped at 5 min,
 * each spread by ±20% so that jobs failing together do not come back together. `random` is in [0, 1).
 */
export function backoffMs(retry: number, random: number): number {
  const nominal = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, retry - 1));
  return Math.round(nominal * (1 - BACKOFF_JITTER + 2 * BACKOFF_JITTER * random));
}

/** How an attempt ended, as the worker saw it: the log row's status and the answer's HTTP status. */
export interface AttemptOutcome {
  status: InvocationStatus;
  httpStatus: number | null;
}

/** Whether an attempt succeeded: the function ran and answered below 400. */
export const succeeded = (outcome: AttemptOutcome): boolean =>
  outcome.status === "ok" && outcome.httpStatus !== null && outcome.httpStatus < 400;

/**
 * Whether an attempt that did not succeed is worth another: a crash, a timeout, memory, a gateway
 * that stopped, and answers 5xx and 429 are; a refused system call (`forbidden`, it would be
 * refused again) and other 4xx answers (the request is wrong) are not.
 */
export function retryable(outcome: AttemptOutcome): boolean {
  if (succeeded(outcome)) return false;
  if (outcome.status === "forbidden") return false;
  if (outcome.status === "error" || outcome.status === "timeout" || outcome.status === "oom" || outcome.status === "interrupted")
    return true;
  const http = outcome.httpStatus ?? FAILURE_HTTP_STATUS.error;
  return http === 429 || http >= 500;
}

/** What the job's limits are: attempts in all (retries + 1) and the instant past which it is not run. */
export interface JobLimits {
  attempts: number;
  /** Attempts started so far (the one that just ended included). */
  attempt: number;
  /** Epoch ms: created + max_event_age_s. */
  expiresAt: number;
}

/** What follows an attempt. */
export type NextStep = { state: "succeeded" | "failed" | "expired" } | { state: "retrying"; runAt: number };

/** After an attempt: done, or another attempt at its backoff, or expired when that would be past the job's maximum age. */
export function nextStep(outcome: AttemptOutcome, limits: JobLimits, now: number, random: number): NextStep {
  if (succeeded(outcome)) return { state: "succeeded" };
  if (!retryable(outcome) || limits.attempt >= limits.attempts) return { state: "failed" };
  const runAt = now + backoffMs(limits.attempt, random);
  if (runAt > limits.expiresAt) return { state: "expired" };
  return { state: "retrying", runAt };
}

/** Whether a job taken from the queue runs, or ends: too old, or every attempt spent (by gateways that died running it). */
export function beforeAttempt(limits: JobLimits, now: number): { run: true } | { run: false; state: "expired" | "failed"; reason: string } {
  if (now > limits.expiresAt) {
    return { run: false, state: "expired", reason: "the job was older than the function's max_event_age_s before it could run" };
  }
  if (limits.attempt > limits.attempts) {
    return { run: false, state: "failed", reason: `every attempt (${limits.attempts}) was cut short by a gateway that stopped` };
  }
  return { run: true };
}

/** The queue's bounds, from the configuration. */
export interface QueueLimits {
  maxJobs: number;
  maxBytes: number;
  /** The share one function may hold of each, in percent. */
  functionSharePercent: number;
}

/** The per-function bounds that follow from the queue's. */
export function functionShare(limits: QueueLimits): { maxJobs: number; maxBytes: number } {
  return {
    maxJobs: Math.max(1, Math.floor((limits.maxJobs * limits.functionSharePercent) / 100)),
    maxBytes: Math.max(1, Math.floor((limits.maxBytes * limits.functionSharePercent) / 100)),
  };
}

/** A queued request's size as the queue counts it: its body, and its headers, method and path as stored. */
export function requestSize(request: { method: string; path: string; url: string; headers: [string, string][]; body: Uint8Array }): number {
  let bytes =
    request.body.byteLength + Buffer.byteLength(request.method) + Buffer.byteLength(request.path) + Buffer.byteLength(request.url);
  for (const [name, value] of request.headers) bytes += Buffer.byteLength(name) + Buffer.byteLength(value) + 4;
  return bytes;
}

/** Request headers a queued job does not keep: credentials are not stored, and the gateway sets its own. */
export const UNSTORED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  "authorization",
  "cookie",
  "proxy-authorization",
  "prefer",
  "idempotency-key",
  "x-callback-url",
  "x-invocation-id",
  "x-fngw-attempt",
  "x-fngw-scheduled-time",
  "content-length",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "upgrade",
]);

/** Whether a Prefer header (RFC 7240) asks for an asynchronous answer. */
export function prefersAsync(prefer: string | null | undefined): boolean {
  if (!prefer) return false;
  return prefer.split(",").some((preference) => preference.split(";")[0]!.trim().toLowerCase() === "respond-async");
}

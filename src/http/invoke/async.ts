import type { Context } from "hono";
import type { Config } from "../../core/config.js";
import { UNSTORED_REQUEST_HEADERS } from "../../core/jobs.js";
import { log } from "../../core/log.js";
import { CallbackUrlError, checkCallbackUrl, type JobQueue } from "../../jobs/index.js";
import type { FunctionVersion, JobRecord } from "../../store/contract.js";
import type { InvocationLogWriter } from "../../store/log-writer.js";
import type { ReadingLimit } from "../admission.js";
import { declaresBody, incomingOf, readBodyWithin } from "../body.js";
import { ApiError } from "../errors.js";
import type { GatewayMetrics } from "../metrics.js";
import { INVOCATION_ID_HEADER, type InvocationIdEnv } from "../middleware/invocation-id.js";
import { type Outcome, rejected } from "./outcome.js";
import { functionUrl, type InvocationTarget } from "./target.js";

/**
 * `Prefer: respond-async` on /fn: the request is stored as a job and answered 202 once the job is
 * committed, with its id and where to follow it. Nothing of a refused request is stored; refusals
 * past the body's or the queue's bounds get a `rejected` log row, as synchronous ones do.
 */

export interface AsyncDeps {
  config: Config;
  jobs: JobQueue;
  log: InvocationLogWriter;
  reading: ReadingLimit;
  metrics?: GatewayMetrics;
  prefix?: string;
  /** Whether an error means the database cannot be reached now (store.unavailable). */
  unavailable: (error: unknown) => boolean;
}

/** Seconds a caller refused for a full queue, or an unreachable database, is told to wait. */
const QUEUE_RETRY_AFTER_SECONDS = 5;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

export async function enqueueAsync(
  deps: AsyncDeps,
  c: Context<InvocationIdEnv>,
  fn: FunctionVersion,
  target: InvocationTarget,
): Promise<Response> {
  const { config } = deps;
  const id = c.get("invocationId");
  const idempotencyKey = c.req.header("idempotency-key") ?? null;
  if (idempotencyKey !== null && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
    throw new ApiError(400, "invalid_request", "Idempotency-Key must be 1 to 255 visible ASCII characters");
  }
  const callbackText = c.req.header("x-callback-url") ?? null;
  let callbackUrl: string | null = null;
  if (callbackText !== null) {
    try {
      callbackUrl = (await checkCallbackUrl(callbackText, deps.jobs.allowPrivateCallbacks)).url.href;
    } catch (err) {
      if (err instanceof CallbackUrlError) throw new ApiError(400, "invalid_callback_url", err.message);
      throw err;
    }
  }

  /** Logs a refusal (a `rejected` row, trigger async) and answers it. */
  const refuse = async (outcome: Outcome) => {
    c.set("invocationLogged", true);
    try {
      await deps.log.start({
        id,
        functionName: fn.name,
        version: fn.version,
        requestBytes: 0,
        method: c.req.method,
        path: target.path,
        trigger: "async",
      });
      await deps.log.finish(id, outcome.end);
    } catch (err) {
      log.error({ err, invocation_id: id }, `invocation ${id} could not be logged: ${(err as Error).message}`);
    }
    return outcome.response;
  };

  let body: Buffer = Buffer.alloc(0);
  if (declaresBody(c.req.raw, incomingOf(c))) {
    const stopReading = deps.reading.enter();
    if (!stopReading) {
      const message = `${config.MAX_READING_REQUESTS} request bodies are being received (MAX_READING_REQUESTS); retry later`;
      return refuse(rejected(429, "rejected", message, id, { "Retry-After": "1", Connection: "close" }));
    }
    let read: Awaited<ReturnType<typeof readBodyWithin>>;
    try {
      read = await readBodyWithin(
        c.req.raw,
        { maxBytes: config.ASYNC_MAX_BODY_BYTES, timeoutMs: config.BODY_READ_TIMEOUT_MS },
        incomingOf(c),
      );
    } finally {
      stopReading();
    }
    if ("timedOut" in read) {
      const message = `the request body did not arrive within ${config.BODY_READ_TIMEOUT_MS} ms (BODY_READ_TIMEOUT_MS)`;
      return refuse(rejected(408, "request_timeout", message, id, { Connection: "close" }));
    }
    if ("tooLarge" in read) {
      const message = `the request body exceeds ${config.ASYNC_MAX_BODY_BYTES} bytes (ASYNC_MAX_BODY_BYTES, the bound of an asynchronous request)`;
      return refuse(rejected(413, "payload_too_large", message, id, read.keepAlive ? {} : { Connection: "close" }));
    }
    body = read.body;
  }

  const headers: [string, string][] = [];
  for (const [name, value] of c.req.raw.headers) if (!UNSTORED_REQUEST_HEADERS.has(name)) headers.push([name, value]);
  let result: Awaited<ReturnType<JobQueue["enqueue"]>>;
  try {
    result = await deps.jobs.enqueue({
      id,
      fn,
      pinnedVersion: target.version,
      request: { method: c.req.method, path: target.path, url: functionUrl(c.req.url, deps.prefix), headers, body },
      idempotencyKey,
      callbackUrl,
    });
  } catch (err) {
    if (!deps.unavailable(err)) throw err;
    const message = "the database is unreachable: an asynchronous invocation cannot be stored now; retry later";
    return refuse(rejected(503, "database_unavailable", message, id, { "Retry-After": String(QUEUE_RETRY_AFTER_SECONDS) }));
  }
  if (result.kind === "full") {
    deps.metrics?.rejected("saturated");
    const message =
      result.scope === "function"
        ? `'${fn.name}' holds its share of the job queue (ASYNC_QUEUE_FUNCTION_SHARE of ASYNC_QUEUE_MAX_JOBS, ASYNC_QUEUE_MAX_MB); retry later`
        : "the job queue is full (ASYNC_QUEUE_MAX_JOBS, ASYNC_QUEUE_MAX_MB); retry later";
    return refuse(rejected(429, "queue_full", message, id, { "Retry-After": String(QUEUE_RETRY_AFTER_SECONDS) }));
  }
  return accepted(result.job, result.kind === "existing");
}

/** What a 202 for a job says: where to follow it (the body), and the headers that carry the same. */
export function acceptance(job: JobRecord): {
  body: { id: string; state: JobRecord["state"]; location: string };
  headers: Record<string, string>;
} {
  const location = `/api/invocations/${job.id}`;
  return {
    body: { id: job.id, state: job.state, location },
    headers: { Location: location, "Preference-Applied": "respond-async", [INVOCATION_ID_HEADER]: job.id },
  };
}

/** The 202 for a job. */
function accepted(job: JobRecord, replayed = false): Response {
  const { body, headers } = acceptance(job);
  const extra: Record<string, string> = replayed ? { "Idempotent-Replayed": "true" } : {};
  return new Response(JSON.stringify(body), { status: 202, headers: { ...headers, ...extra, "content-type": "application/json" } });
}

import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { v7 as uuidv7 } from "uuid";
import { isFinal, JOB_STATES } from "../../core/jobs.js";
import type { JobQueue } from "../../jobs/index.js";
import type { InvocationRecords, JobRecord, JobRecords } from "../../store/contract.js";
import { ApiError, ErrorSchema, notFoundError, validationHook } from "../errors.js";
import { acceptance } from "../invoke/async.js";
import { FunctionNameSchema, isoTime, json, operation, requires } from "../schemas.js";
import { InvocationSchema, invocationJson } from "./invocation-schemas.js";

// Asynchronous invocations: a job as GET /api/invocations/:id shows it, its cancel and redrive,
// the list of jobs (the dead letters: ?state=failed), and the callback secret's rotation.

const isoOrNull = (ms: number | null) => (ms === null ? null : isoTime(ms));

export const JobSchema = z
  .object({
    id: z.string().openapi({ description: "The job's id: the X-Invocation-Id of its 202, on every attempt" }),
    kind: z.literal("job"),
    function: FunctionNameSchema,
    version: z
      .number()
      .int()
      .nullable()
      .openapi({ description: "The version asked for (/fn/name@N); null: the current one at each attempt" }),
    trigger: z.enum(["async", "schedule"]),
    state: z.enum(JOB_STATES),
    attempt_count: z.number().int().openapi({ description: "Attempts started" }),
    max_attempts: z.number().int().openapi({ description: "retries + 1, as the function's version set them at enqueue" }),
    created_at: z.string(),
    expires_at: z.string().openapi({ description: "Past this instant (max_event_age_s after creation) the job is not run" }),
    next_attempt_at: z.string().nullable().openapi({ description: "When a queued or retrying job is due" }),
    finished_at: z.string().nullable(),
    scheduled_at: z.string().nullable().openapi({ description: "The schedule tick a scheduled job runs for" }),
    redrive_of: z.string().nullable().openapi({ description: "The job this one runs again" }),
    last_error: z.string().nullable(),
    result: z
      .object({
        status: z.number().int().openapi({ description: "The HTTP status of the final answer" }),
        headers: z.array(z.tuple([z.string(), z.string()])),
        body: z.string(),
        body_encoding: z.enum(["utf8", "base64"]),
        truncated: z.boolean().openapi({ description: "Whether the body was cut at ASYNC_RESULT_MAX_BYTES" }),
      })
      .nullable()
      .openapi({ description: "The final answer (the function's, or the gateway's error for a failed run); null until the job ends" }),
    attempts: z.array(InvocationSchema).openapi({ description: "Each attempt's log row, oldest first" }),
    callback: z
      .object({
        url: z.string(),
        state: z.enum(["waiting", "pending", "delivered", "failed"]).openapi({
          description: "waiting: the job has not ended; pending: delivery due or being retried",
        }),
        deliveries: z.array(
          z.object({
            attempt: z.number().int(),
            at: z.string(),
            duration_ms: z.number(),
            status: z.number().int().nullable().openapi({ description: "The receiver's HTTP status; null when none came" }),
            error: z.string().nullable(),
          }),
        ),
      })
      .nullable(),
  })
  .openapi("Job");

export const JobSummarySchema = JobSchema.omit({ result: true, attempts: true, callback: true })
  .extend({ callback_state: z.enum(["waiting", "pending", "delivered", "failed"]).nullable() })
  .openapi("JobSummary");

function summaryJson(job: JobRecord): z.infer<typeof JobSummarySchema> {
  return {
    id: job.id,
    kind: "job",
    function: job.functionName,
    version: job.version,
    trigger: job.trigger,
    state: job.state,
    attempt_count: job.attempts,
    max_attempts: job.maxAttempts,
    created_at: isoTime(job.createdAt),
    expires_at: isoTime(job.expiresAt),
    next_attempt_at: job.state === "queued" || job.state === "retrying" ? isoTime(job.runAt) : null,
    finished_at: isoOrNull(job.finishedAt),
    scheduled_at: isoOrNull(job.scheduledAt),
    redrive_of: job.redriveOf,
    last_error: job.lastError,
    callback_state: job.callbackUrl === null ? null : (job.callbackState ?? "waiting"),
  };
}

/** A job as GET /api/invocations/:id shows it: its state, each attempt's row, its answer and its callback's deliveries. */
export async function jobJson(
  job: JobRecord,
  deps: { jobs: JobRecords; invocations: InvocationRecords },
): Promise<z.infer<typeof JobSchema>> {
  const [page, deliveries] = await Promise.all([
    deps.invocations.list({ jobId: job.id, limit: 100 }),
    job.callbackUrl === null ? Promise.resolve([]) : deps.jobs.deliveries(job.id),
  ]);
  const body = job.resultBody ?? Buffer.alloc(0);
  const utf8 = Buffer.from(body.toString("utf8")).equals(body);
  const { callback_state, ...summary } = summaryJson(job);
  return {
    ...summary,
    result:
      job.resultHttpStatus === null
        ? null
        : {
            status: job.resultHttpStatus,
            headers: job.resultHeaders ?? [],
            body: body.toString(utf8 ? "utf8" : "base64"),
            body_encoding: utf8 ? "utf8" : "base64",
            truncated: job.resultTruncated,
          },
    attempts: page.items.map(invocationJson).reverse(),
    callback:
      job.callbackUrl === null
        ? null
        : {
            url: job.callbackUrl,
            state: callback_state ?? "waiting",
            deliveries: deliveries.map((d) => ({
              attempt: d.attempt,
              at: isoTime(d.at),
              duration_ms: d.durationMs,
              status: d.httpStatus,
              error: d.error,
            })),
          },
  };
}

const IdParams = z.object({
  id: z
    .string()
    .max(64)
    .openapi({ param: { name: "id", in: "path" } }),
});

export interface JobsApiDeps {
  jobs: JobRecords;
  invocations: InvocationRecords;
  queue: JobQueue;
  now?: () => number;
  newId?: () => string;
}

/** DELETE /api/invocations/:id (cancel) and POST /api/invocations/:id/retry (redrive), mounted at /api/invocations. */
export function jobActionsApi(deps: JobsApiDeps) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  const now = deps.now ?? Date.now;
  const newId = deps.newId ?? uuidv7;
  const unknownJob = (id: string) => notFoundError(`no asynchronous invocation with id '${id}'`);

  app.openapi(
    createRoute({
      method: "delete",
      path: "/{id}",
      ...operation("jobs", "cancelJob"),
      summary: "Cancel a queued (or retrying) asynchronous invocation; one that runs or has ended is left as it is",
      ...requires("deploy"),
      request: { params: IdParams },
      responses: {
        200: json(JobSchema, "The job, cancelled"),
        401: json(ErrorSchema, "Missing or wrong token"),
        404: json(ErrorSchema, "No such job"),
        409: json(ErrorSchema, "The job is running or has ended"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const cancel = await deps.jobs.cancel(id, now());
      if (!cancel) throw unknownJob(id);
      const { job } = cancel;
      if (!cancel.cancelled)
        throw new ApiError(409, "conflict", `job '${id}' is ${job.state}: only a queued or retrying job can be cancelled`);
      return c.json(await jobJson(job, deps), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/{id}/retry",
      ...operation("jobs", "retryJob"),
      summary: "Run an ended asynchronous invocation again, as a new job (its request, version and callback URL)",
      ...requires("deploy"),
      request: { params: IdParams },
      responses: {
        202: {
          ...json(z.object({ id: z.string(), state: z.enum(JOB_STATES), location: z.string() }), "The new job, queued"),
          headers: z.object({ Location: z.string(), "X-Invocation-Id": z.string() }),
        },
        401: json(ErrorSchema, "Missing or wrong token"),
        404: json(ErrorSchema, "No such job, or its function is gone"),
        409: json(ErrorSchema, "The job has not ended, or it succeeded (its request is not kept)"),
        429: json(ErrorSchema, "The queue is full"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const job = await deps.jobs.get(id);
      if (!job) throw unknownJob(id);
      if (!isFinal(job.state)) throw new ApiError(409, "conflict", `job '${id}' is ${job.state}: only an ended job can be run again`);
      if (job.body === null) throw new ApiError(409, "conflict", `job '${id}' succeeded: its request is not kept`);
      const result = await deps.queue.redrive(job, newId());
      if (result.kind === "full")
        throw new ApiError(429, "queue_full", "the job queue (or the function's share) is full, or the function is gone; retry later", {
          "Retry-After": "5",
        });
      const { body, headers } = acceptance(result.job);
      for (const [name, value] of Object.entries(headers)) c.header(name, value);
      return c.json(body, 202);
    },
  );
  return app;
}

const ListQuery = z.object({
  state: z.enum(JOB_STATES).optional().openapi({ description: "failed and expired: the dead letters" }),
  function: FunctionNameSchema.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(200).optional().openapi({ description: "next_cursor of the previous page" }),
});

const encodeCursor = (job: { createdAt: number; id: string }) => Buffer.from(`${job.createdAt}:${job.id}`).toString("base64url");
function decodeCursor(text: string): { createdAt: number; id: string } | null {
  const [createdAt, id] = Buffer.from(text, "base64url").toString("utf8").split(":", 2);
  return /^\d{1,16}$/.test(createdAt ?? "") && id ? { createdAt: Number(createdAt), id } : null;
}

/** GET /api/jobs: asynchronous invocations, newest first, by state (the dead letters: failed, expired). */
export function jobsApi(deps: { jobs: JobRecords; queue: JobQueue }) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: "get",
      path: "/",
      ...operation("jobs", "listJobs"),
      summary: "Asynchronous invocations, newest first; ?state=failed (or expired) lists the dead letters",
      ...requires("logs:read"),
      request: { query: ListQuery },
      responses: {
        200: json(z.object({ items: z.array(JobSummarySchema), next_cursor: z.string().nullable() }), "A page of jobs"),
        400: json(ErrorSchema, "Invalid filter"),
        401: json(ErrorSchema, "Missing or wrong token"),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const before = query.cursor ? decodeCursor(query.cursor) : undefined;
      if (before === null) throw new ApiError(400, "invalid_request", "cursor: not a cursor this API returned");
      const rows = await deps.jobs.list({ state: query.state, functionName: query.function, before, limit: query.limit + 1 });
      const items = rows.slice(0, query.limit);
      const last = items.at(-1);
      return c.json({ items: items.map(summaryJson), next_cursor: rows.length > query.limit && last ? encodeCursor(last) : null }, 200);
    },
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/callback-secret",
      ...operation("jobs", "rotateCallbackSecret"),
      summary: "A new secret for callback signatures (X-Fngw-Signature), shown this once; every gateway signs with it from now on",
      ...requires("admin"),
      responses: {
        201: json(z.object({ secret: z.string().openapi({ example: "whsec_…" }) }), "The new secret"),
        401: json(ErrorSchema, "Missing or wrong token"),
        403: json(ErrorSchema, "The token is not admin"),
      },
    }),
    async (c) => c.json({ secret: await deps.queue.callbackSecret.rotate() }, 201),
  );
  return app;
}

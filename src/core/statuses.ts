/**
 * How an invocation can end, and what each end answers over HTTP. Everything that names a
 * status (the log's column, the runner's result, the API's filters and stats) derives from here.
 */

/**
 * Ends the runner decides: the function ran (or was cut short while running). `client_closed`: the
 * client went away while the answer was being streamed to it, and the function was stopped.
 */
export const RUN_STATUSES = ["ok", "error", "timeout", "oom", "forbidden", "interrupted", "client_closed"] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/**
 * Every status a log row can have. `running` is written before the runner starts, so a crash
 * leaves evidence (start-up turns leftovers into `interrupted`); `rejected` is the gateway's own
 * refusal (saturated, body too large), decided before a run.
 */
export const INVOCATION_STATUSES = ["running", ...RUN_STATUSES, "rejected"] as const;
export type InvocationStatus = (typeof INVOCATION_STATUSES)[number];
export type EndStatus = Exclude<InvocationStatus, "running">;

/**
 * The HTTP status each failed run answers with. A client that closed has no one left to answer:
 * its row records 499 (nginx's "client closed request") unless a streamed answer's head went out.
 */
export const FAILURE_HTTP_STATUS = {
  error: 500,
  timeout: 504,
  oom: 500,
  forbidden: 500,
  interrupted: 503,
  client_closed: 499,
} as const satisfies Record<Exclude<RunStatus, "ok">, number>;

/** Runs whose duration is the function's own: the ones percentiles are taken over. */
export const TIMED_STATUSES = ["ok", "error", "timeout", "oom", "forbidden"] as const satisfies readonly RunStatus[];

/** Runs that answered 500: what the stats call `errors`. */
export const ERROR_STATUSES = (Object.keys(FAILURE_HTTP_STATUS) as (keyof typeof FAILURE_HTTP_STATUS)[]).filter(
  (status) => FAILURE_HTTP_STATUS[status] === 500,
);

import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { ERROR_STATUSES, INVOCATION_STATUSES } from "../../core/statuses.js";
import type { FunctionStore } from "../../db/functions.js";
import type { InvocationLog } from "../../db/invocations.js";
import { ApiError, ErrorSchema, notFoundError, validationHook } from "../errors.js";
import { FunctionNameSchema, isoTime, json, NameParamSchema, operation, requires } from "../schemas.js";

const MAX_WINDOW_MS = 90 * 24 * 3600_000;

const StatsSchema = z
  .object({
    function: FunctionNameSchema,
    window: z.string().openapi({ example: "24h" }),
    since: z.string(),
    until: z.string(),
    count: z.number().int(),
    errors: z
      .number()
      .int()
      .openapi({ description: `Invocations that answered 500: status ${ERROR_STATUSES.join(", ")}` }),
    timeouts: z.number().int(),
    by_status: z.record(z.enum(INVOCATION_STATUSES), z.number().int()),
    p50: z.number().nullable().openapi({ description: "Median duration in ms (as duration_ms.p50)" }),
    p95: z.number().nullable(),
    p99: z.number().nullable(),
    duration_ms: z
      .object({
        p50: z.number().nullable(),
        p95: z.number().nullable(),
        p99: z.number().nullable(),
        max: z.number().nullable(),
        mean: z.number().nullable(),
      })
      .openapi({ description: "Nearest-rank percentiles over invocations that ran (not rejected or interrupted)" }),
  })
  .openapi("FunctionStats");

/** `<n>m`, `<n>h` or `<n>d`, from one minute to 90 days. */
export function parseWindow(text: string): number | null {
  const match = /^([1-9]\d{0,5})([mhd])$/.exec(text);
  if (!match) return null;
  const unit = { m: 60_000, h: 3600_000, d: 24 * 3600_000 }[match[2] as "m" | "h" | "d"];
  const ms = Number(match[1]) * unit;
  return ms <= MAX_WINDOW_MS ? ms : null;
}

/** Per-function stats over a window, mounted at /api/functions. */
export function statsApi(deps: { functions: FunctionStore; invocations: InvocationLog; now?: () => number }) {
  const { functions, invocations } = deps;
  const now = deps.now ?? Date.now;
  const app = new OpenAPIHono({ defaultHook: validationHook });

  app.openapi(
    createRoute({
      method: "get",
      path: "/{name}/stats",
      ...operation("invocations", "getFunctionStats"),
      summary: "Counts by status and duration percentiles over a window",
      ...requires("logs:read"),
      request: {
        params: NameParamSchema,
        query: z.object({
          window: z
            .string()
            .regex(/^[1-9]\d*[mhd]$/, "must be <n>m, <n>h or <n>d")
            .default("24h")
            .refine((text) => parseWindow(text) !== null, { message: "must be <n>m, <n>h or <n>d, at most 90d (e.g. 1h, 24h, 7d)" })
            .openapi({ example: "24h" }),
        }),
      },
      responses: {
        200: json(StatsSchema, "Stats over [now - window, now)"),
        400: json(ErrorSchema, "Invalid window"),
        401: json(ErrorSchema, "Missing or wrong token"),
        404: json(ErrorSchema, "Neither a function nor anything in the log by that name"),
      },
    }),
    async (c) => {
      const { name } = c.req.valid("param");
      const { window } = c.req.valid("query");
      const windowMs = parseWindow(window);
      if (windowMs === null) throw new ApiError(400, "invalid_request", "window: invalid");
      // A deleted function's log stays queryable, so its stats do too.
      if (!functions.get(name) && !invocations.hasFunction(name)) throw notFoundError(`no function named '${name}'`);
      // `until` is exclusive; +1 includes an invocation that started in this very millisecond.
      const until = now() + 1;
      const since = until - windowMs;
      const stats = await invocations.stats(name, since, until);
      const s = stats.byStatus;
      return c.json(
        {
          function: name,
          window,
          since: isoTime(since),
          until: isoTime(until),
          count: stats.count,
          errors: ERROR_STATUSES.reduce((sum, status) => sum + s[status], 0),
          timeouts: s.timeout,
          by_status: stats.byStatus,
          p50: stats.durationMs.p50,
          p95: stats.durationMs.p95,
          p99: stats.durationMs.p99,
          duration_ms: stats.durationMs,
        },
        200,
      );
    },
  );

  return app;
}

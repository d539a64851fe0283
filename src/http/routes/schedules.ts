import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { FunctionCatalog } from "../../cluster/functions.js";
import { JOB_STATES } from "../../core/jobs.js";
import { nextTicks, OVERLAPS, scheduleKey, TICK_OUTCOMES } from "../../core/schedules.js";
import type { ScheduleRecords } from "../../store/contract.js";
import { ErrorSchema, notFoundError, validationHook } from "../errors.js";
import { FunctionNameSchema, isoTime, json, NameParamSchema, operation, requires } from "../schemas.js";

/** Upcoming times shown per schedule, and past ticks. */
const NEXT_SHOWN = 5;
const RECENT_SHOWN = 20;

const ScheduleStatusSchema = z
  .object({
    cron: z.string(),
    timezone: z.string(),
    enabled: z.boolean(),
    overlap: z.enum(OVERLAPS),
    next: z.array(z.string()).openapi({ description: `The next ${NEXT_SHOWN} ticks (UTC); empty when disabled` }),
    recent: z
      .array(
        z.object({
          tick_at: z.string(),
          outcome: z.enum(TICK_OUTCOMES).openapi({
            description:
              "enqueued: a job runs it; skipped: the previous run still ran (overlap skip); missed: no gateway ran then and it was not the one caught up; refused: the queue was full",
          }),
          job_id: z.string().nullable(),
          job_state: z.enum(JOB_STATES).nullable(),
          node: z.string().openapi({ description: "The gateway that claimed the tick" }),
        }),
      )
      .openapi({ description: `The last ${RECENT_SHOWN} ticks, newest first` }),
  })
  .openapi("ScheduleStatus");

/** GET /api/functions/:name/schedules, mounted at /api/functions. */
export function schedulesApi(deps: { functions: FunctionCatalog; schedules: ScheduleRecords; now?: () => number }) {
  const now = deps.now ?? Date.now;
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: "get",
      path: "/{name}/schedules",
      ...operation("functions", "listSchedules"),
      summary: "The current version's schedules: each one's next five times and its last twenty ticks with their outcomes",
      ...requires("deploy"),
      request: { params: NameParamSchema },
      responses: {
        200: json(z.object({ name: FunctionNameSchema, items: z.array(ScheduleStatusSchema) }), "The schedules"),
        401: json(ErrorSchema, "Missing or wrong token"),
        404: json(ErrorSchema, "No such function"),
      },
    }),
    async (c) => {
      const { name } = c.req.valid("param");
      const fn = deps.functions.get(name);
      if (!fn) throw notFoundError(`no function named '${name}'`);
      const ticks = await deps.schedules.recent(name, RECENT_SHOWN * Math.max(1, fn.schedules.length));
      const at = now();
      const items = fn.schedules.map((schedule) => {
        const key = scheduleKey(schedule);
        return {
          cron: schedule.cron,
          timezone: schedule.timezone,
          enabled: schedule.enabled,
          overlap: schedule.overlap,
          next: schedule.enabled ? nextTicks(schedule, at, NEXT_SHOWN).map(isoTime) : [],
          recent: ticks
            .filter((tick) => tick.scheduleKey === key)
            .slice(0, RECENT_SHOWN)
            .map((tick) => ({
              tick_at: isoTime(tick.tickAt),
              outcome: tick.outcome,
              job_id: tick.jobId,
              job_state: tick.jobState ?? null,
              node: tick.node,
            })),
        };
      });
      return c.json({ name, items }, 200);
    },
  );
  return app;
}

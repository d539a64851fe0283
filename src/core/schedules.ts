import crypto from "node:crypto";
import { z } from "@hono/zod-openapi";
import { Cron } from "croner";

/**
 * Schedules: the `schedules` setting's shape, and the rules that decide which tick is due and what
 * becomes of ticks missed while no gateway ran, as pure functions of the time given (the
 * scheduler passes its clock; tests pass theirs). Cron expressions are croner's: five fields, or
 * six with seconds first, in an IANA time zone (UTC unless given), correct across daylight-saving
 * changes.
 */

export const OVERLAPS = ["skip", "allow"] as const;
export type Overlap = (typeof OVERLAPS)[number];

/** Schedules one function version may have. */
export const MAX_SCHEDULES = 10;
/** Bytes of a schedule's body. */
export const MAX_SCHEDULE_BODY_BYTES = 64 * 1024;

export interface Schedule {
  cron: string;
  timezone: string;
  /** Sent as the POST body of each run: a string as text/plain, anything else as JSON; none: empty. */
  body?: unknown;
  enabled: boolean;
  overlap: Overlap;
}

/** What a tick became. `enqueued`: a job runs it; `skipped`: the previous run still ran (overlap skip); `missed`: no gateway ran at the time and it was not the one caught up; `refused`: the queue was full. */
export const TICK_OUTCOMES = ["enqueued", "skipped", "missed", "refused"] as const;
export type TickOutcome = (typeof TICK_OUTCOMES)[number];

/** The croner pattern of a schedule (paused: it only computes times, it runs nothing). */
function pattern(cron: string, timezone: string): Cron {
  return new Cron(cron, { timezone, paused: true, mode: "5-or-6-parts" });
}

/** Why an expression cannot be used, or null. */
export function cronProblem(cron: string, timezone = "UTC"): string | null {
  try {
    const parsed = pattern(cron, timezone);
    if (parsed.nextRun(new Date(0)) === null) return `'${cron}' never fires`;
    return null;
  } catch (err) {
    return `'${cron}' is not a valid cron expression: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** Whether `zone` is an IANA time zone this runtime knows. */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return zone.length > 0;
  } catch {
    return false;
  }
}

export const ScheduleSchema = z
  .strictObject({
    cron: z.string().min(1).max(200).openapi({
      example: "*/5 * * * *",
      description: "A cron expression: five fields (minute first), or six with seconds first",
    }),
    timezone: z
      .string()
      .max(64)
      .refine(isTimeZone, { message: "must be an IANA time zone such as Europe/Berlin or UTC" })
      .default("UTC")
      .openapi({ example: "Europe/Berlin", description: "IANA time zone the expression is read in (default UTC)" }),
    body: z
      .unknown()
      .optional()
      .refine(
        (body) =>
          body === undefined || Buffer.byteLength(typeof body === "string" ? body : JSON.stringify(body)) <= MAX_SCHEDULE_BODY_BYTES,
        {
          message: `must be at most ${MAX_SCHEDULE_BODY_BYTES} bytes`,
        },
      )
      .openapi({ description: "The body of each run's POST: a string is sent as text/plain, anything else as JSON" }),
    enabled: z.boolean().default(true).openapi({ description: "Default true" }),
    overlap: z.enum(OVERLAPS).default("skip").openapi({
      description: "skip (default): a tick while the previous run of this schedule still runs is recorded as skipped; allow: it runs too",
    }),
  })
  .superRefine((schedule, ctx) => {
    const problem = cronProblem(schedule.cron, isTimeZone(schedule.timezone) ? schedule.timezone : "UTC");
    if (problem) ctx.addIssue({ code: "custom", path: ["cron"], message: problem });
  });

export const SchedulesSchema = z
  .array(ScheduleSchema)
  .max(MAX_SCHEDULES)
  .superRefine((schedules, ctx) => {
    const seen = new Set<string>();
    schedules.forEach((schedule, index) => {
      const key = scheduleKey(schedule);
      if (seen.has(key)) {
        ctx.addIssue({ code: "custom", path: [index], message: `'${schedule.cron}' in ${schedule.timezone} is listed twice` });
      }
      seen.add(key);
    });
  })
  .openapi({
    description:
      "Cron schedules: each tick enqueues one asynchronous invocation (POST /, trigger schedule), exactly one across all gateways. Default []",
  });

/** A schedule's identity across versions: its expression and zone (the body and flags may change without it becoming another). */
export function scheduleKey(schedule: Pick<Schedule, "cron" | "timezone">): string {
  return crypto.createHash("sha256").update(`${schedule.cron}\0${schedule.timezone}`).digest("hex").slice(0, 16);
}

/** The next `count` ticks strictly after `after` (epoch ms). */
export function nextTicks(schedule: Pick<Schedule, "cron" | "timezone">, after: number, count: number): number[] {
  return pattern(schedule.cron, schedule.timezone)
    .nextRuns(count, new Date(after))
    .map((date) => date.getTime());
}

/** The ticks in (after, through], oldest first, at most `limit` of the newest (older ones are counted, not listed). */
export function ticksBetween(
  schedule: Pick<Schedule, "cron" | "timezone">,
  after: number,
  through: number,
  limit: number,
): { ticks: number[]; uncounted: number } {
  const cron = pattern(schedule.cron, schedule.timezone);
  const ticks: number[] = [];
  let uncounted = 0;
  for (let next = cron.nextRun(new Date(after)); next !== null && next.getTime() <= through; next = cron.nextRun(next)) {
    ticks.push(next.getTime());
    if (ticks.length > limit) {
      ticks.shift();
      uncounted++;
    }
  }
  return { ticks, uncounted };
}

/** Ticks missed that are recorded one by one (the API shows the last twenty); older ones are only counted in the log. */
export const MISSED_TICKS_RECORDED = 20;

/** A tick this young when first seen is late, not missed: it runs (a slow event loop, a gateway starting). */
export const LATE_GRACE_MS = 10_000;

/**
 * What to do with the ticks due now: `since` is the newest tick already claimed (or when the
 * schedule came into force), `now` the clock. Ticks due within LATE_GRACE_MS run (the usual case:
 * one). Older ones were missed while no gateway ran: if no recent tick runs, the newest of them
 * runs once as a catch-up when it is within the maximum event age; the rest are recorded as missed.
 */
export function dueTicks(
  schedule: Pick<Schedule, "cron" | "timezone">,
  since: number,
  now: number,
  maxAgeMs: number,
): { run: number[]; missed: number[]; uncounted: number } {
  const { ticks, uncounted } = ticksBetween(schedule, since, now, MISSED_TICKS_RECORDED + 1);
  const recent = ticks.filter((tick) => now - tick <= LATE_GRACE_MS);
  const old = ticks.filter((tick) => now - tick > LATE_GRACE_MS);
  if (recent.length > 0 || old.length === 0) return { run: recent, missed: old, uncounted };
  const newest = old.at(-1)!;
  if (now - newest <= maxAgeMs) return { run: [newest], missed: old.slice(0, -1), uncounted };
  return { run: [], missed: old, uncounted };
}

/** A schedule's request body and content type. */
export function scheduleBody(schedule: Pick<Schedule, "body">): { body: Buffer; contentType: string | null } {
  if (schedule.body === undefined) return { body: Buffer.alloc(0), contentType: null };
  if (typeof schedule.body === "string") return { body: Buffer.from(schedule.body), contentType: "text/plain; charset=utf-8" };
  return { body: Buffer.from(JSON.stringify(schedule.body)), contentType: "application/json" };
}

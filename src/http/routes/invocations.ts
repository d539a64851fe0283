import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { INVOCATION_STATUSES } from "../../core/statuses.js";
import type { InvocationRecords, JobRecords } from "../../store/contract.js";
import { ApiError, ErrorSchema, notFoundError, validationHook } from "../errors.js";
import { FunctionNameSchema, json, operation, requires } from "../schemas.js";
import { InvocationDetailSchema, InvocationSchema, invocationJson } from "./invocation-schemas.js";
import { JobSchema, jobJson } from "./jobs.js";

export const MAX_PAGE = 500;
export const DEFAULT_PAGE = 50;

/** A date (`2025-01-31`, UTC midnight) or a date-time with `Z` or an offset; local times are ambiguous, so refused. */
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/i;
const isoInstant = (description: string) =>
  z
    .string()
    .refine((text) => ISO_INSTANT.test(text) && isCalendarDate(text.slice(0, 10)) && !Number.isNaN(Date.parse(text)), {
      message: "must be an ISO 8601 date or date-time with a zone, e.g. 2025-01-31T12:00:00Z",
    })
    .transform((text) => Date.parse(text))
    .openapi({ type: "string", description, example: "2025-01-31T12:00:00Z" });

/** Date.parse rolls 2020-02-30 over to March; a date that does not exist is refused instead. */
function isCalendarDate(date: string): boolean {
  const [year, month, day] = date.split("-").map(Number) as [number, number, number];
  const parsed = new Date(Date.UTC(year, month - 1, day));
  return parsed.getUTCFullYear() === year && parsed.getUTCMonth() === month - 1 && parsed.getUTCDate() === day;
}

/** Cursors are opaque to clients: base64url of the row key they continue after. */
export const encodeCursor = (seq: number) => Buffer.from(String(seq)).toString("base64url");
export function decodeCursor(cursor: string): number | null {
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  if (!/^[1-9]\d{0,15}$/.test(text) || encodeCursor(Number(text)) !== cursor) return null;
  return Number(text);
}

const ListQuery = z
  .object({
    function: FunctionNameSchema.optional(),
    status: z.enum(INVOCATION_STATUSES).optional(),
    since: isoInstant("Only invocations that started at or after this instant").optional(),
    until: isoInstant("Only invocations that started before this instant").optional(),
    limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(DEFAULT_PAGE),
    cursor: z
      .string()
      .transform((text, ctx) => {
        if (text === "") return undefined; // `?cursor=`: the first page
        const seq = decodeCursor(text);
        if (seq === null) {
          ctx.addIssue({ code: "custom", message: "not a cursor this API returned" });
          return z.NEVER;
        }
        return seq;
      })
      .optional()
      .openapi({ type: "string", description: "next_cursor of the previous page" }),
    after: z
      .string()
      .min(1)
      .max(64)
      .optional()
      .openapi({
        description:
          "An invocation id: instead of newest first, the invocations that finished after that one, oldest first " +
          "(for pollers: pass the last id you have). Combines with the filters and limit, not with cursor.",
      }),
  })
  .refine((q) => q.after === undefined || q.cursor === undefined, {
    message: "after and cursor do not combine: after pages continue with next_cursor passed as after",
    path: ["after"],
  })
  .refine((q) => q.since === undefined || q.until === undefined || q.since <= q.until, {
    message: "since must not be after until",
    path: ["since"],
  });

/** `?after=<id>`: what finished after invocation `id`, oldest first; 400 for an id the log does not hold. */
async function pageAfter(invocations: InvocationRecords, after: string, query: z.infer<typeof ListQuery>) {
  const finishedSeq = await invocations.finishedSeqOf(after);
  if (finishedSeq === undefined) throw new ApiError(400, "unknown_invocation", `after: no invocation with id '${after}' in the log`);
  if (finishedSeq === null) throw new ApiError(400, "still_running", `after: invocation '${after}' has not finished yet`);
  const page = await invocations.list({
    functionName: query.function,
    status: query.status,
    since: query.since,
    until: query.until,
    afterFinishedSeq: finishedSeq,
    limit: query.limit,
  });
  const items = page.items.map(invocationJson);
  return { items, next_cursor: page.more ? (items.at(-1)?.id ?? null) : null };
}

/** The log's query API, mounted at /api/invocations: a page of the log, one invocation. */
export function invocationsApi(deps: { invocations: InvocationRecords; jobs?: JobRecords }) {
  const { invocations } = deps;
  const app = new OpenAPIHono({ defaultHook: validationHook });

  app.openapi(
    createRoute({
      method: "get",
      path: "/",
      ...operation("invocations", "listInvocations"),
      summary:
        "The invocation log, newest first, or with after: what finished after an invocation, oldest first (items without stdout/stderr)",
      ...requires("logs:read"),
      request: { query: ListQuery },
      responses: {
        200: json(
          z.object({
            items: z.array(InvocationSchema),
            next_cursor: z
              .string()
              .nullable()
              .openapi({
                description:
                  "Pass as cursor for the next page; null on the last. With after: the id to pass as after, " +
                  "set when more finished invocations follow already; null when caught up (poll again with the last item's id)",
              }),
          }),
          "A page of the log",
        ),
        400: json(ErrorSchema, "Invalid filter"),
        401: json(ErrorSchema, "Missing or wrong token"),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      if (query.after !== undefined) return c.json(await pageAfter(invocations, query.after, query), 200);
      const page = await invocations.list({
        functionName: query.function,
        status: query.status,
        since: query.since,
        until: query.until,
        beforeSeq: query.cursor,
        limit: query.limit,
      });
      return c.json(
        {
          items: page.items.map(invocationJson),
          next_cursor: page.nextBeforeSeq === null ? null : encodeCursor(page.nextBeforeSeq),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/{id}",
      ...operation("invocations", "getInvocation"),
      summary: "One invocation, stdout and stderr included; for an asynchronous invocation's id, the job: its state, attempts and answer",
      ...requires("logs:read"),
      request: {
        params: z.object({
          id: z
            .string()
            .max(64)
            .openapi({ param: { name: "id", in: "path" } }),
        }),
      },
      responses: {
        200: json(z.union([InvocationDetailSchema, JobSchema]), "The invocation, or the job (kind: job)"),
        400: json(ErrorSchema, "Not an invocation id"),
        401: json(ErrorSchema, "Missing or wrong token"),
        404: json(ErrorSchema, "No such invocation"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const job = await deps.jobs?.get(id);
      if (job && deps.jobs) return c.json(await jobJson(job, { jobs: deps.jobs, invocations }), 200);
      const row = await invocations.get(id);
      if (!row) throw notFoundError(`no invocation with id '${id}'`);
      return c.json({ ...invocationJson(row), stdout: row.stdout, stderr: row.stderr }, 200);
    },
  );

  return app;
}

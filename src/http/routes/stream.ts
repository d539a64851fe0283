import { OpenAPIHono, z } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import { type InvocationFeed, MAX_SUBSCRIBERS } from "../../cluster/feed.js";
import type { InvocationSummary } from "../../core/invocations.js";
import { INVOCATION_STATUSES } from "../../core/statuses.js";
import { ApiError, describeZodError, ErrorSchema } from "../errors.js";
import { requireScope } from "../middleware/auth.js";
import { BEARER_SCHEME, FunctionNameSchema, json, operation } from "../schemas.js";
import { invocationJson } from "./invocation-schemas.js";

export const KEEP_ALIVE_MS = 15_000;
/** Rows one stream may have waiting for a slow client; past it the oldest are dropped (and counted in a comment). */
export const STREAM_BUFFER = 1000;

const StreamQuery = z.strictObject({
  function: FunctionNameSchema.optional(),
  status: z.enum(INVOCATION_STATUSES).optional(),
});

/**
 * GET /api/invocations/stream (mounted there, before /api/invocations/:id): an `invocation`
 * event per finished row of any gateway on the database, filtered like the list, and a
 * `: keep-alive` comment every 15 s. A
 * slow or vanished client costs a bounded buffer: past STREAM_BUFFER waiting rows the oldest go.
 */
export function streamApi(feed: InvocationFeed, keepAliveMs = KEEP_ALIVE_MS) {
  const app = new OpenAPIHono();
  // Documented by hand: the answer is a stream, and the query is checked here (after the subscriber limit).
  app.openAPIRegistry.registerPath({
    method: "get",
    path: "/",
    summary: "Finished invocations as they happen (server-sent events)",
    description:
      "An `invocation` event per finished invocation (data: the item as in the list, `id`: its id), filtered like the list; " +
      "a `: keep-alive` comment every 15 s. At most 1,000 rows wait for a slow client; past that the oldest are dropped and a comment says how many. " +
      "After a drop, catch up with GET /api/invocations?after=<last id>.",
    ...operation("invocations", "streamInvocations"),
    security: [{ [BEARER_SCHEME]: ["logs:read"] }],
    request: { query: StreamQuery },
    responses: {
      200: { content: { "text/event-stream": { schema: z.string() } }, description: "The event stream" },
      400: json(ErrorSchema, "Invalid filter"),
      401: json(ErrorSchema, "Missing or wrong token"),
      403: json(ErrorSchema, "The token lacks logs:read"),
      429: json(ErrorSchema, "Too many open streams; see Retry-After"),
    },
  });
  app.get("/", requireScope("logs:read"), (c) => {
    if (feed.subscribers >= MAX_SUBSCRIBERS) throw new ApiError(429, "rejected", "too many open streams", { "Retry-After": "5" });
    const parsed = StreamQuery.safeParse(c.req.query());
    if (!parsed.success) throw new ApiError(400, "invalid_request", describeZodError(parsed.error));
    const filter = parsed.data;
    c.header("Cache-Control", "no-store");
    c.header("X-Accel-Buffering", "no");
    return streamSSE(c, async (stream) => {
      const queue: InvocationSummary[] = [];
      let dropped = 0;
      let wake: (() => void) | null = null;
      const { ready, unsubscribe } = feed.subscribe((row) => {
        if (filter.function !== undefined && row.functionName !== filter.function) return;
        if (filter.status !== undefined && row.status !== filter.status) return;
        if (queue.length >= STREAM_BUFFER) {
          queue.shift();
          dropped++;
        }
        queue.push(row);
        wake?.();
      });
      let closed = false;
      stream.onAbort(() => {
        closed = true;
        wake?.();
      });
      try {
        await ready;
        await stream.write(": connected\n\n");
        while (!closed) {
          if (dropped > 0) {
            await stream.write(`: ${dropped} invocation(s) dropped: the client read too slowly\n\n`);
            dropped = 0;
          }
          const row = queue.shift();
          if (row) {
            await stream.writeSSE({ event: "invocation", id: row.id, data: JSON.stringify(invocationJson(row)) });
            continue;
          }
          const woken = await new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), keepAliveMs);
            wake = () => {
              clearTimeout(timer);
              resolve(true);
            };
          });
          wake = null;
          if (!woken && !closed) await stream.write(": keep-alive\n\n");
        }
      } finally {
        unsubscribe();
      }
    });
  });
  return app;
}

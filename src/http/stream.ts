import { EventEmitter } from "node:events";
import type { MiddlewareHandler } from "hono";
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import type { InvocationEnd, InvocationLog } from "../db/invocations.js";
import { INVOCATION_STATUSES } from "../db/schema.js";
import { ApiError, describeZodError } from "./errors.js";
import { invocationJson, type InvocationJson } from "./invocations.js";
import { FunctionNameSchema } from "./schemas.js";

export const KEEP_ALIVE_MS = 15_000;
/** Streams open at once; each holds a socket and a listener. */
const MAX_SUBSCRIBERS = 256;

/** Finished invocations, as the log lists them, to whoever listens (the SSE stream). */
export class InvocationFeed {
  private readonly emitter = new EventEmitter().setMaxListeners(MAX_SUBSCRIBERS + 1);

  get subscribers(): number {
    return this.emitter.listenerCount("invocation");
  }

  publish(item: InvocationJson): void {
    this.emitter.emit("invocation", item);
  }

  subscribe(listener: (item: InvocationJson) => void): () => void {
    this.emitter.on("invocation", listener);
    return () => this.emitter.off("invocation", listener);
  }
}

/**
 * The log, with every `finish` also published on the feed: the one place every row ends
 * (invocations that ran and the gateway's refusals alike).
 */
export function publishingFinishes(log: InvocationLog, feed: InvocationFeed): InvocationLog {
  return new Proxy(log, {
    get(target, property) {
      if (property === "finish") {
        return (seq: number, end: InvocationEnd) => {
          target.finish(seq, end);
          if (feed.subscribers === 0) return;
          const row = target.list({ beforeSeq: seq + 1, limit: 1 }).items[0];
          if (row?.seq === seq) feed.publish(invocationJson(row));
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

const StreamQuery = z.strictObject({
  function: FunctionNameSchema.optional(),
  status: z.enum(INVOCATION_STATUSES).optional(),
});

/** GET /api/invocations/stream: `event: invocation` per finished row, `: keep-alive` every 15 s. Mount before /api/invocations/:id. */
export function streamRoutes(feed: InvocationFeed, keepAliveMs = KEEP_ALIVE_MS) {
  const app = new Hono();
  const guard: MiddlewareHandler = async (c, next) => {
    if (feed.subscribers >= MAX_SUBSCRIBERS) throw new ApiError(429, "rejected", "too many open streams");
    await next();
  };
  app.get("/api/invocations/stream", guard, (c) => {
    const parsed = StreamQuery.safeParse(c.req.query());
    if (!parsed.success) throw new ApiError(400, "invalid_request", describeZodError(parsed.error));
    const filter = parsed.data;
    c.header("Cache-Control", "no-store");
    c.header("X-Accel-Buffering", "no");
    return streamSSE(c, async (stream) => {
      const queue: InvocationJson[] = [];
      let wake: (() => void) | null = null;
      const unsubscribe = feed.subscribe((item) => {
        if (filter.function !== undefined && item.function !== filter.function) return;
        if (filter.status !== undefined && item.status !== filter.status) return;
        queue.push(item);
        wake?.();
      });
      let closed = false;
      stream.onAbort(() => {
        closed = true;
        wake?.();
      });
      try {
        await stream.write(": connected\n\n");
        while (!closed) {
          const item = queue.shift();
          if (item) {
            await stream.writeSSE({ event: "invocation", id: item.id, data: JSON.stringify(item) });
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

import type { MiddlewareHandler } from "hono";
import { type BodyLimits, declaresBody, incomingOf, readBodyWithin } from "../body.js";
import { ApiError } from "../errors.js";

const METHODS_WITH_BODY = new Set(["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/**
 * Caps the management API's request bodies, in size and in time. Not hono's bodyLimit: it leaves
 * an oversize body unread, and the connection then ends under a client still sending.
 */
export function bodyLimit(limits: BodyLimits, what: string): MiddlewareHandler {
  return async (c, next) => {
    if (!declaresBody(c.req.raw, incomingOf(c))) return next();
    const read = await readBodyWithin(c.req.raw, limits, incomingOf(c));
    if ("timedOut" in read) {
      throw new ApiError(408, "request_timeout", `the request body did not arrive within ${limits.timeoutMs} ms`, { Connection: "close" });
    }
    if ("tooLarge" in read) {
      throw new ApiError(
        413,
        "payload_too_large",
        `the request body is too large for ${what}`,
        read.keepAlive ? {} : { Connection: "close" },
      );
    }
    // A GET, HEAD or TRACE may arrive with a body, but a Request of those methods cannot hold one:
    // it has been read (so the connection stays usable) and is dropped; no route of theirs reads it.
    if (METHODS_WITH_BODY.has(c.req.method)) c.req.raw = new Request(c.req.raw, { body: read.body as Uint8Array<ArrayBuffer> });
    return next();
  };
}

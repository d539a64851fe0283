import type { MiddlewareHandler } from "hono";
import { readBodyWithin } from "../body.js";
import { ApiError } from "../errors.js";

/**
 * Caps the management API's request bodies. Not hono's bodyLimit: it leaves an oversize body
 * unread, and the connection then ends under a client still sending.
 */
export function bodyLimit(maxBytes: number, what: string): MiddlewareHandler {
  return async (c, next) => {
    if (!c.req.raw.body) return next();
    const read = await readBodyWithin(c.req.raw, maxBytes);
    if (!("body" in read)) {
      throw new ApiError(413, "payload_too_large", `the request body is too large for ${what}`, read.keepAlive ? {} : { Connection: "close" });
    }
    c.req.raw = new Request(c.req.raw, { body: read.body as Uint8Array<ArrayBuffer> });
    return next();
  };
}

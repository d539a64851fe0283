import type { MiddlewareHandler } from "hono";
import { v7 as uuidv7 } from "uuid";

export const INVOCATION_ID_HEADER = "x-invocation-id";

export type InvocationIdEnv = { Variables: { invocationId: string; invocationLogged?: boolean } };

/**
 * Gives each request an invocation id (UUIDv7: time-ordered, unless a test passes its own maker)
 * and puts it on the answer once the invocation is logged (`invocationLogged`: its row, or the
 * gateway's own error line when the row cannot be written): an answer that never reached the log
 * (401, 403, 404, 405) carries no id a reader would look up in vain.
 */
export function invocationId(newId: () => string = uuidv7): MiddlewareHandler<InvocationIdEnv> {
  return async (c, next) => {
    const id = newId();
    c.set("invocationId", id);
    try {
      await next();
    } finally {
      if (c.get("invocationLogged")) c.res.headers.set(INVOCATION_ID_HEADER, id);
    }
  };
}

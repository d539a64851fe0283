import type { MiddlewareHandler } from "hono";
import { v7 as uuidv7 } from "uuid";

export const INVOCATION_ID_HEADER = "x-invocation-id";

export type InvocationIdEnv = { Variables: { invocationId: string } };

/**
 * Gives each request an invocation id (UUIDv7: time-ordered, unless a test passes its own maker)
 * and puts it on every answer, including 401/404/413 ones that never reach the log.
 */
export function invocationId(newId: () => string = uuidv7): MiddlewareHandler<InvocationIdEnv> {
  return async (c, next) => {
    const id = newId();
    c.set("invocationId", id);
    await next();
    c.res.headers.set(INVOCATION_ID_HEADER, id);
  };
}

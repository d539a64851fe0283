import type { MiddlewareHandler } from "hono";
import { SESSION_COOKIE } from "./session.js";

/**
 * What every /fn answer carries: the function's page runs in an opaque origin, so its script
 * cannot read the console's cookie or storage, and its requests to /api are cross-origin
 * (refused: the gateway grants no CORS). Scripts, forms and popups still work for pages a
 * function serves; `allow-same-origin` is never granted.
 */
export const FUNCTION_CSP = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads";

/** The Cookie header without the console's session (pairs are `name=value` joined by `;`, RFC 6265 §5.4). */
function withoutSessionCookie(cookie: string): string {
  return cookie
    .split(";")
    .filter((pair) => pair.trim().split("=", 1)[0] !== SESSION_COOKIE)
    .join(";")
    .trim();
}

/**
 * On /fn: the console's session cookie never reaches a function (the browser sends it along on
 * any same-origin request to /fn); the answer gets the sandbox policy (appended, so a function's
 * own policy still applies too) and loses any Set-Cookie of the session's name, so a function
 * cannot plant or clear it.
 */
export function isolateFunctionPages(isolation: boolean): MiddlewareHandler {
  return async (c, next) => {
    const cookie = c.req.header("cookie");
    if (cookie?.includes(SESSION_COOKIE)) {
      const headers = new Headers(c.req.raw.headers);
      const kept = withoutSessionCookie(cookie);
      if (kept) headers.set("cookie", kept);
      else headers.delete("cookie");
      c.req.raw = new Request(c.req.raw, { headers });
    }
    await next();
    const headers = c.res.headers;
    if (isolation) headers.append("Content-Security-Policy", FUNCTION_CSP);
    const cookies = headers.getSetCookie();
    if (cookies.some((cookie) => cookie.trimStart().startsWith(`${SESSION_COOKIE}=`))) {
      headers.delete("Set-Cookie");
      for (const cookie of cookies) {
        if (!cookie.trimStart().startsWith(`${SESSION_COOKIE}=`)) headers.append("Set-Cookie", cookie);
      }
    }
  };
}

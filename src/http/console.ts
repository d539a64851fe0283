import { fileURLToPath } from "node:url";
import { serveStatic } from "@hono/node-server/serve-static";
import { Hono, type MiddlewareHandler } from "hono";
import { ConfigError } from "../config.js";
import { SESSION_COOKIE } from "./session.js";

/** Where `scripts/build-console.sh` puts the console's build. */
export const CONSOLE_DIST = fileURLToPath(new URL("../../console/dist", import.meta.url));

/** The console's pages load only what the gateway serves; no inline script or style, no framing. */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/**
 * What every /fn answer carries: the function's page runs in an opaque origin, so its script
 * cannot read the console's cookie or storage, and its requests to /api are cross-origin
 * (refused: the gateway grants no CORS). Scripts, forms and popups still work for pages a
 * function serves; `allow-same-origin` is never granted.
 */
export const FUNCTION_CSP = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads";

/** FUNCTIONS_ORIGIN_ISOLATION: `on` (default) or `off` when functions are served from a host name of their own. */
export function functionsOriginIsolation(value: string | undefined): boolean {
  if (value === undefined || value === "" || value === "on") return true;
  if (value === "off") return false;
  throw new ConfigError(`FUNCTIONS_ORIGIN_ISOLATION must be on or off, not '${value}'`);
}

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

/** Vite names built assets `<name>-<hash>.<ext>` under assets/: their content never changes. */
const HASHED_ASSET = /^\/console\/assets\/[^/]+-[A-Za-z0-9_-]{8,}\.\w+$/;

/** `GET /` → /console/, and /console/* from console/dist (index.html for the app's own paths). */
export function consoleRoutes(distDir: string = CONSOLE_DIST) {
  const app = new Hono();
  const root = distDir;
  const headers: MiddlewareHandler = async (c, next) => {
    await next();
    c.header("Content-Security-Policy", CONSOLE_CSP);
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "same-origin");
    if (c.res.status === 200 && HASHED_ASSET.test(c.req.path)) {
      c.header("Cache-Control", "public, max-age=31536000, immutable");
    } else {
      c.header("Cache-Control", "no-cache");
    }
  };

  app.get("/", (c) => c.redirect("/console/", 302));
  app.get("/console", (c) => c.redirect("/console/", 302));
  app.use("/console/*", headers);
  app.get("/console/*", serveStatic({ root, rewriteRequestPath: (p) => p.replace(/^\/console/, "") }));
  // Anything else under /console that is not a file (and not an asset) is a page of the app.
  app.get("/console/*", async (c, next) => {
    if (c.req.path.startsWith("/console/assets/")) return next();
    return serveStatic({ root, path: "index.html" })(c, next);
  });
  return app;
}

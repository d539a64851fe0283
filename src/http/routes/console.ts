import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { serveStatic } from "@hono/node-server/serve-static";
import { Hono, type MiddlewareHandler } from "hono";

/** Where `scripts/build-console.sh` puts the console's build. */
export const CONSOLE_DIST = fileURLToPath(new URL("../../../console/dist", import.meta.url));

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

/** Vite names built assets `<name>-<hash>.<ext>` under assets/: their content never changes. */
const HASHED_ASSET = /^\/console\/assets\/[^/]+-[A-Za-z0-9_-]{8,}\.\w+$/;

/** `GET /` → /console/, and /console/* from console/dist (index.html for the app's own paths). Mounted at the root. */
export function consoleApi(distDir: string = CONSOLE_DIST) {
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
  // Browsers ask for /favicon.ico on every page of the origin (/docs, a function's page): the console's icon.
  app.get("/favicon.ico", (c) => {
    const icon = path.join(root, "favicon.svg");
    if (!fs.existsSync(icon)) return c.notFound();
    return c.body(fs.readFileSync(icon), 200, { "Content-Type": "image/svg+xml", "Cache-Control": "public, max-age=86400" });
  });
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

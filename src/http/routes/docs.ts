import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { Hono } from "hono";
import { CONSOLE_CSP } from "./console.js";

/**
 * /docs: the API reference rendered by Swagger UI from /openapi.json, every asset served by the
 * gateway from swagger-ui-dist (pinned by the lock file): it works without internet, and no
 * third-party script runs on the origin where users paste tokens. The page's CSP allows only
 * 'self' (no inline script or style), as the console's does.
 */

/** The files of swagger-ui-dist the page loads, by the name they are served under. */
const DIST_ASSETS = {
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "swagger-ui.css": "text/css; charset=utf-8",
} as const;
type DistAsset = keyof typeof DIST_ASSETS;

const DIST_DIR = path.dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));

/** Starts Swagger UI on the document; a file of its own, since the CSP forbids inline script. */
const INIT_SCRIPT = `"use strict";
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The default sends the document to validator.swagger.io and shows its badge: no other host.
    validatorUrl: null,
    // A token pasted into "Authorize" stays in this page's memory, never in localStorage.
    persistAuthorization: false,
  });
});
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fngw API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

const SECURITY_HEADERS = {
  "Content-Security-Policy": CONSOLE_CSP,
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "same-origin",
};

/** Mounted at the root: GET /docs and its assets under /docs/. */
export function docsApi() {
  const cache = new Map<DistAsset, Buffer>();
  const read = (name: DistAsset): Buffer => {
    let bytes = cache.get(name);
    if (!bytes) {
      bytes = fs.readFileSync(path.join(DIST_DIR, name));
      cache.set(name, bytes);
    }
    return bytes;
  };
  const app = new Hono();
  app.get("/docs", (c) => c.html(PAGE, 200, { ...SECURITY_HEADERS, "Cache-Control": "no-cache" }));
  app.get("/docs/init.js", (c) =>
    c.body(INIT_SCRIPT, 200, { ...SECURITY_HEADERS, "Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "no-cache" }),
  );
  app.get("/docs/:asset", (c, next) => {
    const name = c.req.param("asset");
    if (!Object.hasOwn(DIST_ASSETS, name)) return next();
    const asset = name as DistAsset;
    // The version is pinned, but the URL does not carry it: revalidate rather than cache for good.
    return c.body(new Uint8Array(read(asset)), 200, {
      ...SECURITY_HEADERS,
      "Content-Type": DIST_ASSETS[asset],
      "Cache-Control": "public, max-age=3600",
    });
  });
  return app;
}

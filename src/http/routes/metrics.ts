import { Hono } from "hono";
import type { TokenRegistry } from "../../cluster/tokens.js";
import { grants } from "../../core/scopes.js";
import type { GatewayMetrics } from "../metrics.js";
import { checkBearer, forbidden, unauthorized } from "../middleware/auth.js";

/**
 * GET /metrics (mounted there): the Prometheus text format. It needs a bearer token with the
 * `metrics:read` scope (or admin): function names and traffic are not for anonymous callers.
 * The console's session is not accepted here; a scraper holds a token of its own.
 */
export function metricsApi(deps: { metrics: GatewayMetrics; tokens: TokenRegistry }) {
  const app = new Hono();
  app.get("/", async (c) => {
    const check = checkBearer(c.req.header("authorization"), deps.tokens);
    if (check.kind !== "ok") throw unauthorized(check);
    if (!grants(check.token.scopes, "metrics:read")) {
      throw forbidden(`this needs a token with the 'metrics:read' scope (or admin); this token has ${check.token.scopes.join(", ")}`);
    }
    const { text, contentType } = await deps.metrics.expose();
    return c.body(text, 200, { "Content-Type": contentType, "Cache-Control": "no-store" });
  });
  return app;
}

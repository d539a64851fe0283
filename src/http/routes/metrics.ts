import { OpenAPIHono, z } from "@hono/zod-openapi";
import { grants } from "../../core/scopes.js";
import type { TokenStore } from "../../db/tokens.js";
import { ErrorSchema } from "../errors.js";
import type { GatewayMetrics } from "../metrics.js";
import { checkBearer, forbidden, unauthorized } from "../middleware/auth.js";
import { BEARER_SCHEME, json, operation } from "../schemas.js";

/**
 * GET /metrics (mounted there): the Prometheus text format. It needs a bearer token with the
 * `metrics:read` scope (or admin): function names and traffic are not for anonymous callers.
 * The console's session is not accepted here; a scraper holds a token of its own.
 */
export function metricsApi(deps: { metrics: GatewayMetrics; tokens: TokenStore }) {
  const app = new OpenAPIHono();
  app.openAPIRegistry.registerPath({
    method: "get",
    path: "/",
    summary: "Prometheus metrics (text format): invocations, durations, refusals, queue, standbys, log writes, database size",
    ...operation("operations", "getMetrics"),
    security: [{ [BEARER_SCHEME]: ["metrics:read"] }],
    responses: {
      200: { content: { "text/plain": { schema: z.string() } }, description: "The Prometheus text exposition format" },
      401: json(ErrorSchema, "Missing or wrong token (the console's session is not accepted here)"),
      403: json(ErrorSchema, "The token lacks metrics:read"),
    },
  });
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

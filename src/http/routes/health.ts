import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { RunnerHealth } from "../../core/runner.js";
import { validationHook } from "../errors.js";
import { operation } from "../schemas.js";

/** Each part of the gateway that /healthz checks, by name; each reports `ready` and what else it shows. */
export type HealthChecks = Record<string, () => RunnerHealth>;

const Part = z.object({ ready: z.boolean() }).catchall(z.unknown());
const HealthSchema = z
  .object({ ok: z.boolean() })
  .catchall(Part)
  .openapi("Health", {
    example: {
      ok: true,
      sandbox: { ready: true, cgroups: "v2", slots: 4, busy: 0 },
      database: { ready: true, file_bytes: 81920, used_bytes: 61440 },
    },
  });

/**
 * GET /healthz (mounted there): 200 while every part is ready, 503 when one is not. Public. Each
 * check looks for itself (the sandbox at its mounts, the database with a write), so an operator's
 * mistake shows here and not only in failed invocations.
 */
export function healthApi(deps: { checks: HealthChecks }) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: "get",
      path: "/",
      ...operation("operations", "getHealth"),
      summary: "Liveness, and whether the sandbox and the database are ready",
      security: [],
      responses: {
        200: { content: { "application/json": { schema: HealthSchema } }, description: "Ready" },
        503: { content: { "application/json": { schema: HealthSchema } }, description: "A part is not ready" },
      },
    }),
    (c) => {
      const parts = Object.fromEntries(Object.entries(deps.checks).map(([name, check]) => [name, check()]));
      const body = { ok: Object.values(parts).every((part) => part.ready), ...parts } as z.infer<typeof HealthSchema>;
      return body.ok ? c.json(body, 200) : c.json(body, 503);
    },
  );
  return app;
}

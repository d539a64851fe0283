import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { RunnerHealth } from "../../core/runner.js";
import { validationHook } from "../errors.js";


const HealthSchema = z
  .object({
    ok: z.boolean(),
    sandbox: z.object({ ready: z.boolean() }).catchall(z.unknown()).openapi({ example: { ready: true, cgroups: "v2", slots: 4, busy: 0 } }),
  })
  .openapi("Health");

/** GET /healthz (mounted there): 200 while the sandbox can take invocations, 503 when it cannot. Public. */
export function healthApi(deps: { health?: () => RunnerHealth }) {
  const health = deps.health ?? (() => ({ ready: true }));
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: "get",
      path: "/",
      summary: "Liveness, and whether the sandbox is ready",
      security: [],
      responses: {
        200: { content: { "application/json": { schema: HealthSchema } }, description: "Ready" },
        503: { content: { "application/json": { schema: HealthSchema } }, description: "The sandbox is not ready" },
      },
    }),
    (c) => {
      const sandbox = health();
      return sandbox.ready ? c.json({ ok: true, sandbox }, 200) : c.json({ ok: false, sandbox }, 503);
    },
  );
  return app;
}

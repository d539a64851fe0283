import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { validationHook } from "./errors.js";

/** What the sandbox reports about itself; `ready` is the only field the gateway relies on, the rest is shown as is. */
export interface SandboxHealth {
  ready: boolean;
}

const HealthSchema = z
  .object({
    ok: z.boolean(),
    sandbox: z.object({ ready: z.boolean() }).catchall(z.unknown()).openapi({ example: { ready: true, cgroups: "v2", slots: 4, busy: 0 } }),
  })
  .openapi("Health");

/** GET /healthz: 200 while the sandbox can take invocations, 503 when it cannot. Public. */
export function healthRoutes(deps: { health?: () => SandboxHealth }) {
  const health = deps.health ?? (() => ({ ready: true }));
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: "get",
      path: "/healthz",
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

import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { FunctionStore } from "../db/functions.js";
import { ApiError, ErrorSchema, notFoundError, validationHook } from "./errors.js";
import { FunctionSchema, functionJson } from "./functions.js";
import { NameParamSchema, protectedRoute } from "./schemas.js";

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { "application/json": { schema } },
  description,
});

const RollbackBody = z
  .strictObject({ version: z.number().int().min(1).openapi({ example: 1, description: "The version to restore" }) })
  .openapi("Rollback");

/**
 * POST /api/functions/:name/rollback: a new version (current + 1) with every setting of an older
 * one, its env included. History only grows, so a rollback can itself be rolled back.
 */
export function rollbackRoutes(deps: { functions: FunctionStore }) {
  const { functions } = deps;
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/functions/{name}/rollback",
      summary: "Restore an older version as a new version",
      security: protectedRoute.security,
      request: { params: NameParamSchema, body: { content: { "application/json": { schema: RollbackBody } }, required: true } },
      responses: {
        201: json(FunctionSchema, "The function, at its new version"),
        400: json(ErrorSchema, "Invalid request"),
        401: json(ErrorSchema, "Missing or wrong token"),
        404: json(ErrorSchema, "No such function or version"),
      },
    }),
    (c) => {
      const { name } = c.req.valid("param");
      const { version } = c.req.valid("json");
      const current = functions.get(name);
      if (!current) throw notFoundError(`no function named '${name}'`);
      const target = functions.getVersion(name, version);
      if (!target) throw notFoundError(`function '${name}' has no version ${version}`);
      const restored = functions.addVersion(name, {
        runtime: target.runtime,
        code: target.code,
        timeoutMs: target.timeoutMs,
        memoryMb: target.memoryMb,
        network: target.network,
        env: target.env,
        public: target.public,
        maxConcurrency: target.maxConcurrency,
      });
      if (!restored) throw new ApiError(404, "not_found", `no function named '${name}'`);
      c.header("Location", `/api/functions/${name}`);
      return c.json(functionJson(restored), 201);
    },
  );
  return app;
}

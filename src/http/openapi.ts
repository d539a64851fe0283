import { type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Env } from "hono";
import { ErrorSchema } from "./errors.js";
import { docsApi } from "./routes/docs.js";
import { BEARER_SCHEME } from "./schemas.js";

/**
 * Serves the OpenAPI document (generated from the routes' zod schemas) at /openapi.json and its
 * reference page at /docs (Swagger UI, served by the gateway itself: routes/docs.ts). /fn is documented by hand: it takes any method and any body.
 */
export function mountDocs<E extends Env>(app: OpenAPIHono<E>, version: string): void {
  app.openAPIRegistry.registerComponent("securitySchemes", BEARER_SCHEME, {
    type: "http",
    scheme: "bearer",
    description:
      "GATEWAY_TOKEN or the token printed at the first start (admin), or a scoped token from POST /api/tokens. " +
      "Each route lists the scope it needs; admin has every scope.",
  });
  for (const method of ["get", "post"] as const) {
    app.openAPIRegistry.registerPath({
      method,
      path: "/fn/{target}",
      summary: "Invoke a function (any method; also /fn/{target}/any/sub/path)",
      description:
        "`target` is `name` (current version) or `name@N` (version N). Needs a token with `invoke:<name>`, " +
        "`invoke:<prefix>*` or `admin` unless the function is public. " +
        "The function's status, headers and body come back as they are; every answer carries `x-invocation-id`.",
      security: [{ [BEARER_SCHEME]: [] }, {}],
      request: {
        params: z.object({ target: z.string().openapi({ param: { name: "target", in: "path" }, example: "hello@2" }) }),
      },
      responses: {
        200: { description: "What the function returned" },
        401: { content: { "application/json": { schema: ErrorSchema } }, description: "Missing, wrong or expired token" },
        403: { content: { "application/json": { schema: ErrorSchema } }, description: "The token's scopes do not cover this function" },
        404: { content: { "application/json": { schema: ErrorSchema } }, description: "No such function or version" },
        413: { content: { "application/json": { schema: ErrorSchema } }, description: "Body over MAX_BODY_BYTES" },
        429: { content: { "application/json": { schema: ErrorSchema } }, description: "Saturated; see Retry-After" },
        500: { content: { "application/json": { schema: ErrorSchema } }, description: "error, oom or forbidden" },
        504: { content: { "application/json": { schema: ErrorSchema } }, description: "timeout" },
      },
    });
  }
  app.doc("/openapi.json", {
    openapi: "3.0.0",
    info: {
      title: "fngw",
      version,
      description: "A self-hosted function gateway that runs every invocation in a locked-down interpreter.",
    },
    security: [{ [BEARER_SCHEME]: [] }],
  });
  app.route("/", docsApi());
}

import { type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Env } from "hono";
import { ErrorSchema } from "./errors.js";
import { docsApi } from "./routes/docs.js";
import { BEARER_SCHEME, json, operation, TAGS } from "./schemas.js";

/**
 * Serves the OpenAPI document (generated from the routes' zod schemas) at /openapi.json and its
 * reference page at /docs (Swagger UI, served by the gateway itself: routes/docs.ts). /fn and /api/invoke are documented
 * by hand: they take any method and any body.
 */
export function mountDocs<E extends Env>(app: OpenAPIHono<E>, version: string): void {
  app.openAPIRegistry.registerComponent("securitySchemes", BEARER_SCHEME, {
    type: "http",
    scheme: "bearer",
    description:
      "GATEWAY_TOKEN or the token printed at the first start (admin), or a scoped token from POST /api/tokens. " +
      "Each route lists the scope it needs; admin has every scope.",
  });
  const answers = {
    200: { description: "What the function returned: its status, headers and body as they are" },
    202: {
      ...json(
        z.object({ id: z.string(), state: z.string(), location: z.string() }),
        "With `Prefer: respond-async`: the request is stored as a job (committed before this answer); follow it at Location",
      ),
      headers: z.object({
        Location: z.string().openapi({ example: "/api/invocations/0193b6c4-2f1e-7c3a-9d7e-5a1b2c3d4e5f" }),
        "Preference-Applied": z.literal("respond-async"),
        "X-Invocation-Id": z.string(),
      }),
    },
    400: json(ErrorSchema, "invalid_callback_url (X-Callback-Url not http(s), or resolving to a private address) or a bad Idempotency-Key"),
    401: json(ErrorSchema, "Missing, wrong or expired token (also for a private or unknown name: names cannot be probed)"),
    403: json(ErrorSchema, "The token's scopes do not cover this function"),
    404: json(ErrorSchema, "No such function or version"),
    408: json(ErrorSchema, "The body did not arrive within BODY_READ_TIMEOUT_MS"),
    413: json(ErrorSchema, "Body over MAX_BODY_BYTES"),
    429: json(ErrorSchema, "Saturated, or (asynchronous) queue_full: the job queue or the function's share of it; see Retry-After"),
    500: json(ErrorSchema, "error, oom or forbidden; the body's error.invocation_id names the log row"),
    503: json(ErrorSchema, "packages_not_ready (with Retry-After), packages_failed, interrupted, or (asynchronous) database_unavailable"),
    504: json(ErrorSchema, "timeout"),
  };
  const target = z.object({ target: z.string().openapi({ param: { name: "target", in: "path" }, example: "hello@2" }) });
  const mounts: { path: string; operationId: string; summary: string; description: string; security: Record<string, string[]>[] }[] = [
    {
      path: "/fn/{target}",
      operationId: "invoke",
      summary: "Invoke a function (any method; also /fn/{target}/any/sub/path)",
      description:
        "`target` is `name` (current version) or `name@N` (version N). Needs a token with `invoke:<name>`, " +
        "`invoke:<prefix>*` or `admin` unless the function is public. The function's status, headers and body come back as " +
        "they are; an answer that has a row in the log carries `x-invocation-id` (a 401, 403, 404 or 405 has none). " +
        "With `Prefer: respond-async` the request is queued instead and answered 202 (`Idempotency-Key`, `X-Callback-Url`; " +
        "the README's Asynchronous invocations).",
      security: [{ [BEARER_SCHEME]: [] }, {}],
    },
    {
      path: "/api/invoke/{target}",
      operationId: "invokeAsCaller",
      summary: "Invoke a function as the API's caller: the console's signed-in user, or a bearer token (any method; sub-paths too)",
      description:
        "The same invocation as /fn/{target} (the function sees the same request, its URL under /fn), authenticated as the rest of " +
        "/api is: a bearer token or the console's session with `X-Fngw-Console: 1`. The session cookie still never reaches /fn.",
      security: [{ [BEARER_SCHEME]: [] }],
    },
  ];
  for (const mount of mounts) {
    for (const method of ["get", "post"] as const) {
      app.openAPIRegistry.registerPath({
        method,
        path: mount.path,
        summary: mount.summary,
        description: mount.description,
        ...operation("invoke", method === "get" ? mount.operationId : `${mount.operationId}WithBody`),
        security: mount.security,
        request: { params: target },
        responses: answers,
      });
    }
  }
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "fngw",
      version,
      description: "A self-hosted function gateway that runs every invocation in a locked-down interpreter.",
    },
    // Relative: the gateway that served the document, whatever name and scheme a proxy in front gives it.
    servers: [{ url: "/", description: "This gateway" }],
    tags: Object.values(TAGS),
    security: [{ [BEARER_SCHEME]: [] }],
  });
  app.route("/", docsApi());
}

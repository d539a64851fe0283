import { z } from "@hono/zod-openapi";
import type { RouteScope } from "../core/scopes.js";
import { requiredField } from "../core/settings.js";
import { requireScope } from "./middleware/auth.js";

/** Function names: lower-case, URL-safe, up to 63 characters. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export const FunctionNameSchema = z
  .string(requiredField)
  .regex(NAME_PATTERN, `must match ${NAME_PATTERN.source}`)
  .openapi({ example: "hello" });

export const NameParamSchema = z.object({
  name: FunctionNameSchema.openapi({ param: { name: "name", in: "path" } }),
});

/** Timestamps are stored as epoch ms and shown as ISO 8601 in UTC. */
export const isoTime = (ms: number): string => new Date(ms).toISOString();

/** Routes under /api need the bearer token; the OpenAPI document says so through this scheme. */
export const BEARER_SCHEME = "bearer";

/** A route that needs a token with `scope` (or admin): documented in the OpenAPI document, checked before validation. */
export const requires = (scope: RouteScope) => ({
  security: [{ [BEARER_SCHEME]: [scope] }],
  middleware: requireScope(scope),
});

/** A JSON response in an OpenAPI route definition. */
export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { "application/json": { schema } },
  description,
});

/** The OpenAPI document's groups, in the order /docs shows them; every operation names one. */
export const TAGS = {
  functions: { name: "functions", description: "Register functions, store new versions (settings and code), roll back, remove" },
  invoke: { name: "invoke", description: "Call a function: /fn with a token, or /api/invoke as the console's signed-in user" },
  invocations: { name: "invocations", description: "The invocation log: pages, one invocation with its output, the live stream, stats" },
  jobs: {
    name: "jobs",
    description: "Asynchronous invocations (Prefer: respond-async): jobs, their cancel and redrive, the dead letters, the callback secret",
  },
  tokens: { name: "tokens", description: "Scoped API tokens (admin)" },
  session: { name: "session", description: "The web console's sign-in: a session cookie in exchange for a token" },
  operations: { name: "operations", description: "Health, Prometheus metrics, the gateways sharing the database, the database backup" },
} as const;

/** An operation's `tags` and `operationId` (the method name a generated client gets). */
export const operation = (tag: keyof typeof TAGS, operationId: string) => ({ tags: [TAGS[tag].name], operationId });

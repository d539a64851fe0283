import { z } from "@hono/zod-openapi";
import { requiredField } from "./errors.js";

/** Function names, as DESIGN.md fixes them. */
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
export const protectedRoute = { security: [{ [BEARER_SCHEME]: [] }] };

import { type Hook, z } from "@hono/zod-openapi";
import type { Context, Env, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ZodError } from "zod";
import { log } from "../core/log.js";
import { SettingsError } from "../core/settings.js";
import { PackagesFullError } from "../packages/environments.js";
import { PackageSpecError } from "../packages/spec.js";

/** Every error the gateway answers with: `{ "error": { "code", "message" } }`. */
export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "not_found" }),
      message: z.string().openapi({ example: "no function named 'hello'" }),
      invocation_id: z.string().optional().openapi({ description: "Set on errors of an invocation that reached the log" }),
      line: z
        .number()
        .int()
        .nullable()
        .optional()
        .openapi({ description: "Set on a syntax_error: where the code fails to parse (1-based)" }),
      column: z.number().int().nullable().optional(),
    }),
  })
  .openapi("Error");

export type ErrorBody = z.infer<typeof ErrorSchema>;

type ErrorExtra = Omit<ErrorBody["error"], "code" | "message">;

export function errorBody(code: string, message: string, extra: ErrorExtra = {}): ErrorBody {
  return { error: { code, message, ...extra } };
}

/** An error a handler throws to answer with a given status; onError turns it into the JSON shape. */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly extra: ErrorExtra = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const notFoundError = (what: string) => new ApiError(404, "not_found", what);

/** One line per problem, each naming the field: `timeout_ms: Too big: expected number to be <=300000`. */
export function describeZodError(error: ZodError): string {
  return error.issues
    .map((issue) => {
      const field = issue.path.map(String).join(".") || "body";
      // A bad record key carries its reason one level down.
      const message = issue.code === "invalid_key" ? (issue.issues[0]?.message ?? issue.message) : issue.message;
      return `${field}: ${message}`;
    })
    .join("; ");
}

/** The default hook of every router: a failed zod validation becomes a 400 in the error shape. */
export const validationHook: Hook<unknown, Env, string, Response | undefined> = (result, c) => {
  if (!result.success) return c.json(errorBody("invalid_request", describeZodError(result.error)), 400);
  return undefined;
};

const CODE_BY_STATUS: Partial<Record<number, string>> = {
  400: "bad_request",
  401: "unauthorized",
  404: "not_found",
  405: "method_not_allowed",
  409: "conflict",
  413: "payload_too_large",
  415: "unsupported_media_type",
  429: "rejected",
};

function fromHttpException(err: HTTPException): { code: string; message: string } {
  if (err.status === 400 && /malformed json/i.test(err.message)) {
    return { code: "invalid_json", message: "the request body is not valid JSON" };
  }
  if (err.status === 415) {
    return { code: "unsupported_media_type", message: "send the body as JSON with Content-Type: application/json" };
  }
  if (err.status === 413) return { code: "payload_too_large", message: "the request body is too large" };
  return { code: CODE_BY_STATUS[err.status] ?? "error", message: err.message || "request failed" };
}

/** Seconds a client is told to wait while the database is away. */
const DATABASE_RETRY_AFTER_SECONDS = 5;

/**
 * Turns anything thrown into the error shape; unexpected errors are logged and never shown. An
 * error that means the database cannot be reached (`unavailable`) is a 503 with Retry-After: the
 * write may go through in a moment (invocations of known functions are served meanwhile).
 */
export const errorHandler =
  (unavailable: (err: unknown) => boolean = () => false): ErrorHandler =>
  (err, c: Context) => {
    if (unavailable(err)) {
      log.warn({ err, method: c.req.method, path: c.req.path }, `${c.req.method} ${c.req.path}: the database is unreachable`);
      return c.json(errorBody("database_unavailable", "the database cannot be reached; retry in a moment"), 503, {
        "Retry-After": String(DATABASE_RETRY_AFTER_SECONDS),
      });
    }
    return onError(err, c);
  };

/** Turns anything thrown into the error shape; unexpected errors are logged and never shown. */
export const onError: ErrorHandler = (err, c: Context) => {
  if (err instanceof ApiError) return c.json(errorBody(err.code, err.message, err.extra), err.status, err.headers);
  if (err instanceof SettingsError) return c.json(errorBody("invalid_request", err.message), 400);
  if (err instanceof PackageSpecError) return c.json(errorBody(err.code, err.message), 400);
  if (err instanceof PackagesFullError) return c.json(errorBody(err.code, err.message), 507);
  if (err instanceof HTTPException) {
    const { code, message } = fromHttpException(err);
    return c.json(errorBody(code, message), err.status);
  }
  // The invocation id, on /fn, ties this line to the answer the client got (x-invocation-id).
  const invocationId: unknown = c.get("invocationId" as never);
  log.error(
    { err, method: c.req.method, path: c.req.path, invocation_id: invocationId },
    `unexpected error on ${c.req.method} ${c.req.path}`,
  );
  return c.json(errorBody("internal", "internal error"), 500);
};

export const notFound: NotFoundHandler = (c) => c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404);

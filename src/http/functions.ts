import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Config } from "../config.js";
import type { CurrentFunction, FunctionSettings, FunctionStore, FunctionVersion } from "../db/functions.js";
import { RUNTIMES, type Runtime } from "../sandbox/types.js";
import { ApiError, ErrorSchema, notFoundError, requiredField, validationHook } from "./errors.js";
import { FunctionNameSchema, isoTime, NameParamSchema, protectedRoute } from "./schemas.js";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** What GET shows instead of an environment variable's value. */
export const MASKED = "***";

const runtimeSchema = z.enum(RUNTIMES as [Runtime, ...Runtime[]], requiredField).openapi({ example: "python" });

/** The request and response schemas; limits come from the configuration, so they are built per app. */
export function functionSchemas(config: Config) {
  const code = z
    .string(requiredField)
    .min(1, "must not be empty")
    .refine((text) => Buffer.byteLength(text, "utf8") <= config.MAX_CODE_BYTES, {
      message: `must be at most ${config.MAX_CODE_BYTES} bytes (MAX_CODE_BYTES)`,
    })
    .openapi({ example: 'def handler(request):\n    return {"hello": request.query.get("name", "world")}\n' });
  const vars = z
    .record(
      // Any name is fine, LD_PRELOAD or NODE_OPTIONS included: the sandbox sets a function's
      // variables only after the lock-down, so none of them can steer the interpreter's start.
      z.string().regex(ENV_NAME, `environment variable names must match ${ENV_NAME.source}`),
      z.string().refine((value) => !value.includes("\0"), { message: "must not contain NUL" }),
    )
    .refine((vars) => Object.keys(vars).length <= config.MAX_ENV_VARS, {
      message: `at most ${config.MAX_ENV_VARS} variables (MAX_ENV_VARS)`,
    })
    .refine(
      (vars) =>
        Object.entries(vars).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0) <=
        config.MAX_ENV_BYTES,
      { message: `names and values together must be at most ${config.MAX_ENV_BYTES} bytes (MAX_ENV_BYTES)` },
    )
    .openapi({ example: { GREETING: "hi" }, description: `Names match ${ENV_NAME.source}` });
  // JSON.parse keeps "__proto__" as an own key, but a record drops it: refuse it rather than lose it.
  const env = z.preprocess((raw, ctx) => {
    if (typeof raw === "object" && raw !== null && Object.hasOwn(raw, "__proto__")) {
      ctx.addIssue({ code: "custom", message: "__proto__ cannot be an environment variable name", path: ["__proto__"] });
    }
    return raw;
  }, vars);
  const settings = {
    runtime: runtimeSchema,
    code,
    timeout_ms: z
      .number()
      .int()
      .min(100)
      .max(config.MAX_TIMEOUT_MS)
      .openapi({ description: `Default ${config.DEFAULT_TIMEOUT_MS}` }),
    memory_mb: z
      .number()
      .int()
      .min(32)
      .max(config.MAX_MEMORY_MB)
      .openapi({ description: `Default ${config.DEFAULT_MEMORY_MB}` }),
    network: z.boolean().openapi({ description: "Whether the function may open network sockets. Default false" }),
    env,
    public: z.boolean().openapi({ description: "Whether /fn/:name may be called without the token. Default false" }),
    max_concurrency: z
      .number()
      .int()
      .min(1)
      .max(config.MAX_CONCURRENCY)
      .nullable()
      .openapi({ description: "Invocations of this function in progress at once, past it 429; null (default): only the gateway's limit" }),
  };

  const CreateFunction = z
    .strictObject({
      name: FunctionNameSchema,
      runtime: settings.runtime,
      code: settings.code,
      timeout_ms: settings.timeout_ms.optional(),
      memory_mb: settings.memory_mb.optional(),
      network: settings.network.optional(),
      env: settings.env.optional(),
      public: settings.public.optional(),
      max_concurrency: settings.max_concurrency.optional(),
    })
    .openapi("CreateFunction");

  const UpdateFunction = z
    .strictObject({
      name: FunctionNameSchema.optional().openapi({ description: "If given, must be the name in the path" }),
      runtime: settings.runtime.optional(),
      code: settings.code.optional(),
      timeout_ms: settings.timeout_ms.optional(),
      memory_mb: settings.memory_mb.optional(),
      network: settings.network.optional(),
      env: settings.env.optional(),
      public: settings.public.optional(),
      max_concurrency: settings.max_concurrency.optional(),
    })
    .openapi("UpdateFunction", {
      description: "A new version: fields left out keep their value from the current version (env included). At least one field besides name.",
      minProperties: 1,
    });

  return { CreateFunction, UpdateFunction };
}

const VersionFields = {
  version: z.number().int().openapi({ example: 1 }),
  runtime: runtimeSchema,
  timeout_ms: z.number().int(),
  memory_mb: z.number().int(),
  network: z.boolean(),
  public: z.boolean(),
  max_concurrency: z.number().int().nullable(),
  env: z.record(z.string(), z.string()).openapi({ description: `Values are masked as "${MASKED}"` }),
};

export const FunctionSchema = z
  .object({
    name: FunctionNameSchema,
    ...VersionFields,
    code: z.string(),
    created_at: z.string().openapi({ description: "When the function was first registered" }),
    updated_at: z.string().openapi({ description: "When the current version was stored" }),
  })
  .openapi("Function");

const FunctionSummarySchema = z
  .object({ name: FunctionNameSchema, runtime: runtimeSchema, version: z.number().int(), public: z.boolean(), updated_at: z.string() })
  .openapi("FunctionSummary");

const VersionSchema = z
  .object({ name: FunctionNameSchema, ...VersionFields, code: z.string(), created_at: z.string() })
  .openapi("FunctionVersion");

function maskEnv(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.keys(env).map((key) => [key, MASKED]));
}

function versionFields(v: FunctionVersion) {
  return {
    version: v.version,
    runtime: v.runtime,
    timeout_ms: v.timeoutMs,
    memory_mb: v.memoryMb,
    network: v.network,
    public: v.public,
    max_concurrency: v.maxConcurrency,
    env: maskEnv(v.env),
  };
}

function versionJson(v: FunctionVersion): z.infer<typeof VersionSchema> {
  return { name: v.name, ...versionFields(v), code: v.code, created_at: isoTime(v.createdAt) };
}

export function functionJson(fn: CurrentFunction): z.infer<typeof FunctionSchema> {
  return {
    name: fn.name,
    ...versionFields(fn),
    code: fn.code,
    created_at: isoTime(fn.functionCreatedAt),
    updated_at: isoTime(fn.createdAt),
  };
}

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { "application/json": { schema } },
  description,
});
const errors = {
  400: json(ErrorSchema, "Invalid request"),
  401: json(ErrorSchema, "Missing or wrong token"),
};
const notFound = { 404: json(ErrorSchema, "No such function") };

const unknownFunction = (name: string) => notFoundError(`no function named '${name}'`);

/** POST/GET/PUT/DELETE /api/functions and the versions of a function. */
export function functionRoutes(deps: { config: Config; functions: FunctionStore }) {
  const { config, functions } = deps;
  const { CreateFunction, UpdateFunction } = functionSchemas(config);
  const app = new OpenAPIHono({ defaultHook: validationHook });

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/functions",
      summary: "Register a function (version 1)",
      ...protectedRoute,
      request: { body: { content: { "application/json": { schema: CreateFunction } }, required: true } },
      responses: {
        201: json(FunctionSchema, "The function, version 1"),
        ...errors,
        409: json(ErrorSchema, "The name is taken"),
        413: json(ErrorSchema, "Body too large"),
      },
    }),
    (c) => {
      const body = c.req.valid("json");
      const created = functions.create(body.name, {
        runtime: body.runtime,
        code: body.code,
        timeoutMs: body.timeout_ms ?? Math.min(config.DEFAULT_TIMEOUT_MS, config.MAX_TIMEOUT_MS),
        memoryMb: body.memory_mb ?? Math.min(config.DEFAULT_MEMORY_MB, config.MAX_MEMORY_MB),
        network: body.network ?? false,
        env: body.env ?? {},
        public: body.public ?? false,
        maxConcurrency: body.max_concurrency ?? null,
      });
      if (!created) throw new ApiError(409, "conflict", `a function named '${body.name}' exists; PUT /api/functions/${body.name} adds a version`);
      c.header("Location", `/api/functions/${created.name}`);
      return c.json(functionJson(created), 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/functions",
      summary: "List functions",
      ...protectedRoute,
      responses: {
        200: json(z.object({ items: z.array(FunctionSummarySchema) }), "Every function, by name"),
        401: errors[401],
      },
    }),
    (c) => {
      const items = functions.list().map((f) => ({
        name: f.name,
        runtime: f.runtime,
        version: f.version,
        public: f.public,
        updated_at: isoTime(f.updatedAt),
      }));
      return c.json({ items }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/functions/{name}",
      summary: "The current version of a function, code included, env values masked",
      ...protectedRoute,
      request: { params: NameParamSchema },
      responses: { 200: json(FunctionSchema, "The current version"), ...errors, ...notFound },
    }),
    (c) => {
      const { name } = c.req.valid("param");
      const fn = functions.get(name);
      if (!fn) throw unknownFunction(name);
      return c.json(functionJson(fn), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/api/functions/{name}",
      summary: "Store a new version (version + 1); older versions stay",
      ...protectedRoute,
      request: {
        params: NameParamSchema,
        body: { content: { "application/json": { schema: UpdateFunction } }, required: true },
      },
      responses: { 200: json(FunctionSchema, "The new current version"), ...errors, ...notFound },
    }),
    (c) => {
      const { name } = c.req.valid("param");
      const body = c.req.valid("json") ?? {};
      if (Object.keys(body).every((field) => field === "name")) {
        throw new ApiError(400, "invalid_request", "body: give at least one field to change (runtime, code, timeout_ms, memory_mb, network, env, public, max_concurrency)");
      }
      if (body.name !== undefined && body.name !== name) {
        throw new ApiError(400, "invalid_request", `name: '${body.name}' differs from the name in the path; functions cannot be renamed`);
      }
      const current = functions.get(name);
      if (!current) throw unknownFunction(name);
      const next: FunctionSettings = {
        runtime: body.runtime ?? current.runtime,
        code: body.code ?? current.code,
        timeoutMs: body.timeout_ms ?? current.timeoutMs,
        memoryMb: body.memory_mb ?? current.memoryMb,
        network: body.network ?? current.network,
        env: body.env ?? current.env,
        public: body.public ?? current.public,
        maxConcurrency: body.max_concurrency === undefined ? current.maxConcurrency : body.max_concurrency,
      };
      const updated = functions.addVersion(name, next);
      if (!updated) throw unknownFunction(name);
      return c.json(functionJson(updated), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/functions/{name}/versions",
      summary: "Every version of a function, newest first, each with its code",
      ...protectedRoute,
      request: { params: NameParamSchema },
      responses: {
        200: json(z.object({ name: FunctionNameSchema, items: z.array(VersionSchema) }), "Newest first"),
        ...errors,
        ...notFound,
      },
    }),
    (c) => {
      const { name } = c.req.valid("param");
      const versions = functions.versions(name);
      if (!versions) throw unknownFunction(name);
      return c.json({ name, items: versions.map(versionJson) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/functions/{name}/versions/{version}",
      summary: "One version of a function, code included",
      ...protectedRoute,
      request: {
        params: NameParamSchema.extend({
          version: z.coerce.number().int().min(1).openapi({ param: { name: "version", in: "path" }, example: 1 }),
        }),
      },
      responses: { 200: json(VersionSchema, "The version"), ...errors, 404: json(ErrorSchema, "No such function or version") },
    }),
    (c) => {
      const { name, version } = c.req.valid("param");
      const found = functions.getVersion(name, version);
      if (!found) {
        throw notFoundError(functions.get(name) ? `function '${name}' has no version ${version}` : `no function named '${name}'`);
      }
      return c.json(versionJson(found), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/functions/{name}",
      summary: "Remove a function and its versions; its invocation log stays",
      ...protectedRoute,
      request: { params: NameParamSchema },
      responses: { 204: { description: "Removed" }, ...errors, ...notFound },
    }),
    (c) => {
      const { name } = c.req.valid("param");
      if (!functions.delete(name)) throw unknownFunction(name);
      return c.body(null, 204);
    },
  );

  return app;
}

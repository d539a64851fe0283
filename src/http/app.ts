import { OpenAPIHono } from "@hono/zod-openapi";
import type { Config } from "../config.js";
import type { FunctionStore } from "../db/functions.js";
import type { InvocationLog } from "../db/invocations.js";
import type { Runner } from "../sandbox/types.js";
import { consoleRoutes, isolateFunctionPages } from "./console.js";
import { ApiError, notFound, onError, validationHook } from "./errors.js";
import { functionRoutes } from "./functions.js";
import { healthRoutes, type SandboxHealth } from "./health.js";
import { Inflight } from "./inflight.js";
import { invocationRoutes } from "./invocations.js";
import { invokeRoutes, readBodyWithin } from "./invoke.js";
import { mountDocs } from "./openapi.js";
import { rollbackRoutes } from "./rollback.js";
import { requireTokenOrSession, SessionStore, sessionRoutes } from "./session.js";
import { InvocationFeed, publishingFinishes, streamRoutes } from "./stream.js";

export interface AppDeps {
  config: Config;
  stores: { functions: FunctionStore; invocations: InvocationLog };
  runner: Runner;
  /** SHA-256 of the API token (see provisionToken). */
  tokenHash: Buffer;
  /** The sandbox's readiness for /healthz; reports ready when absent. */
  health?: () => SandboxHealth;
  /** Shared with main.ts so shutdown can wait for running invocations. */
  inflight?: Inflight;
  /** Invocation ids; UUIDv7 by default. */
  newId?: () => string;
  /** The wall clock for stats windows; Date.now by default. */
  now?: () => number;
  /** Whether /fn answers carry the sandbox CSP (FUNCTIONS_ORIGIN_ISOLATION); on by default. */
  functionsOriginIsolation?: boolean;
}

/** The order methods are listed in an Allow header. */
const METHOD_ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/**
 * For each route in the OpenAPI registry, a 405 with Allow for the methods it does not serve
 * (HEAD is served wherever GET is), rather than a 404.
 */
function refuseOtherMethods(app: OpenAPIHono): void {
  const methodsByPath = new Map<string, Set<string>>();
  for (const definition of app.openAPIRegistry.definitions) {
    if (definition.type !== "route") continue;
    const methods = methodsByPath.get(definition.route.path) ?? new Set<string>();
    methods.add(definition.route.method.toUpperCase());
    if (methods.has("GET")) methods.add("HEAD");
    methodsByPath.set(definition.route.path, methods);
  }
  for (const [path, methods] of methodsByPath) {
    const allow = METHOD_ORDER.filter((m) => methods.has(m)).join(", ");
    app.all(path.replace(/\{(\w+)\}/g, ":$1"), () => {
      throw new ApiError(405, "method_not_allowed", `this route answers ${allow}`, { Allow: allow });
    });
  }
}

/** Slack over the largest function (code + env) for the JSON around it. */
const API_BODY_SLACK = 64 * 1024;
/** The longest JSON escape of one byte (`\u0000`): code within MAX_CODE_BYTES may grow sixfold in JSON. */
const JSON_ESCAPE_GROWTH = 6;

/**
 * Builds the whole HTTP product from its dependencies; tests call it with a real database and a
 * scripted runner.
 *
 * Where DESIGN.md is silent, the API does this:
 * - Errors are `{ error: { code, message } }` with a string code (`invalid_request`, `invalid_json`,
 *   `unauthorized`, `not_found`, `conflict`, `payload_too_large`, `unsupported_media_type`,
 *   `internal`); an invocation's own failure uses its status as the code (`error`, `timeout`,
 *   `oom`, `forbidden`, `rejected`) and adds `invocation_id`.
 * - POST/PUT bodies must be JSON (else 415) with no unknown fields. PUT stores a new version in
 *   which omitted fields keep their current value, env included (GET masks env values as "***",
 *   so a client could not resend them). DELETE answers 204.
 * - `GET /api/functions/:name/versions` lists every version with its code (env masked);
 *   `GET /api/functions/:name/versions/:n` returns one.
 * - Env names are any `[A-Za-z_][A-Za-z0-9_]*`: the sandbox sets them after the lock-down, so even
 *   LD_PRELOAD or NODE_OPTIONS cannot steer an interpreter's start.
 * - /fn: every answer carries `x-invocation-id`, including 401/404 ones; every invocation past auth
 *   gets a log row, the gateway's refusals included (`rejected`: 429, or 413 for a body over the
 *   cap), so only 401/404 ids are not in the log. The
 *   function receives the same id as a request header and never the Authorization header.
 *   `@N` runs without the token only if both version N and the current version are public.
 * - The log list omits stdout/stderr (one invocation has them); since is inclusive, until
 *   exclusive; a date without time means 00:00 UTC; times without a zone are refused.
 * - Stats: `errors` counts error + oom + forbidden (the 500s), `timeouts` the 504s, `by_status`
 *   everything; percentiles are nearest-rank over invocations that ran; windows 1m to 90d.
 * - /healthz answers 503 while the sandbox is not ready.
 */
export function createApp(deps: AppDeps) {
  const { config, stores } = deps;
  const inflight = deps.inflight ?? new Inflight();
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.onError(onError);
  app.notFound(notFound);

  const maxApiBody = JSON_ESCAPE_GROWTH * (config.MAX_CODE_BYTES + config.MAX_ENV_BYTES) + API_BODY_SLACK;
  const sessions = new SessionStore();
  const feed = new InvocationFeed();
  const invocationLog = publishingFinishes(stores.invocations, feed);
  app.route("/", consoleRoutes());
  app.use("/fn/*", isolateFunctionPages(deps.functionsOriginIsolation ?? true));
  app.route("/", sessionRoutes(deps.tokenHash, sessions)); // before the guard: signing in needs no session
  app.use("/api/*", requireTokenOrSession(deps.tokenHash, sessions));
  app.use("/api/*", async (c, next) => {
    if (!c.req.raw.body) return next();
    // Not hono's bodyLimit: it leaves an oversize body unread, and the connection then ends under a client still sending.
    const read = await readBodyWithin(c.req.raw, maxApiBody);
    if (!("body" in read)) {
      const message = "the request body is too large for a function definition";
      throw new ApiError(413, "payload_too_large", message, read.keepAlive ? {} : { Connection: "close" });
    }
    c.req.raw = new Request(c.req.raw, { body: read.body as Uint8Array<ArrayBuffer> });
    return next();
  });

  app.route("/", healthRoutes({ health: deps.health }));
  app.route("/", functionRoutes({ config, functions: stores.functions }));
  app.route("/", rollbackRoutes({ functions: stores.functions }));
  app.route("/", streamRoutes(feed)); // before /api/invocations/:id
  app.route("/", invocationRoutes({ functions: stores.functions, invocations: stores.invocations, now: deps.now }));
  app.route(
    "/",
    invokeRoutes({
      config,
      functions: stores.functions,
      invocations: invocationLog,
      runner: deps.runner,
      tokenHash: deps.tokenHash,
      inflight,
      newId: deps.newId,
    }),
  );
  refuseOtherMethods(app); // before mountDocs: /fn answers every method itself
  mountDocs(app, "0.1.0");
  return app;
}

export type App = ReturnType<typeof createApp>;

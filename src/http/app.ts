import { OpenAPIHono } from "@hono/zod-openapi";
import type { Config } from "../core/config.js";
import type { Runner, RunnerHealth } from "../core/runner.js";
import type { FunctionStore } from "../db/functions.js";
import type { InvocationLog } from "../db/invocations.js";
import type { TokenStore } from "../db/tokens.js";
import type { FunctionEnvironments } from "../packages/function-environments.js";
import { Admission, ReadingLimit } from "./admission.js";
import { ApiError, notFound, onError, validationHook } from "./errors.js";
import { InvocationFeed } from "./feed.js";
import { GatewayMetrics } from "./metrics.js";
import { bodyLimit } from "./middleware/body-limit.js";
import { isolateFunctionPages } from "./middleware/function-isolation.js";
import { requireTokenOrSession, SessionStore } from "./middleware/session.js";
import { mountDocs } from "./openapi.js";
import { backupApi } from "./routes/backup.js";
import { consoleApi } from "./routes/console.js";
import { functionsApi } from "./routes/functions.js";
import { type HealthChecks, healthApi } from "./routes/health.js";
import { invocationsApi } from "./routes/invocations.js";
import { invokeApi } from "./routes/invoke.js";
import { metricsApi } from "./routes/metrics.js";
import { sessionApi } from "./routes/session.js";
import { statsApi } from "./routes/stats.js";
import { streamApi } from "./routes/stream.js";
import { tokensApi } from "./routes/tokens.js";

export interface AppDeps {
  config: Config;
  stores: { functions: FunctionStore; invocations: InvocationLog; tokens: TokenStore };
  runner: Runner;
  /** What /healthz checks besides the runner, by name (the database). */
  checks?: HealthChecks;
  /** The runner's readiness for /healthz (as `sandbox`); reports ready when absent. */
  health?: () => RunnerHealth;
  /** Shared with the server so shutdown can wait for invocations in progress. */
  admission?: Admission;
  /** Invocation ids; UUIDv7 by default. */
  newId?: () => string;
  /** The wall clock for stats windows; Date.now by default. */
  now?: () => number;
  /** SQLite's online backup of the live database into a file (GET /api/backup). */
  backup: (file: string) => Promise<unknown>;
  /** The database's size for /metrics (file and write-ahead log, pages in use); left out when absent. */
  databaseBytes?: () => { file: number; used: number };
  /** Package environments (shown in /healthz as `packages`); without them functions with packages are refused. */
  packages?: FunctionEnvironments;
}

/** Slack over the largest function (code + env) for the JSON around it. */
const API_BODY_SLACK = 64 * 1024;
/** The longest JSON escape of one byte (`\u0000`): code within MAX_CODE_BYTES may grow sixfold in JSON. */
const JSON_ESCAPE_GROWTH = 6;

/**
 * The whole HTTP product, built from its dependencies (tests pass a real database and a scripted
 * runner): each resource is a sub-app mounted under its prefix; errors and unknown routes are
 * answered once, here. The API's decisions are written down in docs/api.md.
 */
export function createApp(deps: AppDeps) {
  const { config, stores } = deps;
  const functions = stores.functions;
  const invocations = stores.invocations;
  const admission = deps.admission ?? new Admission(config.MAX_CONCURRENCY + config.QUEUE_LIMIT);
  const reading = new ReadingLimit(config.MAX_READING_REQUESTS);
  const maxApiBody = JSON_ESCAPE_GROWTH * (config.MAX_CODE_BYTES + config.MAX_ENV_BYTES) + API_BODY_SLACK;

  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.onError(onError);
  app.notFound(notFound);
  const sessions = new SessionStore();
  const feed = new InvocationFeed();
  const health = deps.health ?? (() => ({ ready: true }));
  const metrics = new GatewayMetrics({ inFlight: () => admission.size, health, databaseBytes: deps.databaseBytes });

  const invokeDeps = {
    config,
    functions,
    invocations,
    runner: deps.runner,
    tokens: stores.tokens,
    admission,
    reading,
    feed,
    metrics,
    newId: deps.newId,
    packages: deps.packages,
  };
  app.route("/", consoleApi());
  app.route("/api/session", sessionApi(stores.tokens, sessions)); // before the guard: signing in needs no session
  const isolation = isolateFunctionPages(config.FUNCTIONS_ORIGIN_ISOLATION === "on");
  // /api/invoke: /fn as the signed-in console user. Before the API's body limit: the invocation
  // reads its body itself, bounded as /fn's is; its answers are a function's, isolated as /fn's are.
  app.use("/api/invoke/*", requireTokenOrSession(stores.tokens, sessions), isolation);
  app.route("/api/invoke", invokeApi({ ...invokeDeps, prefix: "/api/invoke/", caller: (c) => ({ kind: "ok", token: c.get("apiToken") }) }));
  app.use(
    "/api/*",
    requireTokenOrSession(stores.tokens, sessions),
    bodyLimit({ maxBytes: maxApiBody, timeoutMs: config.BODY_READ_TIMEOUT_MS }, "a function definition"),
  );
  app.use("/fn/*", isolation);

  const packages = deps.packages;
  const packagesCheck: HealthChecks = packages ? { packages: () => packages.health() } : {};
  app.route("/healthz", healthApi({ checks: { sandbox: health, ...packagesCheck, ...deps.checks } }));
  app.route(
    "/api/functions",
    functionsApi({
      config,
      functions,
      checkSyntax: (runtime, code) => deps.runner.checkSyntax(runtime, code),
      packages,
      retire: (name) => deps.runner.retire(name),
    }),
  );
  app.route("/api/functions", statsApi({ functions, invocations, now: deps.now }));
  app.route("/api/invocations/stream", streamApi(feed));
  app.route("/api/invocations", invocationsApi({ invocations }));
  app.route("/api/tokens", tokensApi({ tokens: stores.tokens, now: deps.now }));
  app.route("/api/backup", backupApi({ dataDir: config.DATA_DIR, backup: deps.backup, now: deps.now }));
  app.route("/metrics", metricsApi({ metrics, tokens: stores.tokens }));
  app.route("/fn", invokeApi(invokeDeps));
  refuseOtherMethods(app); // before mountDocs: /fn answers every method itself
  mountDocs(app, "0.1.0");
  return app;
}

export type App = ReturnType<typeof createApp>;

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

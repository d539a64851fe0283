import { OpenAPIHono } from "@hono/zod-openapi";
import type { Cluster } from "../cluster/index.js";
import type { Config } from "../core/config.js";
import type { Runner, RunnerHealth } from "../core/runner.js";
import type { JobQueue } from "../jobs/index.js";
import type { FunctionEnvironments } from "../packages/function-environments.js";
import type { Store } from "../store/contract.js";
import { Admission, ReadingLimit } from "./admission.js";
import { ApiError, errorHandler, notFound, validationHook } from "./errors.js";
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
import { jobActionsApi, jobsApi } from "./routes/jobs.js";
import { metricsApi } from "./routes/metrics.js";
import { nodesApi } from "./routes/nodes.js";
import { schedulesApi } from "./routes/schedules.js";
import { sessionApi } from "./routes/session.js";
import { statsApi } from "./routes/stats.js";
import { streamApi } from "./routes/stream.js";
import { tokensApi } from "./routes/tokens.js";

export interface AppDeps {
  config: Config;
  store: Store;
  /** This gateway's share of the cluster: its caches of functions and tokens, the log's writer and tail. */
  cluster: Cluster;
  runner: Runner;
  /** What /healthz checks besides the runner and the database, by name. */
  checks?: HealthChecks;
  /** The runner's readiness for /healthz (as `sandbox`); reports ready when absent. */
  health?: () => RunnerHealth;
  /** Shared with the server so shutdown can wait for invocations in progress. */
  admission?: Admission;
  /** Invocation ids; UUIDv7 by default. */
  newId?: () => string;
  /** The wall clock for stats windows; Date.now by default. */
  now?: () => number;
  /** Package environments (shown in /healthz as `packages`); without them functions with packages are refused. */
  packages?: FunctionEnvironments;
  /** The job queue (src/jobs): asynchronous invocations and their routes; without it, Prefer: respond-async is ignored. */
  jobs?: JobQueue;
  /** Jobs this gateway runs now (for /metrics). */
  jobsRunning?: () => number;
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
  const { config, store, cluster } = deps;
  const { functions, tokens } = cluster;
  const invocations = store.invocations;
  const admission = deps.admission ?? new Admission(config.MAX_CONCURRENCY + config.QUEUE_LIMIT);
  const reading = new ReadingLimit(config.MAX_READING_REQUESTS);
  const maxApiBody = JSON_ESCAPE_GROWTH * (config.MAX_CODE_BYTES + config.MAX_ENV_BYTES) + API_BODY_SLACK;

  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.onError(errorHandler(store.unavailable));
  app.notFound(notFound);
  const sessions = new SessionStore(store.sessions);
  const health = deps.health ?? (() => ({ ready: true }));
  const metrics = new GatewayMetrics({
    inFlight: () => admission.size,
    health,
    node: cluster.node,
    databaseBytes: async () => {
      const sizes = await store.sizes();
      return { file: sizes.file_bytes, used: sizes.used_bytes };
    },
    jobQueue: () => store.jobs.usage(),
    jobsRunning: deps.jobsRunning,
  });
  cluster.log.onWriteTimed((kind, seconds) => metrics.observeLogWrite(kind, seconds));
  // A function deleted on any gateway (this one too) stops its warm instances here at once.
  functions.onFunctionChange((name, current) => {
    if (current === undefined) deps.runner.retire(name);
  });
  // Ready while invocations can be logged: a shared database that is away leaves the gateway
  // serving (rows wait in the spool), so it stays in its load balancer until the spool is full.
  const database = async () => {
    const status = await store.status();
    return {
      ...status,
      ready: status.ready || (store.remote && cluster.log.accepting),
      ...cluster.log.health(),
      budget_bytes: config.LOG_MAX_MB * 1024 * 1024,
    };
  };

  const invokeDeps = {
    config,
    functions,
    log: cluster.log,
    runner: deps.runner,
    tokens,
    admission,
    reading,
    feed: cluster.feed,
    metrics,
    newId: deps.newId,
    packages: deps.packages,
    jobs: deps.jobs,
    unavailable: store.unavailable,
  };
  app.route("/", consoleApi());
  app.route("/api/session", sessionApi(tokens, sessions)); // before the guard: signing in needs no session
  const isolation = isolateFunctionPages(config.FUNCTIONS_ORIGIN_ISOLATION === "on");
  // /api/invoke: /fn as the signed-in console user. Before the API's body limit: the invocation
  // reads its body itself, bounded as /fn's is; its answers are a function's, isolated as /fn's are.
  app.use("/api/invoke/*", requireTokenOrSession(tokens, sessions), isolation);
  app.route("/api/invoke", invokeApi({ ...invokeDeps, prefix: "/api/invoke/", caller: (c) => ({ kind: "ok", token: c.get("apiToken") }) }));
  app.use(
    "/api/*",
    requireTokenOrSession(tokens, sessions),
    bodyLimit({ maxBytes: maxApiBody, timeoutMs: config.BODY_READ_TIMEOUT_MS }, "a function definition"),
  );
  app.use("/fn/*", isolation);

  const packages = deps.packages;
  const packagesCheck: HealthChecks = packages ? { packages: () => packages.health() } : {};
  app.route("/healthz", healthApi({ checks: { sandbox: health, database, ...packagesCheck, ...deps.checks } }));
  app.route(
    "/api/functions",
    functionsApi({ config, functions, checkSyntax: (runtime, code) => deps.runner.checkSyntax(runtime, code), packages }),
  );
  app.route("/api/functions", statsApi({ functions, invocations, now: deps.now }));
  app.route("/api/invocations/stream", streamApi(cluster.feed));
  app.route("/api/functions", schedulesApi({ functions, schedules: store.schedules, now: deps.now }));
  app.route("/api/invocations", invocationsApi({ invocations, jobs: store.jobs }));
  if (deps.jobs) {
    app.route("/api/invocations", jobActionsApi({ jobs: store.jobs, invocations, queue: deps.jobs, now: deps.now, newId: deps.newId }));
    app.route("/api/jobs", jobsApi({ jobs: store.jobs, queue: deps.jobs }));
  }
  app.route("/api/tokens", tokensApi({ tokens, now: deps.now }));
  app.route("/api/nodes", nodesApi({ nodes: store.nodes, self: cluster.node }));
  app.route("/api/backup", backupApi({ dataDir: config.DATA_DIR, backup: store.backup, now: deps.now }));
  app.route("/metrics", metricsApi({ metrics, tokens }));
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

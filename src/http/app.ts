import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import type { Config } from "../config.js";
import type { FunctionStore } from "../db/functions.js";
import type { InvocationLog } from "../db/invocations.js";
import type { Runner } from "../sandbox/types.js";
import { requireToken } from "./auth.js";
import { ApiError, notFound, onError, validationHook } from "./errors.js";
import { functionRoutes } from "./functions.js";
import { healthRoutes, type SandboxHealth } from "./health.js";
import { Inflight } from "./inflight.js";
import { invocationRoutes } from "./invocations.js";
import { invokeRoutes } from "./invoke.js";
import { mountDocs } from "./openapi.js";

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
}

/** Slack over the largest function (code + env) for the JSON around it. */
const API_BODY_SLACK = 64 * 1024;

/** Builds the whole HTTP product from its dependencies; tests call it with a real database and a stub runner. */
export function createApp(deps: AppDeps) {
  const { config, stores } = deps;
  const inflight = deps.inflight ?? new Inflight();
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.onError(onError);
  app.notFound(notFound);

  app.use("/api/*", requireToken(deps.tokenHash));
  app.use(
    "/api/*",
    bodyLimit({
      maxSize: config.MAX_CODE_BYTES + config.MAX_ENV_BYTES + API_BODY_SLACK,
      onError: () => {
        throw new ApiError(413, "payload_too_large", "the request body is too large for a function definition");
      },
    }),
  );

  app.route("/", healthRoutes({ health: deps.health }));
  app.route("/", functionRoutes({ config, functions: stores.functions }));
  app.route("/", invocationRoutes({ functions: stores.functions, invocations: stores.invocations, now: deps.now }));
  app.route(
    "/",
    invokeRoutes({
      config,
      functions: stores.functions,
      invocations: stores.invocations,
      runner: deps.runner,
      tokenHash: deps.tokenHash,
      inflight,
      newId: deps.newId,
    }),
  );
  mountDocs(app, "0.1.0");
  return app;
}

export type App = ReturnType<typeof createApp>;

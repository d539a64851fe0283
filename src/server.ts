import type { Server } from "node:http";
import { setTimeout as delay } from "node:timers/promises";
import { serve } from "@hono/node-server";
import type { Config } from "./core/config.js";
import type { InvocationLog } from "./db/invocations.js";
import type { Admission } from "./http/admission.js";
import type { App } from "./http/app.js";
import { answerClientErrorsAsJson } from "./http/client-error.js";

/**
 * How long a client may take to send a whole request (headers and body; not the time the
 * function runs). A body is cut sooner, at BODY_READ_TIMEOUT_MS (a 408); this is Node's own
 * backstop, kept above it so the gateway's answer goes out first.
 */
const REQUEST_TIMEOUT_MS = 60_000;

export interface ServeDeps {
  config: Config;
  app: App;
  admission: Admission;
  invocations: InvocationLog;
  /** Stops what runs beside the server, in order, before the process exits: retention, the sandbox, the database. */
  stopBackground(): void;
  closeSandbox(): Promise<void>;
  closeDatabase(): void;
}

/** Serves the app and stops it cleanly on SIGTERM or SIGINT; a second signal exits at once. */
export function serveGateway(deps: ServeDeps): Server {
  const { config, admission, invocations } = deps;
  // serve() makes an http.Server unless told to make an http2 one.
  const server = serve(
    { fetch: deps.app.fetch, hostname: config.HOST, port: config.PORT, serverOptions: { requestTimeout: Math.max(REQUEST_TIMEOUT_MS, config.BODY_READ_TIMEOUT_MS + 10_000) } },
    (info) => {
      const shownHost = config.HOST === "0.0.0.0" || config.HOST === "::" ? "localhost" : config.HOST;
      console.log(`fngw listening on http://${shownHost}:${info.port} (bound to ${config.HOST}; API docs at /docs)`);
    },
  ) as Server;
  answerClientErrorsAsJson(server);

  let stopping = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (stopping) {
      console.error(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    console.log(`${signal}: no new connections; waiting up to ${config.SHUTDOWN_GRACE_MS} ms for ${admission.size} invocation(s)`);
    deps.stopBackground();
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    if (!(await admission.idle(config.SHUTDOWN_GRACE_MS))) {
      console.log(`${admission.size} invocation(s) outlived the grace period; closing the sandbox ends them`);
    }
    try {
      await deps.closeSandbox();
    } catch (err) {
      console.error("closing the sandbox failed:", err);
    }
    // Let the last handlers write their rows and answer; whatever is still `running` after that was cut short.
    await admission.idle(1000);
    const cut = invocations.markInterrupted();
    if (cut > 0) console.log(`${cut} invocation(s) end as interrupted`);
    // Answers still being written reach their clients: sockets close as they go idle, the rest are cut after 2 s.
    const closeIdle = setInterval(() => server.closeIdleConnections(), 50);
    await Promise.race([serverClosed, delay(2000)]);
    clearInterval(closeIdle);
    server.closeAllConnections();
    deps.closeDatabase();
    process.exit(0);
  };
  process.on("SIGTERM", (signal) => void shutdown(signal));
  process.on("SIGINT", (signal) => void shutdown(signal));
  return server;
}

import type { Server } from "node:http";
import { setTimeout as delay } from "node:timers/promises";
import { serve } from "@hono/node-server";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { createStores, openDatabase } from "./db/index.js";
import { startRetention } from "./db/retention.js";
import { createApp } from "./http/app.js";
import { functionsOriginIsolation } from "./http/console.js";
import { provisionToken } from "./http/auth.js";
import { Inflight } from "./http/inflight.js";
import { Sandbox } from "./sandbox/index.js";

/**
 * How long a client may take to send a whole request (headers and body; not the time the
 * function runs): a slow sender holds a body buffer and an admission place, so not for long.
 */
const REQUEST_TIMEOUT_MS = 60_000;

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

async function main(): Promise<void> {
  let config: Config;
  let isolation: boolean;
  try {
    config = loadConfig();
    isolation = functionsOriginIsolation(process.env.FUNCTIONS_ORIGIN_ISOLATION);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  if (process.getuid?.() !== 0) {
    fail("fngw must run as root (or in its Docker image): every invocation is jailed with chroot, a uid switch and cgroups.");
  }

  const database = openDatabase(config.DB_PATH);
  const stores = createStores(database);
  const interrupted = stores.invocations.markInterrupted();
  if (interrupted > 0) console.log(`marked ${interrupted} invocation(s) left running by the last process as interrupted`);
  const token = provisionToken(stores.settings, config.GATEWAY_TOKEN);
  if (token.generated) {
    console.log(`API token (printed this once; only its hash is stored; set GATEWAY_TOKEN to choose your own): ${token.generated}`);
  }

  let sandbox: Sandbox;
  try {
    sandbox = await Sandbox.start(config);
  } catch (err) {
    database.close();
    fail(`the sandbox could not start: ${err instanceof Error ? err.message : String(err)}`);
  }

  const inflight = new Inflight();
  const app = createApp({ config, stores, runner: sandbox, tokenHash: token.hash, health: () => sandbox.health(), inflight, functionsOriginIsolation: isolation });
  const retention = startRetention(stores.invocations, {
    retentionDays: config.LOG_RETENTION_DAYS,
    retentionRows: config.LOG_RETENTION_ROWS,
    intervalMs: config.LOG_PRUNE_INTERVAL_MS,
  });
  // First pass right away, so a lowered limit applies without waiting an interval.
  retention.runOnce().catch((err: unknown) => console.error("log retention failed:", err));

  // serve() makes an http.Server unless told to make an http2 one.
  const server = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT, serverOptions: { requestTimeout: REQUEST_TIMEOUT_MS } }, (info) => {
    const shownHost = config.HOST === "0.0.0.0" || config.HOST === "::" ? "localhost" : config.HOST;
    console.log(`fngw listening on http://${shownHost}:${info.port} (bound to ${config.HOST}; API docs at /docs)`);
  }) as Server;

  let stopping = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (stopping) {
      console.error(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    console.log(`${signal}: no new connections; waiting up to ${config.SHUTDOWN_GRACE_MS} ms for ${inflight.size} invocation(s)`);
    retention.stop();
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    if (!(await inflight.idle(config.SHUTDOWN_GRACE_MS))) {
      console.log(`${inflight.size} invocation(s) outlived the grace period; closing the sandbox ends them`);
    }
    try {
      await sandbox.close();
    } catch (err) {
      console.error("closing the sandbox failed:", err);
    }
    // Let the last handlers write their rows and answer; whatever is still `running` after that was cut short.
    await inflight.idle(1000);
    const cut = stores.invocations.markInterrupted();
    if (cut > 0) console.log(`${cut} invocation(s) end as interrupted`);
    // Answers still being written reach their clients: sockets close as they go idle, the rest are cut after 2 s.
    const closeIdle = setInterval(() => server.closeIdleConnections(), 50);
    await Promise.race([serverClosed, delay(2000)]);
    clearInterval(closeIdle);
    server.closeAllConnections();
    database.close();
    process.exit(0);
  };
  process.on("SIGTERM", (signal) => void shutdown(signal));
  process.on("SIGINT", (signal) => void shutdown(signal));
}

main().catch((err: unknown) => {
  console.error("fngw failed to start:", err);
  process.exit(1);
});

import { ConfigError, loadConfig, type Config } from "./core/config.js";
import { openDatabase } from "./db/client.js";
import { startRetention } from "./db/retention.js";
import { createStores } from "./db/stores.js";
import { Admission } from "./http/admission.js";
import { createApp } from "./http/app.js";
import { provisionToken } from "./http/middleware/auth.js";
import { Sandbox } from "./sandbox/sandbox.js";
import { serveGateway } from "./server.js";

// Boots the gateway: configuration, database, token, sandbox, app; then hands it to the server.

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
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
  const token = provisionToken(stores.keyValue, config.GATEWAY_TOKEN);
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

  const admission = new Admission(config.MAX_CONCURRENCY + config.QUEUE_LIMIT);
  const app = createApp({ config, stores, runner: sandbox, tokenHash: token.hash, health: () => sandbox.health(), admission });
  const retention = startRetention(stores.invocations, {
    retentionDays: config.LOG_RETENTION_DAYS,
    retentionRows: config.LOG_RETENTION_ROWS,
    intervalMs: config.LOG_PRUNE_INTERVAL_MS,
  });
  // First pass right away, so a lowered limit applies without waiting an interval.
  retention.runOnce().catch((err: unknown) => console.error("log retention failed:", err));

  serveGateway({
    config,
    app,
    admission,
    invocations: stores.invocations,
    stopBackground: () => retention.stop(),
    closeSandbox: () => sandbox.close(),
    closeDatabase: () => database.close(),
  });
}

main().catch((err: unknown) => {
  console.error("fngw failed to start:", err);
  process.exit(1);
});

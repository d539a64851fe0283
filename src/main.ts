import { type Cluster, joinCluster } from "./cluster/index.js";
import { type Config, ConfigError, loadConfig } from "./core/config.js";
import { INTERRUPTED_MESSAGE } from "./core/invocations.js";
import { configureLog, log, printPlain } from "./core/log.js";
import { HostLockBusyError, lockDataDir, lockUids } from "./host-locks.js";
import { Admission } from "./http/admission.js";
import { createApp } from "./http/app.js";
import { provisionToken } from "./http/middleware/auth.js";
import { createJobs } from "./jobs/index.js";
import { FunctionEnvironments } from "./packages/function-environments.js";
import { openPackageStore } from "./packages/index.js";
import { Sandbox } from "./sandbox/sandbox.js";
import { closeServer, listen } from "./server.js";
import type { Store } from "./store/contract.js";
import { openStore } from "./store/index.js";
import { startRetention } from "./store/retention.js";
import { sealStoredSecrets } from "./store/seal.js";
import { checkSecretsKey, loadSecretBox } from "./store/secrets.js";
import { GATEWAY_VERSION } from "./version.js";

// Boots the gateway: lock the data dir, open the store, listen, join the cluster, start the
// sandbox, serve the app; and stops it in the reverse order. Every failed start undoes what it did.

/** What the process undoes as it exits, newest first, on every exit path (the lock goes last). */
const undo: Array<() => void> = [];
process.on("exit", () => {
  for (const step of undo.reverse()) {
    try {
      step();
    } catch (err) {
      log.error({ err }, "clean-up step failed");
    }
  }
});

function fail(message: string, context: Record<string, unknown> = {}): never {
  log.fatal(context, message);
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
  configureLog(config.LOG_LEVEL);
  if (process.getuid?.() !== 0) {
    fail("fngw must run as root (or in its Docker image): every invocation is jailed with chroot, a uid switch and cgroups.");
  }

  try {
    const holder = { data_dir: config.DATA_DIR, host: config.HOST, port: config.PORT };
    const dataDir = lockDataDir(config.DATA_DIR, holder);
    undo.push(() => dataDir.release());
    const uids = lockUids(gatewayUids(config), holder);
    undo.push(() => uids.release());
  } catch (err) {
    if (err instanceof HostLockBusyError) fail(err.message, { holder: err.holder });
    throw err;
  }

  let secrets: ReturnType<typeof loadSecretBox>;
  try {
    secrets = loadSecretBox(config);
  } catch (err) {
    fail(`the secrets key could not be loaded: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (secrets.createdKeyFile)
    log.info(`created the secrets key ${secrets.createdKeyFile} (0600): keep it, and back it up apart from the database`);
  let store: Store;
  try {
    store = await openStore(config, secrets.box);
  } catch (err) {
    fail(`the database could not be opened: ${err instanceof Error ? err.message : String(err)}`);
  }
  undo.push(() => void store.close());
  try {
    const sealed = await sealStoredSecrets(store, secrets.box);
    if (sealed.sealed > 0) log.info(`sealed the env values of ${sealed.sealed} version(s) stored in clear`);
    if (sealed.resealed > 0) log.info(`sealed the env values of ${sealed.resealed} version(s) again with the current key`);
    await checkSecretsKey(store, secrets.box);
  } catch (err) {
    fail(`stored secrets could not be opened: ${err instanceof Error ? err.message : String(err)}`);
  }

  let gateway: Awaited<ReturnType<typeof listen>>;
  try {
    gateway = await listen(config);
  } catch (err) {
    fail(`cannot listen on ${config.HOST}:${config.PORT}: ${(err as Error).message}`);
  }

  const admission = new Admission(config.MAX_CONCURRENCY + config.QUEUE_LIMIT);
  let cluster: Cluster;
  try {
    cluster = await joinCluster(store, {
      dataDir: config.DATA_DIR,
      machineId: config.FLY_MACHINE_ID,
      version: GATEWAY_VERSION,
      leaseMs: config.NODE_LEASE_MS,
      maxOutputBytes: config.LOG_OUTPUT_MAX_BYTES,
      spoolMaxBytes: config.SPOOL_MAX_MB * 1024 * 1024,
      inFlight: () => admission.size,
    });
  } catch (err) {
    fail(`could not join the gateways on the database: ${err instanceof Error ? err.message : String(err)}`);
  }
  log.info(`node ${cluster.node} (${store.remote ? "PostgreSQL, shared" : "SQLite, embedded"})`);
  if (cluster.interruptedAtStart > 0) {
    log.info(`marked ${cluster.interruptedAtStart} invocation(s) left running by the last process as interrupted`);
  }
  const token = await provisionToken(cluster.tokens, config.GATEWAY_TOKEN);
  if (token.generated) {
    printPlain(`API token (printed this once; only its hash is stored; set GATEWAY_TOKEN to choose your own): ${token.generated}`);
  }

  let sandbox: Sandbox;
  try {
    sandbox = await Sandbox.start(config);
  } catch (err) {
    fail(`the sandbox could not start: ${err instanceof Error ? err.message : String(err)}`);
  }
  // Whatever way the process ends, the jail's mounts, the cgroups and the netfilter rules go.
  undo.push(() => sandbox.abandon());
  process.on("uncaughtException", (err) => {
    log.fatal({ err }, "fngw: uncaught error, exiting");
    process.exit(1);
  });

  let packageStore: ReturnType<typeof openPackageStore>;
  try {
    packageStore = openPackageStore(config, config.DATA_DIR, sandbox.interpreters);
  } catch (err) {
    fail(`the package store could not open: ${err instanceof Error ? err.message : String(err)}`);
  }
  // Every current and pending version's environment is built here (from the stored lock where one
  // node resolved it); versions left waiting for their packages wait again.
  let packages: FunctionEnvironments;
  try {
    packages = await FunctionEnvironments.start({
      store: packageStore.store,
      shared: store,
      functions: cluster.functions,
      node: cluster.node,
      budgetBytes: config.PACKAGES_MAX_MB * 2 ** 20,
      graceMs: config.PACKAGES_GRACE_MS,
    });
  } catch (err) {
    fail(`package environments could not start: ${err instanceof Error ? err.message : String(err)}`);
  }
  // Environments no version refers to age out.
  const sweepPackages = () => {
    packages.sweep().then(
      (removed) => {
        if (removed.length > 0) log.info(`removed ${removed.length} package environment(s) no function version uses`);
      },
      (err: unknown) => log.error({ err }, "package clean-up failed"),
    );
  };
  sweepPackages();
  const packageSweep = setInterval(sweepPackages, config.PACKAGES_SWEEP_INTERVAL_MS);
  packageSweep.unref();

  // Jobs run in the same admission control and sandbox as calls that wait (src/jobs).
  const jobs = createJobs({ config, store, cluster, runner: sandbox, slots: admission, box: secrets.box, packages });
  const app = createApp({
    config,
    store,
    cluster,
    runner: sandbox,
    health: () => sandbox.health(),
    admission,
    packages,
    jobs: jobs.queue,
    jobsRunning: () => jobs.worker.active,
  });
  const retention = startRetention(store, {
    retentionDays: config.LOG_RETENTION_DAYS,
    retentionRows: config.LOG_RETENTION_ROWS,
    intervalMs: config.LOG_PRUNE_INTERVAL_MS,
    maxBytes: config.LOG_MAX_MB * 1024 * 1024,
    written: cluster.log,
  });
  // First pass right away, so a lowered limit applies without waiting an interval.
  retention.runOnce().catch((err: unknown) => log.error({ err }, "log retention failed"));
  gateway.serveApp(app.fetch);
  try {
    const { createdSecret } = await jobs.start();
    // Shown with a generated admin token, at the first start, where the operator reads secrets; with GATEWAY_TOKEN
    // given (a managed deployment), POST /api/jobs/callback-secret shows a new one instead.
    if (createdSecret && token.generated) {
      printPlain(`Callback signing secret (printed this once; POST /api/jobs/callback-secret makes a new one): ${createdSecret}`);
    }
  } catch (err) {
    fail(`the job queue could not start: ${err instanceof Error ? err.message : String(err)}`);
  }

  gateway.onShutdown(async (server, signal) => {
    log.info(`${signal}: no new connections; waiting up to ${config.SHUTDOWN_GRACE_MS} ms for ${admission.size} invocation(s)`);
    retention.stop();
    clearInterval(packageSweep);
    packages.close();
    // No new job is taken; the running ones finish within the grace, or end interrupted (and are retried) when the sandbox closes.
    const jobsStopped = jobs.stop();
    server.close();
    server.closeIdleConnections();
    if (!(await admission.idle(config.SHUTDOWN_GRACE_MS))) {
      log.warn(`${admission.size} invocation(s) outlived the grace period; closing the sandbox ends them`);
    }
    try {
      await sandbox.close();
    } catch (err) {
      log.error({ err }, "closing the sandbox failed");
    }
    // Running installs may finish within the grace period; queued or cut ones are installed again at the next start.
    const installsEnded = packageStore.close().then(
      () => true,
      (err: unknown) => {
        console.error("closing the package store failed:", err);
        return true;
      },
    );
    const graceOver = new Promise<false>((resolve) => setTimeout(resolve, config.SHUTDOWN_GRACE_MS, false).unref());
    if (!(await Promise.race([installsEnded, graceOver])))
      console.log("package installs still running are cut; they start again at the next start");
    // Let the last handlers write their rows and answer; whatever is still `running` after that was cut short.
    await admission.idle(1000);
    await jobsStopped;
    await cluster.log.flush();
    try {
      const cut = await store.invocations.markInterrupted(cluster.node, INTERRUPTED_MESSAGE);
      if (cut > 0) log.info(`${cut} invocation(s) end as interrupted`);
    } catch (err) {
      log.warn({ err }, "could not mark the invocations cut short (the next start does)");
    }
    await cluster.leave();
    await closeServer(server);
  });
}

/** The uids this gateway runs code as: its sandbox slots' and its package installers'. */
function gatewayUids(config: Config): number[] {
  const slots = Array.from({ length: config.MAX_CONCURRENCY }, (_, k) => config.SANDBOX_UID_BASE + k);
  const installers = Array.from({ length: config.PACKAGES_PARALLEL }, (_, k) => config.PACKAGES_UID - k);
  return [...slots, ...installers];
}

main().catch((err: unknown) => {
  log.fatal({ err }, "fngw failed to start");
  process.exit(1);
});

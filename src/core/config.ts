import net from "node:net";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { LOG_LEVELS } from "./log.js";

const MiB = 1024 * 1024;
const cores = os.availableParallelism();

const int = (min: number, fallback: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max).default(fallback);

/**
 * Every knob of the gateway, read from the environment. The README's
 * configuration table lists the same names and defaults.
 */
const EnvSchema = z
  .object({
    PORT: int(0, 8080, 65535),
    HOST: z.string().min(1).default("0.0.0.0"),
    DATA_DIR: z.string().min(1).default("./data"),
    GATEWAY_TOKEN: z.string().min(16, "GATEWAY_TOKEN must be at least 16 characters").optional(),
    /** The key that seals functions' env values at rest (base64 of 32 bytes); unset: SECRETS_KEY_FILE. */
    SECRETS_KEY: secretKey("SECRETS_KEY").optional(),
    /** A key file (base64 of 32 bytes), created 0600 at first start when absent; defaults to DATA_DIR/secrets.key. */
    SECRETS_KEY_FILE: z.string().min(1).optional(),
    /** The key values were sealed with before a rotation; at start every value under it is sealed again with the current key. */
    SECRETS_KEY_PREVIOUS: secretKey("SECRETS_KEY_PREVIOUS").optional(),

    /** Invocations that run at once; each holds one sandbox slot (uid, jail, cgroup). */
    MAX_CONCURRENCY: int(1, 2 * cores, 256),
    /** Invocations that may wait for a slot; past it the gateway answers 429. */
    QUEUE_LIMIT: int(0, 8 * cores),
    /** How long a queued invocation waits for a slot before it is rejected. */
    QUEUE_TIMEOUT_MS: int(0, 10_000),

    MAX_BODY_BYTES: int(0, 6 * MiB),
    /** How long a request body may take to arrive, from when the gateway starts reading it; past it 408. */
    BODY_READ_TIMEOUT_MS: int(100, 15_000, 600_000),
    /** Request bodies read at once, before admission; past it 429. */
    MAX_READING_REQUESTS: int(1, 64, 65_536),
    MAX_CODE_BYTES: int(1, 1 * MiB),
    /** Environment variables one function may have, and their total size (names + values). */
    MAX_ENV_VARS: int(0, 64, 1024),
    MAX_ENV_BYTES: int(0, 32 * 1024, 1 * MiB),
    MAX_RESPONSE_BYTES: int(0, 6 * MiB),
    OUTPUT_CAP_BYTES: int(0, 1 * MiB),

    DEFAULT_TIMEOUT_MS: int(100, 10_000),
    MAX_TIMEOUT_MS: int(100, 300_000),
    DEFAULT_MEMORY_MB: int(32, 256),
    MAX_MEMORY_MB: int(32, 2048),
    /** Size of each invocation's private /tmp. */
    TMP_SIZE_MB: int(1, 64),
    /** Interpreters of each runtime started ahead of their invocations (0: start each on demand). */
    STANDBY_INTERPRETERS: int(0, 2, 64),
    /** Python invocations forked from one pre-started parent (on) or each from a spawned interpreter (off). */
    PYTHON_FORKSERVER: z.enum(["on", "off"]).default("on"),
    /** on: refused system calls go to the gateway's seccomp listener, which names them (off, or a kernel before 5.7: answered in the kernel, unnamed). */
    SANDBOX_SECCOMP_LISTENER: z.enum(["on", "off"]).default("on"),
    /** A warm instance (isolation "function") idle this long is stopped and its slot freed. */
    WARM_IDLE_MS: int(100, 60_000, 3_600_000),
    /** Invocations a warm instance serves before it is replaced by a fresh one. */
    WARM_MAX_INVOCATIONS: int(1, 1000, 1_000_000),
    /** Warm instances one function version may have when its max_concurrency is null. */
    WARM_MAX_INSTANCES: int(1, 4, 256),
    /** Threads one sandboxed process may have (cgroup pids.max and RLIMIT_NPROC). */
    MAX_THREADS: int(8, 64, 4096),

    /** First of MAX_CONCURRENCY consecutive unprivileged uids (and gids) used by sandboxes. */
    SANDBOX_UID_BASE: int(1000, 200_000, 2 ** 31 - 1 - 4096),
    /**
     * Networks a function with `network: true` may not reach (netfilter rules on the sandbox
     * uids; empty: none): the host's loopback and link-local addresses by default.
     */
    SANDBOX_BLOCKED_NETWORKS: z
      .string()
      .default("127.0.0.0/8,169.254.0.0/16,::1/128,fe80::/10")
      .transform((text) =>
        text
          .split(",")
          .map((cidr) => cidr.trim())
          .filter(Boolean),
      )
      .refine((cidrs) => cidrs.every(isCidr), { message: "must be a comma-separated list of CIDRs such as 127.0.0.0/8,::1/128" }),
    /** Where the jail (a tmpfs) is mounted; defaults to DATA_DIR/jail. */
    JAIL_DIR: z.string().min(1).optional(),
    /** Interpreters; resolved to their real binaries at start-up. Without NODE_BIN, functions run on the pinned Node (src/sandbox/binaries.ts). */
    PYTHON_BIN: z.string().min(1).default("python3"),
    NODE_BIN: z.string().min(1).optional(),

    /**
     * The database: PostgreSQL when set (postgres://user:password@host:port/db; several gateways may
     * share it), else SQLite in DATA_DIR/gateway.db.
     */
    DATABASE_URL: z
      .string()
      .refine((text) => /^postgres(ql)?:\/\//.test(text), { message: "must be a postgres:// or postgresql:// URL" })
      .optional(),
    /** Set by Fly.io on each machine: the gateway's node id there. */
    FLY_MACHINE_ID: z.string().min(1).optional(),
    /** Connections each gateway keeps open to PostgreSQL. */
    DATABASE_POOL_SIZE: int(1, 8, 100),
    /** A gateway that has not written its heartbeat for this long is lost: a peer ends its running invocations as interrupted. */
    NODE_LEASE_MS: int(1000, 15_000, 3_600_000),
    /** Log rows held on this gateway's disk while PostgreSQL is unreachable; past it invocations are refused (503). */
    SPOOL_MAX_MB: int(1, 256, 1_000_000),

    /** The database's byte budget: past it the oldest log rows are pruned (0: no budget). */
    LOG_MAX_MB: int(0, 1024),
    /** Stdout and stderr stored per invocation, each; the rest is dropped and flagged as truncated. */
    LOG_OUTPUT_MAX_BYTES: int(0, 64 * 1024, 1 * MiB),
    LOG_RETENTION_DAYS: int(0, 30),
    LOG_RETENTION_ROWS: int(0, 1_000_000),
    /** How often old log rows are pruned (in batches, in the background). */
    LOG_PRUNE_INTERVAL_MS: int(1000, 60_000),
    SHUTDOWN_GRACE_MS: int(0, 30_000),
    /** The gateway's own log: lines below this level are dropped (`silent`: none). */
    LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
    /**
     * `on`: every /fn answer carries `Content-Security-Policy: sandbox ...`, so a function's page runs
     * in an opaque origin and cannot reach the console's session. `off` only when functions are
     * served from a host name of their own.
     */
    FUNCTIONS_ORIGIN_ISOLATION: z.enum(["on", "off"]).default("on"),

    // Asynchronous invocations, callbacks and schedules (README, Asynchronous invocations).
    /** Jobs this gateway runs at once, in the same slots as synchronous calls (0: it runs none); default half of MAX_CONCURRENCY, at least 1. */
    ASYNC_MAX_CONCURRENCY: z.coerce.number().int().min(0).max(256).optional(),
    /** The largest request body an asynchronous invocation keeps; past it 413. */
    ASYNC_MAX_BODY_BYTES: int(0, 1 * MiB, 64 * MiB),
    /** Jobs waiting or running, on every gateway together; past it 429. */
    ASYNC_QUEUE_MAX_JOBS: int(1, 10_000, 10_000_000),
    /** Bytes of the requests those jobs hold; past it 429. */
    ASYNC_QUEUE_MAX_MB: int(1, 256, 1_000_000),
    /** The share of both bounds one function may hold, in percent. */
    ASYNC_QUEUE_FUNCTION_SHARE: int(1, 25, 100),
    /** Bytes of a job's final answer kept (shown by GET /api/invocations/:id and sent to the callback). */
    ASYNC_RESULT_MAX_BYTES: int(0, 256 * 1024, 6 * MiB),
    /** How long a gateway holds a job it runs without renewing; a job whose gateway died is taken again after it. */
    ASYNC_LEASE_MS: int(1000, 30_000, 3_600_000),
    /** How often an idle gateway looks for due jobs (its own enqueues wake it at once). */
    ASYNC_POLL_MS: int(10, 500, 60_000),
    /** 1: callbacks may go to loopback, private and link-local addresses (a test, a private network). */
    CALLBACK_ALLOW_PRIVATE: z.enum(["0", "1"]).default("0"),
    /** Deliveries of one callback before it counts as failed. */
    CALLBACK_MAX_ATTEMPTS: int(1, 5, 20),
    /** How long one delivery may take. */
    CALLBACK_TIMEOUT_MS: int(100, 10_000, 120_000),

    // Function packages (docs/packages.md).
    /** The uid (and gid) installers run as, and the PACKAGES_PARALLEL - 1 below it; none may be a sandbox's. */
    PACKAGES_UID: int(1000, 199_999, 2 ** 31 - 2),
    /** Total size of all environments; past it new environments are refused. */
    PACKAGES_MAX_MB: int(1, 4096),
    /** Installs that run at once; the rest wait in the queue. */
    PACKAGES_PARALLEL: int(1, 1, 16),
    /** Wall-clock limit of one install (pip or npm and the lock listing). */
    PACKAGES_TIMEOUT_MS: int(1000, 600_000),
    /** Memory limit of one install (cgroup). */
    PACKAGES_MEMORY_MB: int(64, 1024),
    /** How long an environment no function version references is kept before the sweep removes it. */
    PACKAGES_GRACE_MS: int(0, 24 * 3600_000),
    /** How often unreferenced environments are looked for (and removed once past PACKAGES_GRACE_MS). */
    PACKAGES_SWEEP_INTERVAL_MS: int(1000, 3600_000),
    /** Where installers write before their tree is sealed and moved into DATA_DIR (defaults to a directory in the system temp dir). */
    PACKAGES_STAGING_DIR: z.string().min(1).optional(),
  })
  .superRefine((env, ctx) => {
    if (env.ASYNC_MAX_CONCURRENCY !== undefined && env.ASYNC_MAX_CONCURRENCY > env.MAX_CONCURRENCY) {
      ctx.addIssue({
        code: "custom",
        path: ["ASYNC_MAX_CONCURRENCY"],
        message: `must be at most MAX_CONCURRENCY (${env.MAX_CONCURRENCY}): jobs run in the same slots`,
      });
    }
    // Installers run as PACKAGES_UID - k (k < PACKAGES_PARALLEL); a sandbox with one of those uids
    // could signal or read an install in progress, and the strays' clean-up would kill the sandbox.
    const lowest = env.PACKAGES_UID - env.PACKAGES_PARALLEL + 1;
    const last = env.SANDBOX_UID_BASE + env.MAX_CONCURRENCY - 1;
    if (lowest <= last && env.PACKAGES_UID >= env.SANDBOX_UID_BASE) {
      ctx.addIssue({
        code: "custom",
        path: ["PACKAGES_UID"],
        message: `the installers' uids ${lowest}..${env.PACKAGES_UID} overlap the sandbox uids ${env.SANDBOX_UID_BASE}..${last} (SANDBOX_UID_BASE, MAX_CONCURRENCY); choose uids outside that range`,
      });
    }
    if (lowest < 1000) {
      ctx.addIssue({
        code: "custom",
        path: ["PACKAGES_UID"],
        message: `PACKAGES_UID - PACKAGES_PARALLEL + 1 (${lowest}) must be at least 1000`,
      });
    }
  });

/** A 256-bit key given as base64. */
function secretKey(name: string) {
  return z
    .string()
    .refine((text) => /^[A-Za-z0-9+/_-]+=*$/.test(text.trim()) && Buffer.from(text.trim(), "base64").length === 32, {
      message: `${name} must be the base64 of 32 bytes (e.g. openssl rand -base64 32)`,
    })
    .transform((text) => Buffer.from(text.trim(), "base64"));
}

function isCidr(text: string): boolean {
  const [address = "", bits, ...rest] = text.split("/");
  const family = net.isIP(address);
  return family !== 0 && rest.length === 0 && (bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)));
}

export type Config = Readonly<
  Omit<z.infer<typeof EnvSchema>, "JAIL_DIR" | "SECRETS_KEY_FILE" | "ASYNC_MAX_CONCURRENCY"> & {
    JAIL_DIR: string;
    DB_PATH: string;
    SECRETS_KEY_FILE: string;
    ASYNC_MAX_CONCURRENCY: number;
  }
>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Parses the environment (or any record) into a Config; throws ConfigError listing every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  const dataDir = path.resolve(parsed.data.DATA_DIR);
  return Object.freeze({
    ...parsed.data,
    DATA_DIR: dataDir,
    DB_PATH: path.join(dataDir, "gateway.db"),
    JAIL_DIR: path.resolve(parsed.data.JAIL_DIR ?? path.join(dataDir, "jail")),
    SECRETS_KEY_FILE: path.resolve(parsed.data.SECRETS_KEY_FILE ?? path.join(dataDir, "secrets.key")),
    // Half the slots by default: a backlog of jobs leaves the other half to callers who wait.
    ASYNC_MAX_CONCURRENCY: parsed.data.ASYNC_MAX_CONCURRENCY ?? Math.max(1, Math.floor(parsed.data.MAX_CONCURRENCY / 2)),
  });
}

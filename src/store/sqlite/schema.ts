import {
  blob,
  index,
  integer,
  primaryKey,
  real,
  type SQLiteColumnBuilderBase,
  sqliteTable,
  text,
  uniqueIndex,
} from "drizzle-orm/sqlite-core";
import { type DeniedSyscall, TRIGGERS } from "../../core/invocations.js";
import { JOB_STATES, MAX_EVENT_AGE_S, RETRIES } from "../../core/jobs.js";
import { INTERPRETERS, RUNTIMES } from "../../core/runtimes.js";
import { type Schedule, TICK_OUTCOMES } from "../../core/schedules.js";
import { type FunctionSettings, ISOLATIONS, type SettingKey } from "../../core/settings.js";
import { INVOCATION_STATUSES } from "../../core/statuses.js";

// The SQLite schema (the embedded engine). `../postgres/schema.ts` states the same tables for
// PostgreSQL; the store tests run against both, so the two cannot drift apart unnoticed.

/** A registered function: its name and which of its versions is current. Timestamps are epoch ms. */
export const functions = sqliteTable("functions", {
  name: text("name").primaryKey(),
  currentVersion: integer("current_version").notNull(),
  /**
   * The newest version stored while its package environment was not ready: it becomes current when
   * the environment is (and stays here, failed, when it fails); null when there is none.
   */
  pendingVersion: integer("pending_version"),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
  /** Grows with every change to this row, so caches on other gateways can tell which state is newer. */
  revision: integer("revision").notNull().default(1),
});

/** One column per function setting (`core/settings.ts`); the `satisfies` keeps the two lists equal. */
const settingColumns = {
  runtime: text("runtime", { enum: RUNTIMES }).notNull(),
  code: text("code").notNull(),
  timeoutMs: integer("timeout_ms").notNull(),
  memoryMb: integer("memory_mb").notNull(),
  network: integer("network", { mode: "boolean" }).notNull(),
  env: text("env", { mode: "json" }).$type<FunctionSettings["env"]>().notNull(),
  public: integer("public", { mode: "boolean" }).notNull(),
  /** Invocations of this function that may be in progress at once; null: only the gateway's limit. */
  maxConcurrency: integer("max_concurrency"),
  /** The packages as given (a JSON array of specs). */
  packages: text("packages", { mode: "json" }).$type<FunctionSettings["packages"]>().notNull().default([]),
  /** "invocation" (a fresh process each) or "function" (warm instances per version). */
  isolation: text("isolation", { enum: ISOLATIONS }).notNull().default("invocation"),
  retries: integer("retries").notNull().default(RETRIES.fallback),
  maxEventAgeS: integer("max_event_age_s").notNull().default(MAX_EVENT_AGE_S.fallback),
  /** The schedules as given, defaults filled in (a JSON array). */
  schedules: text("schedules", { mode: "json" }).$type<Schedule[]>().notNull().default([]),
} satisfies Record<SettingKey, SQLiteColumnBuilderBase>;

/** Immutable versions; a PUT adds one. They go with their function on delete. */
export const functionVersions = sqliteTable(
  "function_versions",
  {
    functionName: text("function_name")
      .notNull()
      .references(() => functions.name, { onDelete: "cascade" }),
    version: integer("version").notNull(),
    ...settingColumns,
    /** Whether `env` holds sealed values (db/secrets.ts); rows stored before sealing existed are converted at start. */
    envSealed: integer("env_sealed", { mode: "boolean" }).notNull().default(false),
    /** The package environment this version runs with (`packages/environments.ts`); null without packages. */
    environmentKey: text("environment_key"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.functionName, t.version] })],
);

/**
 * The invocation log. `seq` is the cursor key (AUTOINCREMENT: never reused, even after pruning);
 * `id` is the public, time-ordered UUIDv7. `function_name` is plain text, not a foreign key,
 * so the log outlives a deleted function. `started_at` never decreases as `seq` grows (the log
 * assigns it), which lets time filters become key ranges.
 */
export const invocations = sqliteTable(
  "invocations",
  {
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    id: text("id").notNull().unique(),
    functionName: text("function_name").notNull(),
    version: integer("version").notNull(),
    /** The gateway that ran it ("" for rows from before gateways had ids). */
    node: text("node").notNull().default(""),
    trigger: text("trigger", { enum: TRIGGERS }).notNull().default("http"),
    attempt: integer("attempt").notNull().default(1),
    jobId: text("job_id"),
    startedAt: integer("started_at").notNull(),
    durationMs: real("duration_ms"),
    firstByteMs: real("first_byte_ms"),
    exitCode: integer("exit_code"),
    signal: text("signal"),
    status: text("status", { enum: INVOCATION_STATUSES }).notNull(),
    httpStatus: integer("http_status"),
    requestBytes: integer("request_bytes").notNull(),
    responseBytes: integer("response_bytes"),
    stdout: text("stdout").notNull().default(""),
    stderr: text("stderr").notNull().default(""),
    stdoutTruncated: integer("stdout_truncated", { mode: "boolean" }).notNull().default(false),
    stderrTruncated: integer("stderr_truncated", { mode: "boolean" }).notNull().default(false),
    stdoutDroppedBytes: integer("stdout_dropped_bytes").notNull().default(0),
    stderrDroppedBytes: integer("stderr_dropped_bytes").notNull().default(0),
    error: text("error"),
    blockedSyscall: text("blocked_syscall"),
    deniedSyscalls: text("denied_syscalls", { mode: "json" }).$type<DeniedSyscall[]>(),
    method: text("method").notNull(),
    path: text("path").notNull(),
    /** The order in which invocations finished (null while running): what `?after=` follows. */
    finishedSeq: integer("finished_seq"),
  },
  (t) => [
    // Listing one function's log, newest first, by cursor.
    index("invocations_function_seq").on(t.functionName, t.seq),
    // One function's log filtered by status ("the errors of f").
    index("invocations_function_status_seq").on(t.functionName, t.status, t.seq),
    // Listing by status (and finding `running` rows at start-up).
    index("invocations_status_seq").on(t.status, t.seq),
    // Turning since/until into a key range, and retention by age.
    index("invocations_started_at").on(t.startedAt),
    // Stats: one function over a time window; duration and status make it covering.
    index("invocations_function_started").on(t.functionName, t.startedAt, t.status, t.durationMs),
    // Pollers: what finished after a given invocation, in the order it finished.
    uniqueIndex("invocations_finished_seq").on(t.finishedSeq),
    // A job's attempts.
    index("invocations_job").on(t.jobId),
  ],
);

/**
 * API tokens: only their SHA-256 (hex) is stored. `root` is the first-start admin token
 * (GATEWAY_TOKEN or the generated one). Times are epoch ms; null `expires_at`: never.
 */
export const tokens = sqliteTable("tokens", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  tokenHash: text("token_hash").notNull().unique(),
  scopes: text("scopes", { mode: "json" }).$type<string[]>().notNull(),
  createdAt: integer("created_at").notNull(),
  expiresAt: integer("expires_at"),
  lastUsedAt: integer("last_used_at"),
});

/** Key/value settings of the gateway. */
export const settings = sqliteTable("settings", {
  key: text("key").primaryKey(),
  value: text("value").notNull(),
});

/** Console sessions, keyed by the SHA-256 (hex) of the id the browser holds. */
export const sessions = sqliteTable(
  "sessions",
  {
    key: text("key").primaryKey(),
    tokenId: text("token_id").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [index("sessions_expires_at").on(t.expiresAt)],
);

/** The gateways that use this database (one, on SQLite), with their heartbeats. */
export const nodes = sqliteTable("nodes", {
  id: text("id").primaryKey(),
  version: text("version").notNull(),
  startedAt: integer("started_at").notNull(),
  heartbeatAt: integer("heartbeat_at").notNull(),
  inFlight: integer("in_flight").notNull().default(0),
  stoppedAt: integer("stopped_at"),
  lostAt: integer("lost_at"),
});

/**
 * Asynchronous invocations (`core/jobs.ts`). A job holds its request until it ends (a dead letter
 * keeps it, for redrive), the lease of the gateway running it, and its final answer. The id is the
 * one the caller was given; each attempt is a row of the invocation log with `job_id` set.
 */
export const jobs = sqliteTable(
  "jobs",
  {
    id: text("id").primaryKey(),
    functionName: text("function_name").notNull(),
    /** The version asked for (`/fn/name@N`); null: the current one when each attempt starts. */
    version: integer("version"),
    trigger: text("trigger", { enum: ["async", "schedule"] }).notNull(),
    state: text("state", { enum: JOB_STATES }).notNull(),
    /** Attempts started. */
    attempts: integer("attempts").notNull().default(0),
    maxAttempts: integer("max_attempts").notNull(),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
    /** When the next attempt (or callback delivery) is due. */
    runAt: integer("run_at").notNull(),
    /** The gateway holding the job (running it, or delivering its callback), until `lease_until`. */
    leaseNode: text("lease_node"),
    leaseUntil: integer("lease_until"),
    method: text("method").notNull(),
    path: text("path").notNull(),
    url: text("url").notNull(),
    headers: text("headers", { mode: "json" }).$type<[string, string][]>().notNull(),
    body: blob("body", { mode: "buffer" }),
    /** What the job counts against the queue's bytes while pending. */
    requestBytes: integer("request_bytes").notNull(),
    idempotencyKey: text("idempotency_key"),
    callbackUrl: text("callback_url"),
    /** The tick of a schedule's job, and the schedule. */
    scheduledAt: integer("scheduled_at"),
    scheduleKey: text("schedule_key"),
    /** The job this one runs again (POST /api/invocations/:id/retry). */
    redriveOf: text("redrive_of"),
    lastInvocationId: text("last_invocation_id"),
    lastStatus: text("last_status", { enum: INVOCATION_STATUSES }),
    lastError: text("last_error"),
    resultHttpStatus: integer("result_http_status"),
    resultHeaders: text("result_headers", { mode: "json" }).$type<[string, string][]>(),
    resultBody: blob("result_body", { mode: "buffer" }),
    resultTruncated: integer("result_truncated", { mode: "boolean" }).notNull().default(false),
    durationMs: real("duration_ms"),
    finishedAt: integer("finished_at"),
    /** pending → delivered | failed; null without a callback URL. */
    callbackState: text("callback_state", { enum: ["pending", "delivered", "failed"] }),
    callbackAttempts: integer("callback_attempts").notNull().default(0),
  },
  (t) => [
    // Leasing: due jobs by state and time.
    index("jobs_state_run_at").on(t.state, t.runAt),
    // The dead-letter list and the function's jobs, newest first.
    index("jobs_state_created").on(t.state, t.createdAt),
    index("jobs_function_state").on(t.functionName, t.state),
    // Callbacks to deliver.
    index("jobs_callback_due").on(t.callbackState, t.runAt),
    uniqueIndex("jobs_idempotency").on(t.functionName, t.idempotencyKey),
    index("jobs_schedule").on(t.functionName, t.scheduleKey, t.scheduledAt),
  ],
);

/** Each delivery attempt of a job's callback. */
export const callbackDeliveries = sqliteTable(
  "callback_deliveries",
  {
    jobId: text("job_id")
      .notNull()
      .references(() => jobs.id, { onDelete: "cascade" }),
    attempt: integer("attempt").notNull(),
    at: integer("at").notNull(),
    durationMs: real("duration_ms").notNull(),
    httpStatus: integer("http_status"),
    error: text("error"),
    node: text("node").notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.attempt] })],
);

/** The jobs and bytes each function holds in the queue ("" for the whole queue): what ASYNC_QUEUE_* bound, kept as jobs come and go. */
export const jobUsage = sqliteTable("job_usage", {
  functionName: text("function_name").primaryKey(),
  jobs: integer("jobs").notNull().default(0),
  bytes: integer("bytes").notNull().default(0),
});

/** Schedule ticks, each claimed once across every gateway (the key), with what became of it. */
export const scheduleTicks = sqliteTable(
  "schedule_ticks",
  {
    functionName: text("function_name").notNull(),
    scheduleKey: text("schedule_key").notNull(),
    tickAt: integer("tick_at").notNull(),
    outcome: text("outcome", { enum: TICK_OUTCOMES }).notNull(),
    jobId: text("job_id"),
    node: text("node").notNull(),
    claimedAt: integer("claimed_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.functionName, t.scheduleKey, t.tickAt] })],
);

/**
 * Package environments as the gateways share them (`SharedEnvironment` in the contract): the
 * list, the node that resolves it, and the lock it resolved (or its failure). Each node builds
 * the environment on its own disk from `lock`. A row goes when no version refers to it any more
 * and `used_at` is older than PACKAGES_GRACE_MS.
 */
export const environments = sqliteTable("environments", {
  key: text("key").primaryKey(),
  runtime: text("runtime", { enum: INTERPRETERS }).notNull(),
  interpreterVersion: text("interpreter_version").notNull(),
  /** The normalised list (a JSON array of specs). */
  packages: text("packages", { mode: "json" }).$type<string[]>().notNull(),
  resolver: text("resolver").notNull(),
  lock: text("lock"),
  error: text("error"),
  output: text("output").notNull().default(""),
  createdAt: integer("created_at").notNull(),
  usedAt: integer("used_at").notNull(),
});

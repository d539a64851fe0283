import {
  bigint,
  bigserial,
  boolean,
  customType,
  doublePrecision,
  index,
  integer,
  jsonb,
  type PgColumnBuilderBase,
  pgSequence,
  pgTable,
  primaryKey,
  smallint,
  text,
  uniqueIndex,
} from "drizzle-orm/pg-core";
import { type DeniedSyscall, TRIGGERS } from "../../core/invocations.js";
import { JOB_STATES, MAX_EVENT_AGE_S, RETRIES } from "../../core/jobs.js";
import { INTERPRETERS, RUNTIMES } from "../../core/runtimes.js";
import { type Schedule, TICK_OUTCOMES } from "../../core/schedules.js";
import { type FunctionSettings, ISOLATIONS, type SettingKey } from "../../core/settings.js";
import { INVOCATION_STATUSES } from "../../core/statuses.js";

// The PostgreSQL schema: the tables of `../sqlite/schema.ts`, in PostgreSQL's types. Times are
// epoch ms (bigint, read as numbers); JSON is jsonb. The store tests run against both engines.

/** Epoch milliseconds. */
const epochMs = (name: string) => bigint(name, { mode: "number" });

/** A registered function: its name and which of its versions is current. */
export const functions = pgTable("functions", {
  name: text("name").primaryKey(),
  currentVersion: integer("current_version").notNull(),
  /** The newest version stored while its package environment was not ready (see the SQLite schema). */
  pendingVersion: integer("pending_version"),
  createdAt: epochMs("created_at").notNull(),
  updatedAt: epochMs("updated_at").notNull(),
  /** Grows with every change to this row, so caches on other gateways can tell which state is newer. */
  revision: integer("revision").notNull().default(1),
});

/** One column per function setting (`core/settings.ts`); the `satisfies` keeps the two lists equal. */
const settingColumns = {
  runtime: text("runtime", { enum: RUNTIMES }).notNull(),
  code: text("code").notNull(),
  timeoutMs: integer("timeout_ms").notNull(),
  memoryMb: integer("memory_mb").notNull(),
  network: boolean("network").notNull(),
  env: jsonb("env").$type<FunctionSettings["env"]>().notNull(),
  public: boolean("public").notNull(),
  maxConcurrency: integer("max_concurrency"),
  packages: jsonb("packages").$type<FunctionSettings["packages"]>().notNull().default([]),
  isolation: text("isolation", { enum: ISOLATIONS }).notNull().default("invocation"),
  retries: integer("retries").notNull().default(RETRIES.fallback),
  maxEventAgeS: integer("max_event_age_s").notNull().default(MAX_EVENT_AGE_S.fallback),
  schedules: jsonb("schedules").$type<Schedule[]>().notNull().default([]),
} satisfies Record<SettingKey, PgColumnBuilderBase>;

/** Immutable versions; a PUT adds one. They go with their function on delete. */
export const functionVersions = pgTable(
  "function_versions",
  {
    functionName: text("function_name")
      .notNull()
      .references(() => functions.name, { onDelete: "cascade" }),
    version: integer("version").notNull(),
    ...settingColumns,
    envSealed: boolean("env_sealed").notNull().default(false),
    environmentKey: text("environment_key"),
    createdAt: epochMs("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.functionName, t.version] })],
);

/** The global finish order of the log: taken under a transaction lock, so it is also commit order. */
export const finishOrder = pgSequence("invocations_finish_order");

/** The invocation log (see the SQLite schema for what each column means). */
export const invocations = pgTable(
  "invocations",
  {
    seq: bigserial("seq", { mode: "number" }).primaryKey(),
    id: text("id").notNull().unique(),
    functionName: text("function_name").notNull(),
    version: integer("version").notNull(),
    node: text("node").notNull().default(""),
    trigger: text("trigger", { enum: TRIGGERS }).notNull().default("http"),
    attempt: integer("attempt").notNull().default(1),
    jobId: text("job_id"),
    startedAt: epochMs("started_at").notNull(),
    durationMs: doublePrecision("duration_ms"),
    firstByteMs: doublePrecision("first_byte_ms"),
    exitCode: integer("exit_code"),
    signal: text("signal"),
    status: text("status", { enum: INVOCATION_STATUSES }).notNull(),
    httpStatus: integer("http_status"),
    requestBytes: integer("request_bytes").notNull(),
    responseBytes: bigint("response_bytes", { mode: "number" }),
    stdout: text("stdout").notNull().default(""),
    stderr: text("stderr").notNull().default(""),
    stdoutTruncated: boolean("stdout_truncated").notNull().default(false),
    stderrTruncated: boolean("stderr_truncated").notNull().default(false),
    stdoutDroppedBytes: bigint("stdout_dropped_bytes", { mode: "number" }).notNull().default(0),
    stderrDroppedBytes: bigint("stderr_dropped_bytes", { mode: "number" }).notNull().default(0),
    error: text("error"),
    blockedSyscall: text("blocked_syscall"),
    deniedSyscalls: jsonb("denied_syscalls").$type<DeniedSyscall[]>(),
    method: text("method").notNull(),
    path: text("path").notNull(),
    finishedSeq: bigint("finished_seq", { mode: "number" }),
  },
  (t) => [
    index("invocations_function_seq").on(t.functionName, t.seq),
    index("invocations_function_status_seq").on(t.functionName, t.status, t.seq),
    index("invocations_status_seq").on(t.status, t.seq),
    index("invocations_started_at").on(t.startedAt),
    index("invocations_function_started").on(t.functionName, t.startedAt, t.status, t.durationMs),
    index("invocations_node_status").on(t.node, t.status),
    uniqueIndex("invocations_finished_seq").on(t.finishedSeq),
    // A job's attempts.
    index("invocations_job").on(t.jobId),
  ],
);

/**
 * The log's size in bytes (its rows' output plus a fixed cost a row), kept as rows end and are
 * pruned: what LOG_MAX_MB bounds. The files' size is no measure on PostgreSQL, where deleted rows
 * leave space that is reused rather than returned.
 */
export const logUsage = pgTable("log_usage", {
  id: smallint("id").primaryKey().default(1),
  bytes: bigint("bytes", { mode: "number" }).notNull().default(0),
});

export const tokens = pgTable("tokens", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  tokenHash: text("token_hash").notNull().unique(),
  scopes: jsonb("scopes").$type<string[]>().notNull(),
  createdAt: epochMs("created_at").notNull(),
  expiresAt: epochMs("expires_at"),
  lastUsedAt: epochMs("last_used_at"),
});

export const settings = pgTable("settings", {
  key: text("key").primaryKey(),
  value: text("value").notNull(),
});

export const sessions = pgTable(
  "sessions",
  {
    key: text("key").primaryKey(),
    tokenId: text("token_id").notNull(),
    expiresAt: epochMs("expires_at").notNull(),
  },
  (t) => [index("sessions_expires_at").on(t.expiresAt)],
);

export const nodes = pgTable("nodes", {
  id: text("id").primaryKey(),
  version: text("version").notNull(),
  startedAt: epochMs("started_at").notNull(),
  heartbeatAt: epochMs("heartbeat_at").notNull(),
  inFlight: integer("in_flight").notNull().default(0),
  stoppedAt: epochMs("stopped_at"),
  lostAt: epochMs("lost_at"),
});

/** Raw bytes (bytea), as Buffers. */
const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => "bytea" });

/** Asynchronous invocations (see the SQLite schema for what each column means). */
export const jobs = pgTable(
  "jobs",
  {
    id: text("id").primaryKey(),
    functionName: text("function_name").notNull(),
    version: integer("version"),
    trigger: text("trigger", { enum: ["async", "schedule"] }).notNull(),
    state: text("state", { enum: JOB_STATES }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    maxAttempts: integer("max_attempts").notNull(),
    createdAt: epochMs("created_at").notNull(),
    expiresAt: epochMs("expires_at").notNull(),
    runAt: epochMs("run_at").notNull(),
    leaseNode: text("lease_node"),
    leaseUntil: epochMs("lease_until"),
    method: text("method").notNull(),
    path: text("path").notNull(),
    url: text("url").notNull(),
    headers: jsonb("headers").$type<[string, string][]>().notNull(),
    body: bytea("body"),
    requestBytes: integer("request_bytes").notNull(),
    idempotencyKey: text("idempotency_key"),
    callbackUrl: text("callback_url"),
    scheduledAt: epochMs("scheduled_at"),
    scheduleKey: text("schedule_key"),
    redriveOf: text("redrive_of"),
    lastInvocationId: text("last_invocation_id"),
    lastStatus: text("last_status", { enum: INVOCATION_STATUSES }),
    lastError: text("last_error"),
    resultHttpStatus: integer("result_http_status"),
    resultHeaders: jsonb("result_headers").$type<[string, string][]>(),
    resultBody: bytea("result_body"),
    resultTruncated: boolean("result_truncated").notNull().default(false),
    durationMs: doublePrecision("duration_ms"),
    finishedAt: epochMs("finished_at"),
    callbackState: text("callback_state", { enum: ["pending", "delivered", "failed"] }),
    callbackAttempts: integer("callback_attempts").notNull().default(0),
  },
  (t) => [
    index("jobs_state_run_at").on(t.state, t.runAt),
    index("jobs_state_created").on(t.state, t.createdAt),
    index("jobs_function_state").on(t.functionName, t.state),
    index("jobs_callback_due").on(t.callbackState, t.runAt),
    uniqueIndex("jobs_idempotency").on(t.functionName, t.idempotencyKey),
    index("jobs_schedule").on(t.functionName, t.scheduleKey, t.scheduledAt),
  ],
);

export const callbackDeliveries = pgTable(
  "callback_deliveries",
  {
    jobId: text("job_id")
      .notNull()
      .references(() => jobs.id, { onDelete: "cascade" }),
    attempt: integer("attempt").notNull(),
    at: epochMs("at").notNull(),
    durationMs: doublePrecision("duration_ms").notNull(),
    httpStatus: integer("http_status"),
    error: text("error"),
    node: text("node").notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.attempt] })],
);

export const jobUsage = pgTable("job_usage", {
  functionName: text("function_name").primaryKey(),
  jobs: integer("jobs").notNull().default(0),
  bytes: bigint("bytes", { mode: "number" }).notNull().default(0),
});

export const scheduleTicks = pgTable(
  "schedule_ticks",
  {
    functionName: text("function_name").notNull(),
    scheduleKey: text("schedule_key").notNull(),
    tickAt: epochMs("tick_at").notNull(),
    outcome: text("outcome", { enum: TICK_OUTCOMES }).notNull(),
    jobId: text("job_id"),
    node: text("node").notNull(),
    claimedAt: epochMs("claimed_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.functionName, t.scheduleKey, t.tickAt] })],
);

/** Package environments as the gateways share them (see the SQLite schema). */
export const environments = pgTable("environments", {
  key: text("key").primaryKey(),
  runtime: text("runtime", { enum: INTERPRETERS }).notNull(),
  interpreterVersion: text("interpreter_version").notNull(),
  packages: jsonb("packages").$type<string[]>().notNull(),
  resolver: text("resolver").notNull(),
  lock: text("lock"),
  error: text("error"),
  output: text("output").notNull().default(""),
  createdAt: epochMs("created_at").notNull(),
  usedAt: epochMs("used_at").notNull(),
});

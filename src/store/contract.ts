import type { InvocationFilter, InvocationPage, InvocationRow, InvocationStart, InvocationStats, StoredEnd } from "../core/invocations.js";
import type { FinalJobState, JobState, JobTrigger } from "../core/jobs.js";
import type { InterpreterKind, Runtime } from "../core/runtimes.js";
import type { TickOutcome } from "../core/schedules.js";
import type { FunctionSettings } from "../core/settings.js";
import type { InvocationStatus } from "../core/statuses.js";

/**
 * The store contract: what the gateway keeps in its database, as one interface per store. Two
 * adapters implement it, `sqlite/` (the embedded default) and `postgres/` (several gateways on
 * one database), and the same tests run against both (test/store). Nothing above this file knows
 * which engine is under it; policy (what to cache, when to retry, how to batch) lives above it,
 * so the two engines cannot disagree about it.
 */

export interface FunctionVersion extends FunctionSettings {
  name: string;
  version: number;
  /** When this version was stored (epoch ms). */
  createdAt: number;
  /** Its package environment (`packages/environments.ts`); null without packages. */
  environmentKey: string | null;
}

/** The current version of a function, plus what the function row says about it. */
export interface CurrentFunction extends FunctionVersion {
  functionCreatedAt: number;
  /** When the current version last changed (epoch ms). */
  updatedAt: number;
  /** A newer version stored while its packages were not ready (becomes current when they are); null when none. */
  pendingVersion: number | null;
  /** Grows with every change to the function row: a cache keeps the newest it has seen. */
  revision: number;
}

/** What storing a version did: the version, and the function's current version after it. */
export interface StoredVersion {
  stored: FunctionVersion;
  current: CurrentFunction;
}

/** Seals a version's env values before they are stored and opens them as they are read (`secrets.ts`). */
export interface EnvSealer {
  sealEnv(env: Record<string, string>, functionName: string, version: number): Record<string, string>;
  openEnv(env: Record<string, string>, functionName: string, version: number): Record<string, string>;
}

/** A version's env as stored, for re-sealing under another key. */
export interface StoredEnv {
  name: string;
  version: number;
  env: Record<string, string>;
  /** False for rows stored before values were sealed. */
  sealed: boolean;
}

/** Functions and their immutable versions. */
export interface FunctionRecords {
  /** Registers version 1 (current at once); null when the name is taken. */
  create(name: string, settings: FunctionSettings, environmentKey: string | null): Promise<CurrentFunction | null>;
  /**
   * Stores a new version (the newest + 1; two gateways storing at once get consecutive numbers).
   * With `makeCurrent` it becomes current at once; without, it is recorded as pending. Null when
   * the function is unknown.
   */
  addVersion(name: string, settings: FunctionSettings, environmentKey: string | null, makeCurrent: boolean): Promise<StoredVersion | null>;
  /** Makes a pending version current, if it is still the pending one; returns whether it did. */
  promote(name: string, version: number): Promise<boolean>;
  /** The current version of one function, read from the database. */
  current(name: string): Promise<CurrentFunction | undefined>;
  /** The current version of every function. */
  allCurrent(): Promise<CurrentFunction[]>;
  /** Every function's revision, by name: what a cache compares to find what it missed. */
  revisions(): Promise<Map<string, number>>;
  version(name: string, version: number): Promise<FunctionVersion | undefined>;
  /** Every version, newest first; undefined when the function is unknown. */
  versions(name: string): Promise<FunctionVersion[] | undefined>;
  /** Every function's pending version, with its environment key. */
  pendingVersions(): Promise<{ name: string; version: number; environmentKey: string | null }[]>;
  /** The environment keys any stored version refers to. */
  referencedEnvironments(): Promise<Set<string>>;
  /** Removes the function and its versions (the invocation log keeps its rows); false when unknown. */
  delete(name: string): Promise<boolean>;
  /**
   * Passes every version's stored env to `rewrite` and stores what it returns (sealed as given)
   * in one transaction; null leaves the row as it is. Returns how many rows changed.
   */
  rewriteEnvs(rewrite: (stored: StoredEnv) => Record<string, string> | null): Promise<number>;
}

/**
 * A package environment as every gateway sees it: its identity, and what its first install
 * resolved. The environment itself (the tree on disk) is each node's own (`packages/`): every node
 * builds it from `lock`, so that the content is the same on all of them.
 */
export interface SharedEnvironment {
  /** SHA-256 of the runtime, the interpreter version and the normalised list (the same on every node). */
  key: string;
  runtime: InterpreterKind;
  /** The interpreter version the list was resolved for (part of the key). */
  interpreterVersion: string;
  /** The normalised list. */
  packages: string[];
  /** The node that resolves the list (the first to need it, or one that took over from a lost node); once settled, the one that did. */
  resolver: string;
  /** What the resolving install installed (pip's `name==version` lines, or npm's package-lock.json); null until then. */
  lock: string | null;
  /** Why the resolving install failed (then no node installs the list); null otherwise. */
  error: string | null;
  /** The failed install's output (its tail); "" otherwise. */
  output: string;
  createdAt: number;
  /** When a version last asked for it (registered, or the same list again): what clean-up ages. */
  usedAt: number;
}

/** Package environments shared by the gateways: each is resolved once (by one node), and its lock or failure stored for all. */
export interface EnvironmentRecords {
  /**
   * Records an environment, with `resolver` as the node that resolves it, unless it is recorded
   * already (then only its use is noted); returns the row as stored.
   */
  register(
    environment: Pick<SharedEnvironment, "key" | "runtime" | "interpreterVersion" | "packages">,
    resolver: string,
  ): Promise<SharedEnvironment>;
  get(key: string): Promise<SharedEnvironment | undefined>;
  all(): Promise<SharedEnvironment[]>;
  /** Stores the lock `node` resolved, unless a lock or a failure is stored already (the first wins); returns the row after. */
  resolve(key: string, lock: string, node: string): Promise<SharedEnvironment | undefined>;
  /** Stores the resolving install's failure, unless a lock or a failure is stored already; returns the row after. */
  fail(key: string, failure: { error: string; output: string }, node: string): Promise<SharedEnvironment | undefined>;
  /** Makes `node` the resolver if `previous` still is and nothing is stored yet (a lost resolver); returns whether it did. */
  takeOver(key: string, previous: string, node: string): Promise<boolean>;
  /** Removes the environments no version refers to that were last used before `usedBefore`; returns how many went. */
  prune(usedBefore: number): Promise<number>;
}

/** A row of the log as written at start: the start, its gateway and time. */
export interface StartedRow extends InvocationStart {
  node: string;
  startedAt: number;
}

/** The invocation log. */
export interface InvocationRecords {
  /** Writes `running` rows (a row whose id exists already is left alone); returns the rows written, with their key and start time as stored. */
  start(rows: StartedRow[]): Promise<{ id: string; seq: number; startedAt: number }[]>;
  /**
   * Records how invocations ended, in the order given, each only if its row is still `running`
   * (a row ends once). Each gets the next place in the global finish order; the returned list
   * holds it, or null where the row had ended already or does not exist.
   */
  finish(ends: { id: string; end: StoredEnd }[]): Promise<(number | null)[]>;
  /** Ends the `running` rows of gateway `node` as `interrupted` with `message`; returns how many. */
  markInterrupted(node: string, message: string): Promise<number>;
  /** The newest place in the finish order (0 for an empty log): where a live tail starts. */
  lastFinishedSeq(): Promise<number>;
  /** The finish key of invocation `id`: undefined if there is no such row, null while it runs. */
  finishedSeqOf(id: string): Promise<number | null | undefined>;
  get(id: string): Promise<InvocationRow | undefined>;
  /** Newest first by key, or with `afterFinishedSeq` oldest first by finish order. */
  list(filter: InvocationFilter): Promise<InvocationPage>;
  /** Whether the log has ever seen this function (stats of a deleted function stay available). */
  hasFunction(functionName: string): Promise<boolean>;
  /** Counts by status and nearest-rank duration percentiles over [since, until). */
  stats(functionName: string, since: number, until: number): Promise<InvocationStats>;
  /**
   * Deletes one bounded batch of rows older than `olderThan` (epoch ms) or beyond the newest
   * `keepRows`; returns how many went. Call until it returns less than `batchSize`.
   */
  pruneBatch(options: { olderThan: number | null; keepRows: number | null; batchSize: number }): Promise<number>;
  /** Deletes the oldest `batchSize` rows (the byte budget's pruning); returns how many went. */
  pruneOldest(batchSize: number): Promise<number>;
  /** Bytes the log takes in the database (what LOG_MAX_MB bounds). */
  usedBytes(): Promise<number>;
}

/** An API token as stored: never the token itself, only its SHA-256 (hex). Times are epoch ms. */
export interface TokenRecord {
  id: string;
  name: string;
  tokenHash: string;
  scopes: string[];
  createdAt: number;
  /** Null: never. */
  expiresAt: number | null;
  lastUsedAt: number | null;
}

export interface TokenRecords {
  all(): Promise<TokenRecord[]>;
  insert(record: TokenRecord): Promise<void>;
  /** Replaces the token with this record's id (or inserts it), in one transaction. */
  replace(record: TokenRecord): Promise<void>;
  delete(id: string): Promise<boolean>;
  /** Records when tokens were last used; a time older than the one stored changes nothing (writes may arrive late). */
  touch(used: { id: string; lastUsedAt: number }[]): Promise<void>;
}

/** Console sessions, keyed by the SHA-256 of the cookie's id: valid on every gateway, ended on all at once. */
export interface SessionRecords {
  create(key: string, tokenId: string, expiresAt: number): Promise<void>;
  /** The token a live session signed in with, or null (unknown or expired at `now`). */
  tokenOf(key: string, now: number): Promise<string | null>;
  delete(key: string): Promise<void>;
  /** Removes sessions expired at `now`, and the oldest past `keep`; returns how many went. */
  prune(now: number, keep: number): Promise<number>;
}

/** Small key/value settings of the gateway. */
export interface SettingRecords {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
  /** Stores `value` unless the key holds one; returns what the key holds after. */
  setIfAbsent(key: string, value: string): Promise<string>;
}

/** A gateway sharing the database. Times are epoch ms (the database's clock for heartbeats). */
export interface NodeRecord {
  id: string;
  version: string;
  startedAt: number;
  heartbeatAt: number;
  /** Invocations admitted there at its last heartbeat. */
  inFlight: number;
  /** When it stopped cleanly, or null. */
  stoppedAt: number | null;
  /** When a peer found its lease run out and ended its running rows, or null. */
  lostAt: number | null;
}

export interface NodeRecords {
  /** Records the gateway as started now (a node id seen before starts afresh). */
  register(id: string, version: string): Promise<void>;
  heartbeat(id: string, inFlight: number): Promise<void>;
  /** Records a clean stop. */
  stopped(id: string): Promise<void>;
  list(): Promise<NodeRecord[]>;
  /**
   * Finds the nodes that missed their heartbeat for `leaseMs` by the database's clock (and did not
   * stop cleanly) and were not found so before, records them as lost and ends their `running`
   * rows as `interrupted` with `message`, each exactly once, in one transaction.
   */
  reapLost(leaseMs: number, message: string): Promise<{ node: string; interrupted: number }[]>;
}

/** A request as a job keeps it, to run it later: the path is below `/fn/<name>`, the URL what the function is shown. */
export interface QueuedRequest {
  method: string;
  path: string;
  url: string;
  /** Lower-case names, credentials left out (`core/jobs.ts`). */
  headers: [string, string][];
  body: Buffer;
}

/** A job as enqueued. Times are epoch ms. */
export interface NewJob {
  id: string;
  functionName: string;
  /** The version asked for; null: the current one at each attempt. */
  version: number | null;
  trigger: JobTrigger;
  request: QueuedRequest;
  /** What it counts against the queue's bytes (`core/jobs.ts` requestSize). */
  requestBytes: number;
  maxAttempts: number;
  createdAt: number;
  expiresAt: number;
  runAt: number;
  idempotencyKey: string | null;
  callbackUrl: string | null;
  scheduledAt?: number | null;
  scheduleKey?: string | null;
  redriveOf?: string | null;
}

/** A job as stored. */
export interface JobRecord {
  id: string;
  functionName: string;
  version: number | null;
  trigger: JobTrigger;
  state: JobState;
  /** Attempts started. */
  attempts: number;
  maxAttempts: number;
  createdAt: number;
  expiresAt: number;
  /** When the next attempt, or the next callback delivery, is due. */
  runAt: number;
  leaseNode: string | null;
  leaseUntil: number | null;
  method: string;
  path: string;
  url: string;
  headers: [string, string][];
  /** The request's body; null once a job succeeded (nothing will run it again). */
  body: Buffer | null;
  requestBytes: number;
  idempotencyKey: string | null;
  callbackUrl: string | null;
  scheduledAt: number | null;
  scheduleKey: string | null;
  redriveOf: string | null;
  lastInvocationId: string | null;
  lastStatus: InvocationStatus | null;
  lastError: string | null;
  resultHttpStatus: number | null;
  resultHeaders: [string, string][] | null;
  resultBody: Buffer | null;
  resultTruncated: boolean;
  durationMs: number | null;
  finishedAt: number | null;
  callbackState: "pending" | "delivered" | "failed" | null;
  callbackAttempts: number;
}

/** The queue's bounds an enqueue must stay within: in all, and for the job's function. */
export interface QueueBounds {
  maxJobs: number;
  maxBytes: number;
  functionMaxJobs: number;
  functionMaxBytes: number;
}

export type EnqueueResult =
  | { kind: "enqueued"; job: JobRecord }
  /** The Idempotency-Key named a job of this function within the window: that job, nothing stored. */
  | { kind: "existing"; job: JobRecord }
  /** Past a bound: nothing stored. */
  | { kind: "full"; scope: "queue" | "function" };

/** How an attempt ended, for the job: another attempt later, or the end. */
export type Settlement =
  | { state: "retrying"; runAt: number; lastInvocationId: string | null; lastStatus: InvocationStatus | null; lastError: string | null }
  | {
      state: Exclude<FinalJobState, "cancelled">;
      finishedAt: number;
      lastInvocationId: string | null;
      lastStatus: InvocationStatus | null;
      lastError: string | null;
      result: { httpStatus: number; headers: [string, string][]; body: Buffer; truncated: boolean } | null;
      durationMs: number | null;
    };

/** One delivery attempt of a callback. */
export interface CallbackDelivery {
  jobId: string;
  attempt: number;
  at: number;
  durationMs: number;
  httpStatus: number | null;
  error: string | null;
  node: string;
}

export interface JobFilter {
  state?: JobState;
  functionName?: string;
  /** Only jobs created before this one (the cursor: created_at, then id). */
  before?: { createdAt: number; id: string };
  limit: number;
}

/**
 * The queue of asynchronous invocations. Jobs are leased: a gateway takes due jobs for a while
 * (`leaseUntil`), renews the lease while it runs them, and settles each attempt; a job whose lease
 * ran out (its gateway died) is due again. Two gateways never hold one job at once (PostgreSQL:
 * `FOR UPDATE SKIP LOCKED`). Settling and leasing check the holder, so a gateway that lost a lease
 * cannot overwrite what the new holder does.
 */
export interface JobRecords {
  /**
   * Stores a job within the bounds, all or nothing. With an idempotency key, a job of the same
   * function with that key created at or after `idempotentSince` is answered instead.
   */
  enqueue(job: NewJob, bounds: QueueBounds, idempotentSince: number): Promise<EnqueueResult>;
  get(id: string): Promise<JobRecord | undefined>;
  /** Newest first, without request and result bodies. */
  list(filter: JobFilter): Promise<JobRecord[]>;
  /**
   * Leases up to `limit` due jobs to `node` until `leaseUntil` (queued or retrying with `runAt <=
   * now`, or running with a lease that ran out), oldest due first, skipping `exclude`d functions;
   * each becomes `running` with one more attempt.
   */
  lease(node: string, now: number, leaseUntil: number, limit: number, exclude: string[]): Promise<JobRecord[]>;
  /** Extends the leases `node` holds on `ids`; returns the ids it still holds. */
  renew(node: string, ids: string[], leaseUntil: number): Promise<string[]>;
  /** Hands a leased job back unrun (the attempt is not counted), due at `runAt`. */
  release(id: string, node: string, runAt: number): Promise<void>;
  /** Hands back every job `node` holds (a gateway starting again under the same id), due at once. */
  releaseNode(node: string, now: number): Promise<number>;
  /** Records how attempt `attempt` ended, if `node` still holds the job at that attempt; returns whether it did. */
  settle(id: string, node: string, attempt: number, settlement: Settlement): Promise<boolean>;
  /** Cancels a queued or retrying job; returns the job as it is after and whether this call cancelled it, or undefined. */
  cancel(id: string, now: number): Promise<{ job: JobRecord; cancelled: boolean } | undefined>;
  /** Leases up to `limit` ended jobs whose callback is due. */
  leaseCallbacks(node: string, now: number, leaseUntil: number, limit: number): Promise<JobRecord[]>;
  /** Records a delivery attempt and what follows: another at `runAt`, or the end. Returns whether `node` still held the job. */
  recordDelivery(
    delivery: CallbackDelivery,
    next: { state: "pending"; runAt: number } | { state: "delivered" | "failed" },
  ): Promise<boolean>;
  deliveries(jobId: string): Promise<CallbackDelivery[]>;
  /** The queue's use now: jobs and bytes, in all and by function. */
  usage(): Promise<{ jobs: number; bytes: number; byFunction: Map<string, { jobs: number; bytes: number }> }>;
  /** Deletes up to `batchSize` ended jobs (callbacks done) that finished before `finishedBefore`; returns how many went. */
  prune(finishedBefore: number, batchSize: number): Promise<number>;
}

/** A schedule tick as claimed. */
export interface TickRecord {
  functionName: string;
  scheduleKey: string;
  tickAt: number;
  outcome: TickOutcome;
  jobId: string | null;
  node: string;
  claimedAt: number;
  /** The state of the tick's job, when it has one that still exists. */
  jobState?: JobState | null;
}

/** Schedule ticks: each claimed by one gateway, once, with what became of it. */
export interface ScheduleRecords {
  /** The newest tick claimed for a schedule, or null. */
  lastTick(functionName: string, scheduleKey: string): Promise<number | null>;
  /**
   * Claims a tick and records its outcome, in one transaction: with a job, the job is enqueued
   * (within `bounds`; past them the tick is recorded `refused`), unless `skipWhileRunning` and a
   * job of the same schedule is still pending (then `skipped`). Returns the outcome, or null
   * when another gateway claimed the tick first.
   */
  claim(
    tick: Omit<TickRecord, "outcome" | "jobId" | "jobState">,
    work: { job: NewJob; bounds: QueueBounds; skipWhileRunning: boolean } | { outcome: "missed" },
  ): Promise<TickOutcome | null>;
  /** The newest `limit` ticks of a function, newest first, with their jobs' states. */
  recent(functionName: string, limit: number): Promise<TickRecord[]>;
  /** Deletes ticks claimed before `claimedBefore`, keeping each schedule's newest (where its next look starts); returns how many went. */
  prune(claimedBefore: number): Promise<number>;
}

/** A change one gateway made that the others' caches must learn of. */
export type Change =
  | { kind: "function"; name: string }
  | { kind: "token"; id: string }
  | { kind: "session"; key: string }
  | { kind: "environment"; key: string };

/** How gateways on one database hear of each other's writes. */
export interface ChangeChannel {
  /**
   * Calls `listener` with each change written to the database (by any gateway, this one too)
   * after it is committed, and `onGap` when some may have been missed (a lost connection), so
   * that whoever caches reloads everything. Returns the unsubscribe.
   */
  subscribe(listener: (change: Change) => void, onGap: () => void): () => void;
}

/** What /healthz shows of the database. */
export interface StoreStatus {
  ready: boolean;
  /** Why the database is not ready, when it is not. */
  error?: string;
  /** Bytes the database takes on disk (SQLite: the file and its write-ahead log; PostgreSQL: the database). */
  file_bytes: number;
  /** Bytes in use (SQLite: pages in use; PostgreSQL: the tables and their indexes). */
  used_bytes: number;
}

export interface Store {
  readonly functions: FunctionRecords;
  readonly invocations: InvocationRecords;
  readonly tokens: TokenRecords;
  readonly sessions: SessionRecords;
  readonly settings: SettingRecords;
  readonly nodes: NodeRecords;
  readonly jobs: JobRecords;
  readonly schedules: ScheduleRecords;
  readonly environments: EnvironmentRecords;
  readonly changes: ChangeChannel;
  /**
   * Whether the database is a server the gateway can lose while it runs (PostgreSQL): log rows are
   * then spooled on the node's disk until it is back. The embedded file cannot go away that way.
   */
  readonly remote: boolean;
  /** Whether an error means the database cannot be reached now (a write may succeed later), rather than that the write is wrong. */
  unavailable(error: unknown): boolean;
  /** Runs `work` holding a lock named `name` among every gateway on the database; undefined (not run) when another holds it. */
  exclusively<T>(name: string, work: () => Promise<T>): Promise<T | undefined>;
  /** Whether a write goes through now (a real one), and the sizes. */
  status(): Promise<StoreStatus>;
  /** The database's size: on disk, and in use. */
  sizes(): Promise<Pick<StoreStatus, "file_bytes" | "used_bytes">>;
  /** A consistent copy of the database into `file`; absent where the engine has its own tools (PostgreSQL: pg_dump). */
  backup?: (file: string) => Promise<void>;
  /** Rewrites storage so that no page keeps a value that was overwritten (after secrets were re-sealed). */
  compact(): Promise<void>;
  close(): Promise<void>;
}

/** How a store is opened besides its engine's address. */
export interface StoreOptions {
  /** Called with each SQL statement the store runs (tests count what a path reads). */
  onQuery?: (sql: string) => void;
}

/** A runtime and the settings that name its function, for rows that list functions. */
export interface FunctionSummary {
  name: string;
  runtime: Runtime;
  version: number;
  public: boolean;
  updatedAt: number;
}

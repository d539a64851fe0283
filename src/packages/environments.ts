// One class, the store's whole life cycle (queue, build, seal, record, sweep): longer than
// usual because splitting it would scatter one state machine.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { INTERPRETERS, type InterpreterKind } from "../core/runtimes.js";
import type { SlotCgroup } from "../sandbox/cgroups/setup.js";
import { type InstallerTools, type InstallLimits, runInstall } from "./installer.js";
import { sameLock } from "./lock.js";
import { normalisePackages, type PackageSpec, PackageSpecError } from "./spec.js";
import { freshOwnedDir, SealError, sealTree } from "./tree.js";

// Content-addressed package environments (docs/packages.md):
//
//   DATA_DIR/packages/<runtime>/<key>/     root-owned, 0755
//     environment.json                     state, packages, error, installer output (bounded), size
//     lock                                 pip list --format=freeze (Python) or package-lock.json (Node)
//     tree/                                what the sandbox mounts read-only at /packages
//
// key = sha256(runtime, interpreter version, normalised list): identical lists share one
// environment. An environment is either resolved here (`request`: pip or npm choose the
// versions) or installed from a lock another node resolved (`installLocked`: exactly those
// versions; `lock` holds it before the install and is checked against what was installed).
// Installs run in the background, PACKAGES_PARALLEL at a time; callers read the state and never
// wait on their request's path.

export type EnvironmentState = "pending" | "building" | "ready" | "failed";

export interface EnvironmentRecord {
  key: string;
  runtime: InterpreterKind;
  interpreterVersion: string;
  packages: string[];
  /** Installed from a lock another node resolved (kept in `lock`), rather than resolved here; absent in records from before. */
  fromLock?: boolean;
  state: EnvironmentState;
  error: string | null;
  output: string;
  sizeBytes: number;
  createdAt: string;
  updatedAt: string;
}

/** New environments are refused: the store is at PACKAGES_MAX_MB. */
export class PackagesFullError extends Error {
  readonly code = "packages_storage_full";
}

export interface PackageStoreOptions {
  dataDir: string;
  stagingDir: string;
  maxBytes: number;
  parallel: number;
  graceMs: number;
  limits: InstallLimits;
  tools: InstallerTools;
  /** The interpreter versions environments are built for (part of the key). */
  versions: Record<InterpreterKind, string>;
  /** One cgroup per parallel install (memory limit), or none. */
  cgroups: (SlotCgroup | null)[];
  log?: (line: string) => void;
}

interface InstallWorker {
  uid: number;
  cgroup: SlotCgroup | null;
}

const RECORD = "environment.json";
const KEY = /^[0-9a-f]{64}$/;
const MAX_FILES = 200_000;

export function environmentKey(runtime: InterpreterKind, interpreterVersion: string, packages: PackageSpec[]): string {
  const text = JSON.stringify([runtime, interpreterVersion, packages.map((p) => p.spec)]);
  return crypto.createHash("sha256").update(text).digest("hex");
}

export class PackageStore {
  private readonly records = new Map<string, EnvironmentRecord>();
  private readonly queue: string[] = [];
  /** One per parallel install: its own uid (PACKAGES_UID, PACKAGES_UID - 1, ...) and cgroup. */
  private readonly idleWorkers: InstallWorker[];
  private readonly settled = new Map<string, { promise: Promise<EnvironmentRecord>; resolve: (r: EnvironmentRecord) => void }>();
  private readonly lastUsed = new Map<string, number>();
  private referenced = new Set<string>();
  private readonly builds = new Set<Promise<void>>();
  private readonly settledListeners: ((record: EnvironmentRecord) => void)[] = [];
  private closed = false;

  /** Loads the environments a previous run left; interrupted installs start again. */
  constructor(private readonly options: PackageStoreOptions) {
    // Separate uids, so that ending one install's strays never touches another install.
    this.idleWorkers = Array.from({ length: options.parallel }, (_, k) => ({
      uid: options.limits.uid - k,
      cgroup: options.cgroups[k] ?? null,
    }));
    ensureRootDir(options.stagingDir, 0o711);
    for (const runtime of ["python", "node"] as const) {
      const dir = path.join(options.dataDir, "packages", runtime);
      fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
      for (const key of fs.readdirSync(dir)) {
        if (!KEY.test(key)) continue;
        const record = readRecord(path.join(dir, key, RECORD));
        if (!record) {
          fs.rmSync(path.join(dir, key), { recursive: true, force: true });
          continue;
        }
        this.records.set(key, record);
        this.lastUsed.set(key, Date.now());
        if (record.state === "pending" || record.state === "building") this.enqueue(this.update(record, { state: "pending" }));
      }
    }
  }

  /**
   * The environment for a normalised list, created and queued when new. A ready or failed
   * one is returned as it is: nothing is installed twice. Throws PackagesFullError.
   */
  request(runtime: InterpreterKind, packages: PackageSpec[]): EnvironmentRecord {
    const interpreterVersion = this.options.versions[runtime];
    const key = environmentKey(runtime, interpreterVersion, packages);
    this.lastUsed.set(key, Date.now());
    const existing = this.records.get(key);
    if (existing) return existing;
    this.assertRoom();
    return this.install({ key, runtime, interpreterVersion, packages: packages.map((p) => p.spec) }, null);
  }

  /**
   * Builds an environment here under the key it is given (the same on every node): from `lock`,
   * which another node resolved (exactly those versions), or with null by resolving its list. One
   * building, or ready (with the lock's versions, when a lock is given), is left as it is. Never
   * throws for this node's own trouble: an interpreter of another version or a full store fail
   * the environment here, with a message that says so.
   */
  install(
    environment: Pick<EnvironmentRecord, "key" | "runtime" | "interpreterVersion" | "packages">,
    lock: string | null,
  ): EnvironmentRecord {
    // The key names a directory and the list reaches the installer: both must be what this node would compute.
    if (!KEY.test(environment.key) || !INTERPRETERS.includes(environment.runtime))
      throw new Error(`not an environment key: ${JSON.stringify(environment.key).slice(0, 80)}`);
    this.lastUsed.set(environment.key, Date.now());
    const existing = this.records.get(environment.key);
    if (existing?.state === "building") return existing; // its end is heard, and its lock compared, then
    if (existing?.state === "ready" && (lock === null || sameLock(existing.runtime, this.lock(existing.key), lock))) return existing;
    const record = existing ?? this.create(environment);
    const fromLock = lock !== null;
    if (!matchesKey(environment)) {
      return this.finish(record, { state: "failed", fromLock, error: "the environment's list does not match its key (refused)" });
    }
    const ours = this.options.versions[environment.runtime];
    if (environment.interpreterVersion !== ours) {
      return this.finish(record, {
        state: "failed",
        fromLock,
        error: `this environment is for ${environment.runtime} ${environment.interpreterVersion} and this node runs ${ours}`,
      });
    }
    if (record.sizeBytes === 0 && this.usageBytes() >= this.options.maxBytes) {
      return this.finish(record, { state: "failed", fromLock, error: this.fullMessage() });
    }
    // The lock to install is kept beside the environment, so that a restart installs it again.
    if (lock !== null) fs.writeFileSync(path.join(this.envDir(record), "lock"), lock, { mode: 0o644 });
    const queued = this.update(record, { state: "pending", fromLock, error: null });
    this.enqueue(queued);
    return queued;
  }

  /** The key this node gives a normalised list (its own interpreter's version in it). */
  keyFor(runtime: InterpreterKind, packages: PackageSpec[]): string {
    return environmentKey(runtime, this.options.versions[runtime], packages);
  }

  /** The version of this node's interpreter that environments are built for. */
  interpreterVersion(runtime: InterpreterKind): string {
    return this.options.versions[runtime];
  }

  /** Throws PackagesFullError when no new environment may be built (PACKAGES_MAX_MB). */
  assertRoom(): void {
    if (this.usageBytes() >= this.options.maxBytes) throw new PackagesFullError(this.fullMessage());
  }

  /** Calls `listener` with each environment as it becomes ready or failed. */
  onSettled(listener: (record: EnvironmentRecord) => void): void {
    this.settledListeners.push(listener);
  }

  private create(identity: Pick<EnvironmentRecord, "key" | "runtime" | "interpreterVersion" | "packages">): EnvironmentRecord {
    const now = new Date().toISOString();
    const record: EnvironmentRecord = {
      key: identity.key,
      runtime: identity.runtime,
      interpreterVersion: identity.interpreterVersion,
      packages: [...identity.packages],
      fromLock: false,
      state: "pending",
      error: null,
      output: "",
      sizeBytes: 0,
      createdAt: now,
      updatedAt: now,
    };
    fs.mkdirSync(this.envDir(record), { recursive: true, mode: 0o755 });
    return this.update(record, {});
  }

  private fullMessage(): string {
    return `package environments use ${mb(this.usageBytes())} MB of the ${mb(this.options.maxBytes)} MB allowed (PACKAGES_MAX_MB); no new environment can be built`;
  }

  /** Queues a failed environment for another install (e.g. after a network failure). */
  retry(key: string): EnvironmentRecord | null {
    const record = this.records.get(key);
    if (record?.state !== "failed") return record ?? null;
    this.enqueue(this.update(record, { state: "pending", error: null }));
    return this.records.get(key)!;
  }

  get(key: string): EnvironmentRecord | null {
    return this.records.get(key) ?? null;
  }

  /** The directory to mount at /packages, for a ready environment only. */
  treeDir(key: string): string | null {
    const record = this.records.get(key);
    return record?.state === "ready" ? path.join(this.envDir(record), "tree") : null;
  }

  lock(key: string): string | null {
    const record = this.records.get(key);
    if (record?.state !== "ready") return null;
    return fs.readFileSync(path.join(this.envDir(record), "lock"), "utf8");
  }

  /** Resolves when the environment is ready or failed. */
  settledRecord(key: string): Promise<EnvironmentRecord> {
    const record = this.records.get(key);
    if (!record) return Promise.reject(new Error(`no environment ${key}`));
    if (record.state === "ready" || record.state === "failed") return Promise.resolve(record);
    return this.waiter(key).promise;
  }

  /** Replaces the set of keys that function versions reference; the others age towards removal. */
  markReferenced(keys: Iterable<string>): void {
    const now = Date.now();
    for (const key of this.referenced) this.lastUsed.set(key, now);
    this.referenced = new Set(keys);
  }

  /** Removes settled environments unreferenced for longer than the grace period; returns their keys. */
  sweep(now = Date.now()): string[] {
    const removed: string[] = [];
    for (const record of this.records.values()) {
      if (this.referenced.has(record.key) || (record.state !== "ready" && record.state !== "failed")) continue;
      if (now - (this.lastUsed.get(record.key) ?? 0) < this.options.graceMs) continue;
      this.records.delete(record.key);
      this.lastUsed.delete(record.key);
      fs.rmSync(this.envDir(record), { recursive: true, force: true });
      removed.push(record.key);
    }
    return removed;
  }

  /** Environments in the store, whatever their state. */
  environmentCount(): number {
    return this.records.size;
  }

  /** Bytes held by environments (ready ones, as measured when sealed). */
  usageBytes(): number {
    let total = 0;
    for (const record of this.records.values()) total += record.sizeBytes;
    return total;
  }

  /** Stops starting installs; resolves when the running ones have ended (queued ones resume at the next start). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.builds]);
  }

  private enqueue(record: EnvironmentRecord): void {
    if (!this.queue.includes(record.key)) this.queue.push(record.key);
    this.pump();
  }

  private pump(): void {
    while (!this.closed && this.queue.length > 0 && this.idleWorkers.length > 0) {
      const key = this.queue.shift()!;
      const worker = this.idleWorkers.pop()!;
      const build = this.build(key, worker).finally(() => {
        this.builds.delete(build);
        this.idleWorkers.push(worker);
        this.pump();
      });
      this.builds.add(build);
    }
  }

  private async build(key: string, worker: InstallWorker): Promise<void> {
    let record = this.records.get(key);
    if (!record) return;
    record = this.update(record, { state: "building", error: null, output: "" });
    const staging = path.join(this.options.stagingDir, key);
    const envDir = this.envDir(record);
    try {
      freshOwnedDir(staging, 0);
      freshOwnedDir(path.join(staging, "tree"), worker.uid);
      freshOwnedDir(path.join(staging, "home"), worker.uid);
      fs.chmodSync(staging, 0o711);
      const packages = record.packages.map((spec) => ({ name: nameOf(record!.runtime, spec), spec }));
      const limits = { ...this.options.limits, uid: worker.uid };
      const lock = record.fromLock ? fs.readFileSync(path.join(envDir, "lock"), "utf8") : null;
      const outcome = await runInstall(this.options.tools, limits, {
        runtime: record.runtime,
        packages,
        stagingDir: staging,
        cgroup: worker.cgroup,
        lock,
      });
      if (!outcome.ok) {
        this.finish(record, { state: "failed", error: outcome.error, output: outcome.output });
        return;
      }
      if (lock !== null && !sameLock(record.runtime, lock, outcome.lock)) {
        this.finish(record, {
          state: "failed",
          error: "the installed versions differ from the stored lock (the installer's list is in the output)",
          output: `${outcome.output}\ninstalled:\n${outcome.lock ?? ""}`,
        });
        return;
      }
      const room = this.options.maxBytes - (this.usageBytes() - record.sizeBytes);
      fs.rmSync(path.join(envDir, "tree"), { recursive: true, force: true });
      const sealed = sealTree(path.join(staging, "tree"), path.join(envDir, "tree"), { maxBytes: Math.max(room, 0), maxFiles: MAX_FILES });
      fs.writeFileSync(path.join(envDir, "lock"), outcome.lock ?? "", { mode: 0o644 });
      this.finish(record, { state: "ready", output: outcome.output, sizeBytes: sealed.bytes });
    } catch (error) {
      const message =
        error instanceof SealError ? `${error.message} (PACKAGES_MAX_MB is ${mb(this.options.maxBytes)})` : (error as Error).message;
      if (!(error instanceof SealError)) this.options.log?.(`package environment ${key}: ${message}`);
      fs.rmSync(path.join(envDir, "tree"), { recursive: true, force: true });
      this.finish(record, { state: "failed", error: message, sizeBytes: 0 });
    } finally {
      fs.rmSync(staging, { recursive: true, force: true });
    }
  }

  private finish(record: EnvironmentRecord, changes: Partial<EnvironmentRecord>): EnvironmentRecord {
    const done = this.update(record, changes);
    const waiter = this.settled.get(record.key);
    this.settled.delete(record.key);
    waiter?.resolve(done);
    for (const listener of this.settledListeners) listener(done);
    return done;
  }

  private waiter(key: string) {
    let entry = this.settled.get(key);
    if (!entry) {
      let resolve!: (r: EnvironmentRecord) => void;
      const promise = new Promise<EnvironmentRecord>((r) => (resolve = r));
      entry = { promise, resolve };
      this.settled.set(key, entry);
    }
    return entry;
  }

  /** Applies changes and writes the record beside the environment (atomically), so a restart keeps it. */
  private update(record: EnvironmentRecord, changes: Partial<EnvironmentRecord>): EnvironmentRecord {
    const next = { ...record, ...changes, updatedAt: new Date().toISOString() };
    this.records.set(next.key, next);
    const file = path.join(this.envDir(next), RECORD);
    fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o644 });
    fs.renameSync(`${file}.tmp`, file);
    return next;
  }

  private envDir(record: Pick<EnvironmentRecord, "runtime" | "key">): string {
    return path.join(this.options.dataDir, "packages", record.runtime, record.key);
  }
}

/**
 * The staging root may sit in a shared directory such as /tmp: a path someone else created
 * (a link, or a directory of theirs) is refused rather than followed or taken over.
 */
function ensureRootDir(dir: string, mode: number): void {
  try {
    fs.mkdirSync(dir, { mode });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  const stat = fs.lstatSync(dir);
  if (!stat.isDirectory() || stat.uid !== 0)
    throw new Error(`${dir} must be a directory owned by root (it is not: refusing to use it for package installs)`);
  fs.chmodSync(dir, mode);
}

/** Whether the list is a valid normalised one whose key (with the environment's interpreter version) is the environment's. */
function matchesKey(environment: Pick<EnvironmentRecord, "key" | "runtime" | "interpreterVersion" | "packages">): boolean {
  try {
    const normalised = normalisePackages(environment.runtime, environment.packages);
    return (
      normalised.length > 0 &&
      normalised.map((p) => p.spec).join("\n") === environment.packages.join("\n") &&
      environmentKey(environment.runtime, environment.interpreterVersion, normalised) === environment.key
    );
  } catch (error) {
    if (error instanceof PackageSpecError) return false;
    throw error;
  }
}

function nameOf(runtime: InterpreterKind, spec: string): string {
  return runtime === "python" ? /^[a-z0-9-]+/.exec(spec)![0] : spec.slice(0, spec.indexOf("@", 1));
}

function readRecord(file: string): EnvironmentRecord | null {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as EnvironmentRecord;
  } catch {
    return null;
  }
}

function mb(bytes: number): number {
  return Math.round(bytes / 2 ** 20);
}

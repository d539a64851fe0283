// Longer than most: one state machine per environment across the gateways (who resolves it, who
// installs the stored lock, when a version becomes current), which splits badly.
import type { FunctionCatalog } from "../cluster/functions.js";
import { log } from "../core/log.js";
import { INTERPRETER_OF, type Runtime } from "../core/runtimes.js";
import type { CurrentFunction, SharedEnvironment, Store } from "../store/contract.js";
import type { EnvironmentRecord, EnvironmentState, PackageStore } from "./environments.js";
import { parseLock, sameLock } from "./lock.js";
import { normalisePackages } from "./spec.js";

// The gateway's side of package environments, on one node or many sharing a database: which
// environment a version runs with, who resolves a new list (one node) and how the others install
// exactly what it resolved, when a version waiting for its packages becomes current, what the
// API shows, and the clean-up.
//
// Shared (the store's `environments`): the list, the node that resolves it, its lock or its
// failure. Per node (`PackageStore`): the environment on disk. A node serves a version's
// packages once its own environment is ready with the stored lock's versions.

/** An environment as the API shows it: its state on the node that answers, and the stored lock. */
export interface EnvironmentJson {
  key: string;
  state: EnvironmentState;
  error: string | null;
  /** The installer's output on this node (its last 64 KiB), or the failed resolving install's. */
  output: string;
  /** The exact versions every node installs, by package name; null until one node resolved them. */
  lock: Record<string, string> | null;
  size_bytes: number;
  /** The node whose install resolved the list into the lock (or failed); null until one did. */
  resolved_by: string | null;
  /** The node `state` is seen from (the one that answered). */
  node: string;
}

/** The part of the package store the gateway uses (PackageStore). */
export type EnvironmentStore = Pick<
  PackageStore,
  | "request"
  | "install"
  | "keyFor"
  | "interpreterVersion"
  | "assertRoom"
  | "onSettled"
  | "get"
  | "treeDir"
  | "lock"
  | "markReferenced"
  | "sweep"
  | "usageBytes"
  | "environmentCount"
>;

export interface FunctionEnvironmentsOptions {
  /** This node's environments on disk. */
  store: EnvironmentStore;
  /** The database: the shared environments, the nodes (is a resolver alive?) and the change notifications. */
  shared: Pick<Store, "environments" | "nodes" | "changes">;
  functions: FunctionCatalog;
  /** This node's id. */
  node: string;
  /** PACKAGES_MAX_MB in bytes (shown in /healthz). */
  budgetBytes: number;
  /** PACKAGES_GRACE_MS: how long an environment no version refers to is kept (on disk and in the database). */
  graceMs: number;
  /** How often the environments this node waits for are compared with the database, whatever notifications said. */
  checkIntervalMs?: number;
}

/** A safety net under the change notifications (missed ones, a resolver that died). */
const CHECK_INTERVAL_MS = 5000;
/** An install from a stored lock that failed here (this node's network or disk) is tried again after this, doubling up to RETRY_MAX_MS. */
const RETRY_FIRST_MS = 60_000;
const RETRY_MAX_MS = 3_600_000;

type Identity = Pick<SharedEnvironment, "key" | "runtime" | "interpreterVersion" | "packages">;

export class FunctionEnvironments {
  /** The shared rows this node knows, kept fresh by change notifications. */
  private readonly rows = new Map<string, SharedEnvironment>();
  /** Environments ready on this disk with the stored lock's versions: the only ones mounted. */
  private readonly servable = new Set<string>();
  /** The keys of each function's current and pending versions: what this node builds. */
  private readonly wantedBy = new Map<string, string[]>();
  /** Keys invoked here that no current or pending version has (`/fn/name@N` of an older one): built too. */
  private readonly demanded = new Set<string>();
  /** A pending version's environment key, by `name@version` (versions never change). */
  private readonly pendingKeys = new Map<string, string | null>();
  /** Each key's work in progress: one step at a time per environment. */
  private readonly ensuring = new Map<string, Promise<void>>();
  private readonly retries = new Map<string, { at: number; delayMs: number }>();
  private timer: NodeJS.Timeout | null = null;
  private checking: Promise<void> | null = null;
  private unsubscribe: () => void = () => {};
  private closed = false;

  private constructor(private readonly options: FunctionEnvironmentsOptions) {}

  /**
   * Starts following the database: builds the environments of every current and pending version
   * (from the stored lock where there is one) and makes current the pending versions whose
   * environment is ready here. Resolves once what is ready on this disk is served.
   */
  static async start(options: FunctionEnvironmentsOptions): Promise<FunctionEnvironments> {
    const environments = new FunctionEnvironments(options);
    options.store.onSettled((record) => void environments.ensure(record.key));
    environments.unsubscribe = options.shared.changes.subscribe(
      (change) => {
        if (change.kind === "environment") void environments.heard(change.key);
      },
      () => void environments.reconcileAll(),
    );
    options.functions.onFunctionChange((name, current) => void environments.reconcileFunction(name, current));
    await environments.reconcileAll();
    environments.timer = setInterval(() => void environments.check(), options.checkIntervalMs ?? CHECK_INTERVAL_MS);
    environments.timer.unref();
    return environments;
  }

  private get store(): EnvironmentStore {
    return this.options.store;
  }

  private get node(): string {
    return this.options.node;
  }

  /**
   * The environment key of a version with these packages, recorded (shared) and built when new;
   * null without packages. Throws PackageSpecError (400) and PackagesFullError (507: a list this
   * node does not have and has no room for).
   */
  async environmentFor(runtime: Runtime, packages: readonly string[]): Promise<string | null> {
    const normalised = normalisePackages(runtime, packages);
    if (normalised.length === 0) return null;
    // TypeScript functions share Node's environments: the same registry, installer and interpreter.
    const interpreter = INTERPRETER_OF[runtime];
    const key = this.store.keyFor(interpreter, normalised);
    if (!this.store.get(key)) this.store.assertRoom();
    const identity = {
      key,
      runtime: interpreter,
      interpreterVersion: this.store.interpreterVersion(interpreter),
      packages: normalised.map((p) => p.spec),
    };
    this.remember(await this.options.shared.environments.register(identity, this.node));
    await this.ensure(key);
    return key;
  }

  /** Whether a version with this environment key may run here now (no packages: always). */
  private isReady(key: string | null): boolean {
    return key === null || this.servable.has(key);
  }

  /** Whether some node has built this environment (its lock is stored): a version with it may become current (no packages: always). */
  isBuilt(key: string | null): boolean {
    return key === null || (this.rows.get(key)?.lock ?? null) !== null;
  }

  /** The environment's state and error on this node; null when neither this node nor the database knows it. */
  record(key: string): { state: EnvironmentState; error: string | null } | null {
    const view = this.view(key);
    return view && { state: view.state, error: view.error };
  }

  /**
   * The tree to mount at /packages; null when not ready here. An environment this node has not
   * started to build (a version older than the current one, invoked by number) is built from now on.
   */
  treeDir(key: string): string | null {
    if (this.servable.has(key)) return this.store.treeDir(key);
    if (!this.demanded.has(key)) {
      this.demanded.add(key);
      void this.ensure(key);
    }
    return null;
  }

  /** After a version was stored pending: makes it current if its environment became ready meanwhile (else that happens when it does). */
  watch(name: string, version: number, key: string): void {
    if (this.isReady(key)) void this.promote(name, version);
  }

  /** Marks the environments stored versions refer to; removes the others past the grace period, here and in the database. */
  async sweep(now = Date.now()): Promise<string[]> {
    this.store.markReferenced(await this.options.functions.referencedEnvironments());
    await this.options.shared.environments.prune(now - this.options.graceMs);
    return this.store.sweep(now);
  }

  /** The `packages` part of /healthz. */
  health(): { ready: true; environments: number; bytes: number; budget_bytes: number } {
    return {
      ready: true,
      environments: this.store.environmentCount(),
      bytes: this.store.usageBytes(),
      budget_bytes: this.options.budgetBytes,
    };
  }

  /** The API's view of an environment: its state on this node, and the stored lock; null for no key. */
  describe(key: string | null): EnvironmentJson | null {
    if (key === null) return null;
    const view = this.view(key);
    const row = this.rows.get(key);
    const resolvedBy = row && (row.lock !== null || row.error !== null) ? row.resolver : null;
    if (!view) {
      return {
        key,
        state: "failed",
        error: "the environment was removed",
        output: "",
        lock: null,
        size_bytes: 0,
        resolved_by: null,
        node: this.node,
      };
    }
    const local = this.store.get(key);
    // Without a shared row (an environment built before they were shared): this node's own lock.
    const lock = row ? parseLock(row.runtime, row.lock) : local?.state === "ready" ? parseLock(local.runtime, this.store.lock(key)) : null;
    const { sizeBytes, ...seen } = view;
    return { key, ...seen, lock, size_bytes: sizeBytes, resolved_by: resolvedBy, node: this.node };
  }

  /** Stops following the database (installs in progress are the package store's to end). */
  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe();
  }

  private view(key: string): { state: EnvironmentState; error: string | null; output: string; sizeBytes: number } | null {
    const local = this.store.get(key);
    const row = this.rows.get(key);
    if (this.servable.has(key) && local) return { state: "ready", error: null, output: local.output, sizeBytes: local.sizeBytes };
    if (local?.state === "failed") return { state: "failed", error: local.error, output: local.output, sizeBytes: 0 };
    if (row?.error != null) return { state: "failed", error: row.error, output: row.output, sizeBytes: 0 };
    if (local && !row) return { state: local.state, error: local.error, output: local.output, sizeBytes: local.sizeBytes };
    // Ready here but not (yet) with the stored lock: its lock is being stored, or it is built again from the stored one.
    if (local) return { state: local.state === "ready" ? "building" : local.state, error: null, output: local.output, sizeBytes: 0 };
    return row ? { state: "pending", error: null, output: "", sizeBytes: 0 } : null;
  }

  private remember(row: SharedEnvironment | undefined): SharedEnvironment | undefined {
    if (row) this.rows.set(row.key, row);
    return row;
  }

  /** A change to an environment's shared row, made by any node. */
  private async heard(key: string): Promise<void> {
    try {
      this.remember(await this.options.shared.environments.get(key));
    } catch (err) {
      log.warn({ err }, `package environment ${key}: could not be read from the database: ${(err as Error).message}`);
      return;
    }
    if (this.store.get(key) || this.demanded.has(key) || this.isWanted(key)) await this.ensure(key);
  }

  private isWanted(key: string): boolean {
    for (const keys of this.wantedBy.values()) if (keys.includes(key)) return true;
    return false;
  }

  /** Reads every shared row and builds what every function's current and pending versions need (at start, and after missed notifications). */
  private async reconcileAll(): Promise<void> {
    try {
      for (const row of await this.options.shared.environments.all()) this.rows.set(row.key, row);
      // Environments built here before they were shared: recorded now, so that every node can build them.
      const referenced = await this.options.functions.referencedEnvironments();
      await Promise.all([...referenced].filter((key) => !this.rows.has(key) && this.store.get(key)).map((key) => this.ensure(key)));
    } catch (err) {
      log.warn({ err }, `package environments could not be read from the database: ${(err as Error).message}`);
    }
    await Promise.all(this.options.functions.list().map(({ name }) => this.reconcileFunction(name, this.options.functions.get(name))));
  }

  /** Builds the environments of a function's current and pending versions; makes the pending one current if its environment is ready here. */
  private async reconcileFunction(name: string, current: CurrentFunction | undefined): Promise<void> {
    if (this.closed) return;
    if (!current) {
      this.wantedBy.delete(name);
      return;
    }
    try {
      const keys = current.environmentKey === null ? [] : [current.environmentKey];
      const pending = current.pendingVersion;
      const pendingKey = pending === null ? undefined : await this.pendingKey(name, pending);
      if (pendingKey) keys.push(pendingKey);
      this.wantedBy.set(name, keys);
      for (const key of keys) await this.ensure(key);
      if (pending !== null && pendingKey !== undefined && this.isReady(pendingKey)) await this.promote(name, pending);
    } catch (err) {
      log.warn({ err, function: name }, `function ${name}: its package environments could not be checked: ${(err as Error).message}`);
    }
  }

  /** The environment key of a pending version (null: none; undefined: no such version). */
  private async pendingKey(name: string, version: number): Promise<string | null | undefined> {
    const id = `${name}@${version}`;
    if (this.pendingKeys.has(id)) return this.pendingKeys.get(id);
    const stored = await this.options.functions.version(name, version);
    if (!stored) return undefined;
    this.pendingKeys.set(id, stored.environmentKey);
    return stored.environmentKey;
  }

  private async promote(name: string, version: number): Promise<void> {
    try {
      if (await this.options.functions.promote(name, version))
        log.info(`function ${name}: version ${version} is current (its packages are ready on node ${this.node})`);
    } catch (err) {
      log.warn({ err, function: name }, `function ${name}: version ${version} could not be made current: ${(err as Error).message}`);
    }
  }

  /** Takes the next step for one environment, after the steps already queued for it. */
  private ensure(key: string): Promise<void> {
    const previous = this.ensuring.get(key) ?? Promise.resolve();
    const next = previous
      .then(() => (this.closed ? undefined : this.step(key)))
      .catch((err: unknown) => {
        log.warn({ err }, `package environment ${key}: ${(err as Error).message}`);
      });
    this.ensuring.set(key, next);
    void next.finally(() => {
      if (this.ensuring.get(key) === next) this.ensuring.delete(key);
    });
    return next;
  }

  /**
   * One environment's next step on this node, from what the database and this disk say:
   * - failed for everyone (its resolving install failed): nothing to build;
   * - a lock is stored: served if this disk has it with those versions, else installed from it;
   * - no lock yet: this node's resolving install stores its lock (or its failure) when it ends;
   *   the resolver, if this node, starts that install; a lost resolver is taken over; any other
   *   node waits for the notification that the lock is stored.
   */
  private async step(key: string): Promise<void> {
    const local = this.store.get(key);
    let row = this.rows.get(key) ?? this.remember(await this.options.shared.environments.get(key));
    if (!row) {
      if (!local) return; // no version of this node's knows it (or its row was removed with the last one)
      row = this.remember(await this.options.shared.environments.register(identityOf(local), this.node))!;
    }
    if (row.error !== null) return;
    if (row.lock !== null) {
      if (local?.state === "ready" && sameLock(row.runtime, this.store.lock(key), row.lock)) {
        this.retries.delete(key);
        if (!this.servable.has(key)) {
          this.servable.add(key);
          await this.promotePending(key);
        }
        return;
      }
      this.servable.delete(key);
      if (local?.state === "building" || (local?.state === "pending" && local.fromLock)) return; // its end is heard
      if (local?.state === "failed" && local.fromLock && !this.retryDue(key)) return;
      this.store.install(row, row.lock);
      return;
    }
    // Nothing stored yet: what this node resolved is stored (the first node to store wins; the others then install that).
    if (local?.state === "ready") {
      const lock = this.store.lock(key);
      if (lock !== null) {
        const stored = await this.options.shared.environments.resolve(key, lock, this.node);
        if (!stored) {
          this.rows.delete(key); // removed meanwhile: recorded again at the next step
          return;
        }
        this.remember(stored);
        return this.step(key);
      }
    }
    if (local?.state === "failed" && !local.fromLock) {
      this.remember(
        await this.options.shared.environments.fail(key, { error: local.error ?? "the install failed", output: local.output }, this.node),
      );
      return;
    }
    if (local?.state === "pending" || local?.state === "building") return; // its end is heard
    // Only a node with the interpreter the list is for can resolve it.
    if (row.interpreterVersion !== this.store.interpreterVersion(row.runtime)) return;
    if (row.resolver !== this.node) {
      if (await this.isLive(row.resolver)) return; // it resolves; its lock is heard of when stored
      if (!(await this.options.shared.environments.takeOver(key, row.resolver, this.node))) {
        this.remember(await this.options.shared.environments.get(key));
        return;
      }
      log.info(`package environment ${key}: node ${row.resolver} is gone before resolving it; node ${this.node} resolves it`);
      this.remember({ ...row, resolver: this.node });
    }
    this.store.install(row, null);
  }

  /** Makes current the pending versions that wait for this environment (once one node has it ready, the first to get there). */
  private async promotePending(key: string): Promise<void> {
    for (const pending of await this.options.functions.pendingVersions()) {
      if (pending.environmentKey === key) await this.promote(pending.name, pending.version);
    }
  }

  /** Whether a node the database knows is running (it has not stopped, and no peer found its lease run out). */
  private async isLive(node: string): Promise<boolean> {
    const record = (await this.options.shared.nodes.list()).find((n) => n.id === node);
    return record !== undefined && record.stoppedAt === null && record.lostAt === null;
  }

  /** Whether an install from the lock that failed here is due to be tried again (the first call starts the wait). */
  private retryDue(key: string): boolean {
    const now = Date.now();
    const entry = this.retries.get(key);
    if (!entry) {
      this.retries.set(key, { at: now + RETRY_FIRST_MS, delayMs: RETRY_FIRST_MS });
      return false;
    }
    if (now < entry.at) return false;
    entry.delayMs = Math.min(entry.delayMs * 2, RETRY_MAX_MS);
    entry.at = now + entry.delayMs;
    return true;
  }

  /**
   * The safety net: environments this node needs and does not serve are read again from the
   * database (a missed notification; a resolver that died) and taken a step further; pending
   * versions whose environment is ready here are made current.
   */
  private check(): Promise<void> {
    this.checking ??= (async () => {
      const keys = new Set([...this.demanded, ...[...this.wantedBy.values()].flat()]);
      for (const key of keys) {
        if (this.closed || this.servable.has(key)) continue;
        const row = this.rows.get(key);
        try {
          if (!row || (row.lock === null && row.error === null)) this.remember(await this.options.shared.environments.get(key));
        } catch (err) {
          log.debug({ err }, `package environment ${key}: could not be read from the database`);
          continue;
        }
        await this.ensure(key);
      }
      for (const { name } of this.options.functions.list()) {
        const pending = this.options.functions.get(name)?.pendingVersion ?? null;
        const key = pending === null ? undefined : this.pendingKeys.get(`${name}@${pending}`);
        if (pending !== null && key !== undefined && this.isReady(key)) await this.promote(name, pending);
      }
    })().finally(() => {
      this.checking = null;
    });
    return this.checking;
  }
}

function identityOf(record: EnvironmentRecord): Identity {
  return { key: record.key, runtime: record.runtime, interpreterVersion: record.interpreterVersion, packages: record.packages };
}

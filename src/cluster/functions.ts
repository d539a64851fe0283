import { log } from "../core/log.js";
import type { FunctionSettings } from "../core/settings.js";
import type {
  Change,
  CurrentFunction,
  FunctionRecords,
  FunctionSummary,
  FunctionVersion,
  Store,
  StoredVersion,
} from "../store/contract.js";

/** Called after the catalog learned of a change to `name`: its current version now, undefined when deleted. */
export type FunctionListener = (name: string, current: CurrentFunction | undefined) => void;

/**
 * Every function's current version, in memory: an invocation of a known function reads no
 * database, and neither does a 404 for an unknown one. The catalog learns of changes from the
 * store's change channel (any gateway's writes, this one's too) and, as a safety net, compares
 * every function's revision with the database's now and then. Each function's refreshes run one
 * after another, each reading the database after the one before it finished, so the last one
 * always leaves what the database holds; a write here returns after its own refresh, so the
 * writer reads what it wrote.
 */
export class FunctionCatalog {
  private readonly current = new Map<string, CurrentFunction>();
  /** The refresh of each function in progress (the newest of its chain). */
  private readonly refreshing = new Map<string, Promise<void>>();
  private readonly listeners: FunctionListener[] = [];
  private unsubscribe: () => void = () => {};

  private constructor(private readonly records: FunctionRecords) {}

  /** Loads every function and starts listening for changes. */
  static async load(store: Store): Promise<FunctionCatalog> {
    const catalog = new FunctionCatalog(store.functions);
    // Subscribed first, so a change made while the first load reads is refreshed after it.
    catalog.unsubscribe = store.changes.subscribe(
      (change) => catalog.onChange(change),
      () => catalog.resync(),
    );
    for (const fn of await store.functions.allCurrent()) catalog.current.set(fn.name, fn);
    return catalog;
  }

  /** Called with each change the catalog applies (packages install what a new version needs; warm instances of a deleted function stop). */
  onFunctionChange(listener: FunctionListener): void {
    this.listeners.push(listener);
  }

  private onChange(change: Change): void {
    if (change.kind === "function") void this.refresh(change.name);
  }

  /** Reads one function again (after the refreshes already queued for it). */
  refresh(name: string): Promise<void> {
    const previous = this.refreshing.get(name) ?? Promise.resolve();
    const next = previous.then(async () => {
      let fn: CurrentFunction | undefined;
      try {
        fn = await this.records.current(name);
      } catch (err) {
        // The cached state stays; the periodic check tries again.
        log.warn({ err, function: name }, `function ${name}: could not refresh from the database: ${(err as Error).message}`);
        return;
      }
      if (fn) this.current.set(name, fn);
      else this.current.delete(name);
      for (const listener of this.listeners) listener(name, fn);
    });
    this.refreshing.set(name, next);
    void next.finally(() => {
      if (this.refreshing.get(name) === next) this.refreshing.delete(name);
    });
    return next;
  }

  /** Compares every function's revision with the database's and refreshes those that differ (missed changes, a lost connection). */
  async resync(): Promise<void> {
    let revisions: Map<string, number>;
    try {
      revisions = await this.records.revisions();
    } catch (err) {
      log.warn({ err }, `the function catalog could not be checked against the database: ${(err as Error).message}`);
      return;
    }
    const names = new Set([...revisions.keys(), ...this.current.keys()]);
    await Promise.all(
      [...names].filter((name) => this.current.get(name)?.revision !== revisions.get(name)).map((name) => this.refresh(name)),
    );
  }

  /** The current version, from memory. */
  get(name: string): CurrentFunction | undefined {
    return this.current.get(name);
  }

  /** Every function with its current version, by name. */
  list(): FunctionSummary[] {
    return [...this.current.values()]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((fn) => ({ name: fn.name, runtime: fn.runtime, version: fn.version, public: fn.public, updatedAt: fn.updatedAt }));
  }

  /** One version of a function: the current one from memory, an older one from the database. */
  async version(name: string, version: number): Promise<FunctionVersion | undefined> {
    const current = this.current.get(name);
    if (current?.version === version) return current;
    return this.records.version(name, version);
  }

  versions(name: string): Promise<FunctionVersion[] | undefined> {
    return this.records.versions(name);
  }

  async create(name: string, settings: FunctionSettings, environmentKey: string | null): Promise<CurrentFunction | null> {
    const created = await this.records.create(name, settings, environmentKey);
    if (created) await this.refresh(name);
    return created;
  }

  async addVersion(
    name: string,
    settings: FunctionSettings,
    environmentKey: string | null,
    makeCurrent: boolean,
  ): Promise<StoredVersion | null> {
    const stored = await this.records.addVersion(name, settings, environmentKey, makeCurrent);
    await this.refresh(name);
    return stored;
  }

  async promote(name: string, version: number): Promise<boolean> {
    const promoted = await this.records.promote(name, version);
    if (promoted) await this.refresh(name);
    return promoted;
  }

  async delete(name: string): Promise<boolean> {
    const deleted = await this.records.delete(name);
    await this.refresh(name);
    return deleted;
  }

  pendingVersions(): ReturnType<FunctionRecords["pendingVersions"]> {
    return this.records.pendingVersions();
  }

  referencedEnvironments(): Promise<Set<string>> {
    return this.records.referencedEnvironments();
  }

  close(): void {
    this.unsubscribe();
  }
}

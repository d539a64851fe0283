import { and, asc, desc, eq, isNotNull, max } from "drizzle-orm";
import type { Runtime } from "../core/runtimes.js";
import type { FunctionSettings } from "../core/settings.js";
import type { Db } from "./client.js";
import { functions, functionVersions } from "./schema.js";
import type { SecretBox } from "./secrets.js";

export interface FunctionVersion extends FunctionSettings {
  name: string;
  version: number;
  /** When this version was stored (epoch ms). */
  createdAt: number;
  /** Its package environment (`packages/environments.ts`); null without packages. */
  environmentKey: string | null;
}

/** The current version of a function, plus when the function was first registered and the version waiting for its packages. */
export interface CurrentFunction extends FunctionVersion {
  functionCreatedAt: number;
  /** A newer version stored while its packages were not ready (becomes current when they are); null when none. */
  pendingVersion: number | null;
}

/** What storing a version did: the version, and the function's current version after it. */
export interface StoredVersion {
  stored: FunctionVersion;
  current: CurrentFunction;
}

export interface FunctionSummary {
  name: string;
  runtime: Runtime;
  version: number;
  public: boolean;
  updatedAt: number;
}

/**
 * The function registry. It keeps the current version of every function it has looked up in
 * memory, so an invocation does no SQL read in the common case; this process is the only
 * writer, so updating the cache in `addVersion` and `delete` keeps it exact. Env values are
 * sealed (`secrets.ts`) before they reach the database and opened as rows are read.
 */
export class FunctionStore {
  private readonly current = new Map<string, CurrentFunction>();

  constructor(
    private readonly db: Db,
    private readonly secrets: SecretBox,
  ) {}

  /** A version's row as stored: its env values sealed to this function and version. */
  private row(
    name: string,
    version: number,
    settings: FunctionSettings,
    environmentKey: string | null,
    createdAt: number,
  ): typeof functionVersions.$inferInsert {
    const env = this.secrets.sealEnv(settings.env, name, version);
    return { ...settings, functionName: name, version, env, envSealed: true, environmentKey, createdAt };
  }

  private toVersion(row: typeof functionVersions.$inferSelect): FunctionVersion {
    const { functionName, envSealed: _sealed, ...rest } = row;
    return { name: functionName, ...rest, env: this.secrets.openEnv(rest.env, functionName, rest.version) };
  }

  /** Registers version 1 (current at once, ready or not); returns null when the name is taken. */
  create(name: string, settings: FunctionSettings, environmentKey: string | null = null): CurrentFunction | null {
    const now = Date.now();
    const created = this.db.transaction((tx) => {
      const inserted = tx
        .insert(functions)
        .values({ name, currentVersion: 1, createdAt: now, updatedAt: now })
        .onConflictDoNothing()
        .returning({ name: functions.name })
        .all();
      if (inserted.length === 0) return null;
      tx.insert(functionVersions)
        .values(this.row(name, 1, settings, environmentKey, now))
        .run();
      return { name, version: 1, ...settings, environmentKey, createdAt: now, functionCreatedAt: now, pendingVersion: null };
    });
    if (created) this.current.set(name, created);
    return created;
  }

  /**
   * Stores a new version (the newest + 1). With `makeCurrent` it becomes current at once;
   * without, it is recorded as pending and the current version stays (see `promote`).
   * Null when the function is unknown.
   */
  addVersion(name: string, settings: FunctionSettings, environmentKey: string | null = null, makeCurrent = true): StoredVersion | null {
    const now = Date.now();
    const result = this.db.transaction((tx) => {
      const row = tx.select().from(functions).where(eq(functions.name, name)).get();
      if (!row) return null;
      const newest = tx
        .select({ version: max(functionVersions.version) })
        .from(functionVersions)
        .where(eq(functionVersions.functionName, name))
        .get();
      const version = Math.max(newest?.version ?? 0, row.currentVersion) + 1;
      tx.insert(functionVersions)
        .values(this.row(name, version, settings, environmentKey, now))
        .run();
      const change = makeCurrent ? { currentVersion: version, pendingVersion: null, updatedAt: now } : { pendingVersion: version };
      tx.update(functions).set(change).where(eq(functions.name, name)).run();
      return { version, functionCreatedAt: row.createdAt };
    });
    this.current.delete(name);
    if (!result) return null;
    const stored: FunctionVersion = { name, version: result.version, ...settings, environmentKey, createdAt: now };
    return { stored, current: this.get(name)! };
  }

  /** Makes a pending version current, if it is still the pending one; returns whether it did. */
  promote(name: string, version: number): boolean {
    const now = Date.now();
    const changed = this.db
      .update(functions)
      .set({ currentVersion: version, pendingVersion: null, updatedAt: now })
      .where(and(eq(functions.name, name), eq(functions.pendingVersion, version)))
      .run().changes;
    this.current.delete(name);
    return changed > 0;
  }

  /** Every function's pending version, with its environment key. */
  pendingVersions(): { name: string; version: number; environmentKey: string | null }[] {
    return this.db
      .select({ name: functionVersions.functionName, version: functionVersions.version, environmentKey: functionVersions.environmentKey })
      .from(functions)
      .innerJoin(
        functionVersions,
        and(eq(functionVersions.functionName, functions.name), eq(functionVersions.version, functions.pendingVersion)),
      )
      .all();
  }

  /** The environment keys any stored version refers to (what the package sweep must keep). */
  referencedEnvironments(): Set<string> {
    const rows = this.db
      .selectDistinct({ key: functionVersions.environmentKey })
      .from(functionVersions)
      .where(isNotNull(functionVersions.environmentKey))
      .all();
    return new Set(rows.map((row) => row.key!));
  }

  /** The current version, from memory when it has been seen before. */
  get(name: string): CurrentFunction | undefined {
    const cached = this.current.get(name);
    if (cached) return cached;
    const row = this.db
      .select({ version: functionVersions, functionCreatedAt: functions.createdAt, pendingVersion: functions.pendingVersion })
      .from(functions)
      .innerJoin(
        functionVersions,
        and(eq(functionVersions.functionName, functions.name), eq(functionVersions.version, functions.currentVersion)),
      )
      .where(eq(functions.name, name))
      .get();
    if (!row) return undefined;
    const found = { ...this.toVersion(row.version), functionCreatedAt: row.functionCreatedAt, pendingVersion: row.pendingVersion };
    this.current.set(name, found);
    return found;
  }

  /** One version of a function (current or older); versions are immutable, so no cache is needed for correctness. */
  getVersion(name: string, version: number): FunctionVersion | undefined {
    const cached = this.current.get(name);
    if (cached?.version === version) return cached;
    const row = this.db
      .select()
      .from(functionVersions)
      .where(and(eq(functionVersions.functionName, name), eq(functionVersions.version, version)))
      .get();
    return row ? this.toVersion(row) : undefined;
  }

  /** Every function with its current version, by name. */
  list(): FunctionSummary[] {
    return this.db
      .select({
        name: functions.name,
        runtime: functionVersions.runtime,
        version: functions.currentVersion,
        public: functionVersions.public,
        updatedAt: functions.updatedAt,
      })
      .from(functions)
      .innerJoin(
        functionVersions,
        and(eq(functionVersions.functionName, functions.name), eq(functionVersions.version, functions.currentVersion)),
      )
      .orderBy(asc(functions.name))
      .all();
  }

  /** Every version, newest first; undefined when the function is unknown. */
  versions(name: string): FunctionVersion[] | undefined {
    const rows = this.db
      .select()
      .from(functionVersions)
      .where(eq(functionVersions.functionName, name))
      .orderBy(desc(functionVersions.version))
      .all();
    return rows.length > 0 ? rows.map((row) => this.toVersion(row)) : undefined;
  }

  /** Removes the function and its versions (the invocation log keeps its rows); false when unknown. */
  delete(name: string): boolean {
    this.current.delete(name);
    const result = this.db.delete(functions).where(eq(functions.name, name)).run();
    return result.changes > 0;
  }
}

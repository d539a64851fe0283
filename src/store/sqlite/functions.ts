import { and, desc, eq, isNotNull, max, sql } from "drizzle-orm";
import type { FunctionSettings } from "../../core/settings.js";
import type { Change, CurrentFunction, EnvSealer, FunctionRecords, FunctionVersion, StoredEnv, StoredVersion } from "../contract.js";
import { firstVersion, toCurrent, toVersion, versionRow } from "../rows.js";
import type { Db } from "./client.js";
import { functions, functionVersions } from "./schema.js";

/** Functions and versions in SQLite. Env values are sealed before they reach the database and opened as rows are read. */
export class SqliteFunctions implements FunctionRecords {
  constructor(
    private readonly db: Db,
    private readonly sealer: EnvSealer,
    private readonly publish: (change: Change) => void,
  ) {}

  private readonly currentQuery = () =>
    this.db
      .select({ version: functionVersions, fn: functions })
      .from(functions)
      .innerJoin(
        functionVersions,
        and(eq(functionVersions.functionName, functions.name), eq(functionVersions.version, functions.currentVersion)),
      );

  async create(name: string, settings: FunctionSettings, environmentKey: string | null): Promise<CurrentFunction | null> {
    const now = Date.now();
    const created = this.db.transaction((tx) => {
      const inserted = tx
        .insert(functions)
        .values({ name, currentVersion: 1, createdAt: now, updatedAt: now })
        .onConflictDoNothing()
        .returning({ name: functions.name })
        .all();
      if (inserted.length === 0) return false;
      tx.insert(functionVersions)
        .values(versionRow(this.sealer, name, 1, settings, environmentKey, now))
        .run();
      return true;
    });
    if (!created) return null;
    this.publish({ kind: "function", name });
    return firstVersion(name, settings, environmentKey, now);
  }

  async addVersion(
    name: string,
    settings: FunctionSettings,
    environmentKey: string | null,
    makeCurrent: boolean,
  ): Promise<StoredVersion | null> {
    const now = Date.now();
    const version = this.db.transaction((tx) => {
      const row = tx.select().from(functions).where(eq(functions.name, name)).get();
      if (!row) return null;
      const newest = tx
        .select({ version: max(functionVersions.version) })
        .from(functionVersions)
        .where(eq(functionVersions.functionName, name))
        .get();
      const next = Math.max(newest?.version ?? 0, row.currentVersion) + 1;
      tx.insert(functionVersions)
        .values(versionRow(this.sealer, name, next, settings, environmentKey, now))
        .run();
      const change = makeCurrent ? { currentVersion: next, pendingVersion: null, updatedAt: now } : { pendingVersion: next };
      tx.update(functions)
        .set({ ...change, revision: sql`${functions.revision} + 1` })
        .where(eq(functions.name, name))
        .run();
      return next;
    });
    if (version === null) return null;
    this.publish({ kind: "function", name });
    const current = await this.current(name);
    if (!current) return null;
    return { stored: { name, version, ...settings, environmentKey, createdAt: now }, current };
  }

  async promote(name: string, version: number): Promise<boolean> {
    const changed = this.db
      .update(functions)
      .set({ currentVersion: version, pendingVersion: null, updatedAt: Date.now(), revision: sql`${functions.revision} + 1` })
      .where(and(eq(functions.name, name), eq(functions.pendingVersion, version)))
      .run().changes;
    if (changed > 0) this.publish({ kind: "function", name });
    return changed > 0;
  }

  async current(name: string): Promise<CurrentFunction | undefined> {
    const row = this.currentQuery().where(eq(functions.name, name)).get();
    return row && toCurrent(this.sealer, row);
  }

  async allCurrent(): Promise<CurrentFunction[]> {
    return this.currentQuery()
      .all()
      .map((row) => toCurrent(this.sealer, row));
  }

  async revisions(): Promise<Map<string, number>> {
    const rows = this.db.select({ name: functions.name, revision: functions.revision }).from(functions).all();
    return new Map(rows.map((row) => [row.name, row.revision]));
  }

  async version(name: string, version: number): Promise<FunctionVersion | undefined> {
    const row = this.db
      .select()
      .from(functionVersions)
      .where(and(eq(functionVersions.functionName, name), eq(functionVersions.version, version)))
      .get();
    return row && toVersion(this.sealer, row);
  }

  async versions(name: string): Promise<FunctionVersion[] | undefined> {
    const rows = this.db
      .select()
      .from(functionVersions)
      .where(eq(functionVersions.functionName, name))
      .orderBy(desc(functionVersions.version))
      .all();
    return rows.length > 0 ? rows.map((row) => toVersion(this.sealer, row)) : undefined;
  }

  async pendingVersions(): Promise<{ name: string; version: number; environmentKey: string | null }[]> {
    return this.db
      .select({ name: functionVersions.functionName, version: functionVersions.version, environmentKey: functionVersions.environmentKey })
      .from(functions)
      .innerJoin(
        functionVersions,
        and(eq(functionVersions.functionName, functions.name), eq(functionVersions.version, functions.pendingVersion)),
      )
      .all();
  }

  async referencedEnvironments(): Promise<Set<string>> {
    const rows = this.db
      .selectDistinct({ key: functionVersions.environmentKey })
      .from(functionVersions)
      .where(isNotNull(functionVersions.environmentKey))
      .all();
    return new Set(rows.map((row) => row.key!));
  }

  async delete(name: string): Promise<boolean> {
    const deleted = this.db.delete(functions).where(eq(functions.name, name)).run().changes > 0;
    if (deleted) this.publish({ kind: "function", name });
    return deleted;
  }

  async rewriteEnvs(rewrite: (stored: StoredEnv) => Record<string, string> | null): Promise<number> {
    return this.db.transaction((tx) => {
      let changed = 0;
      const rows = tx
        .select({
          name: functionVersions.functionName,
          version: functionVersions.version,
          env: functionVersions.env,
          sealed: functionVersions.envSealed,
        })
        .from(functionVersions)
        .all();
      for (const row of rows) {
        const env = rewrite(row);
        if (env === null) continue;
        tx.update(functionVersions)
          .set({ env, envSealed: true })
          .where(and(eq(functionVersions.functionName, row.name), eq(functionVersions.version, row.version)))
          .run();
        changed++;
      }
      return changed;
    });
  }
}

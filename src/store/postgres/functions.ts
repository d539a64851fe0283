import { and, desc, eq, isNotNull, max, sql } from "drizzle-orm";
import type { FunctionSettings } from "../../core/settings.js";
import type { Change, CurrentFunction, EnvSealer, FunctionRecords, FunctionVersion, StoredEnv, StoredVersion } from "../contract.js";
import { firstVersion, toCurrent, toVersion, versionRow } from "../rows.js";
import { type Db, type Tx, transaction } from "./client.js";
import { functions, functionVersions } from "./schema.js";

/** Tells the other gateways, from inside the writing transaction (delivered at its commit). */
export type Notify = (tx: Tx | Db, change: Change) => Promise<void>;

/** Functions and versions in PostgreSQL. Env values are sealed before they reach the database and opened as rows are read. */
export class PostgresFunctions implements FunctionRecords {
  constructor(
    private readonly db: Db,
    private readonly sealer: EnvSealer,
    private readonly notify: Notify,
  ) {}

  private currentQuery() {
    return this.db
      .select({ version: functionVersions, fn: functions })
      .from(functions)
      .innerJoin(
        functionVersions,
        and(eq(functionVersions.functionName, functions.name), eq(functionVersions.version, functions.currentVersion)),
      );
  }

  async create(name: string, settings: FunctionSettings, environmentKey: string | null): Promise<CurrentFunction | null> {
    const now = Date.now();
    const created = await transaction(this.db, async (tx) => {
      const inserted = await tx
        .insert(functions)
        .values({ name, currentVersion: 1, createdAt: now, updatedAt: now })
        .onConflictDoNothing()
        .returning({ name: functions.name });
      if (inserted.length === 0) return false;
      await tx.insert(functionVersions).values(versionRow(this.sealer, name, 1, settings, environmentKey, now));
      await this.notify(tx, { kind: "function", name });
      return true;
    });
    if (!created) return null;
    return firstVersion(name, settings, environmentKey, now);
  }

  async addVersion(
    name: string,
    settings: FunctionSettings,
    environmentKey: string | null,
    makeCurrent: boolean,
  ): Promise<StoredVersion | null> {
    const now = Date.now();
    const version = await transaction(this.db, async (tx) => {
      // The function's row is locked until commit: a second gateway storing a version waits and numbers after this one.
      const [row] = await tx.select().from(functions).where(eq(functions.name, name)).for("update");
      if (!row) return null;
      const [newest] = await tx
        .select({ version: max(functionVersions.version) })
        .from(functionVersions)
        .where(eq(functionVersions.functionName, name));
      const next = Math.max(newest?.version ?? 0, row.currentVersion) + 1;
      await tx.insert(functionVersions).values(versionRow(this.sealer, name, next, settings, environmentKey, now));
      const change = makeCurrent ? { currentVersion: next, pendingVersion: null, updatedAt: now } : { pendingVersion: next };
      await tx
        .update(functions)
        .set({ ...change, revision: sql`${functions.revision} + 1` })
        .where(eq(functions.name, name));
      await this.notify(tx, { kind: "function", name });
      return next;
    });
    if (version === null) return null;
    const current = await this.current(name);
    if (!current) return null;
    return { stored: { name, version, ...settings, environmentKey, createdAt: now }, current };
  }

  async promote(name: string, version: number): Promise<boolean> {
    return transaction(this.db, async (tx) => {
      const changed = await tx
        .update(functions)
        .set({ currentVersion: version, pendingVersion: null, updatedAt: Date.now(), revision: sql`${functions.revision} + 1` })
        .where(and(eq(functions.name, name), eq(functions.pendingVersion, version)))
        .returning({ name: functions.name });
      if (changed.length > 0) await this.notify(tx, { kind: "function", name });
      return changed.length > 0;
    });
  }

  async current(name: string): Promise<CurrentFunction | undefined> {
    const [row] = await this.currentQuery().where(eq(functions.name, name));
    return row && toCurrent(this.sealer, row);
  }

  async allCurrent(): Promise<CurrentFunction[]> {
    return (await this.currentQuery()).map((row) => toCurrent(this.sealer, row));
  }

  async revisions(): Promise<Map<string, number>> {
    const rows = await this.db.select({ name: functions.name, revision: functions.revision }).from(functions);
    return new Map(rows.map((row) => [row.name, row.revision]));
  }

  async version(name: string, version: number): Promise<FunctionVersion | undefined> {
    const [row] = await this.db
      .select()
      .from(functionVersions)
      .where(and(eq(functionVersions.functionName, name), eq(functionVersions.version, version)));
    return row && toVersion(this.sealer, row);
  }

  async versions(name: string): Promise<FunctionVersion[] | undefined> {
    const rows = await this.db
      .select()
      .from(functionVersions)
      .where(eq(functionVersions.functionName, name))
      .orderBy(desc(functionVersions.version));
    return rows.length > 0 ? rows.map((row) => toVersion(this.sealer, row)) : undefined;
  }

  async pendingVersions(): Promise<{ name: string; version: number; environmentKey: string | null }[]> {
    return this.db
      .select({ name: functionVersions.functionName, version: functionVersions.version, environmentKey: functionVersions.environmentKey })
      .from(functions)
      .innerJoin(
        functionVersions,
        and(eq(functionVersions.functionName, functions.name), eq(functionVersions.version, functions.pendingVersion)),
      );
  }

  async referencedEnvironments(): Promise<Set<string>> {
    const rows = await this.db
      .selectDistinct({ key: functionVersions.environmentKey })
      .from(functionVersions)
      .where(isNotNull(functionVersions.environmentKey));
    return new Set(rows.map((row) => row.key!));
  }

  async delete(name: string): Promise<boolean> {
    return transaction(this.db, async (tx) => {
      const deleted = await tx.delete(functions).where(eq(functions.name, name)).returning({ name: functions.name });
      if (deleted.length > 0) await this.notify(tx, { kind: "function", name });
      return deleted.length > 0;
    });
  }

  async rewriteEnvs(rewrite: (stored: StoredEnv) => Record<string, string> | null): Promise<number> {
    return transaction(this.db, async (tx) => {
      let changed = 0;
      const rows = await tx
        .select({
          name: functionVersions.functionName,
          version: functionVersions.version,
          env: functionVersions.env,
          sealed: functionVersions.envSealed,
        })
        .from(functionVersions)
        .for("update");
      for (const row of rows) {
        const env = rewrite(row);
        if (env === null) continue;
        await tx
          .update(functionVersions)
          .set({ env, envSealed: true })
          .where(and(eq(functionVersions.functionName, row.name), eq(functionVersions.version, row.version)));
        changed++;
      }
      return changed;
    });
  }
}

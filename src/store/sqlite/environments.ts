import { and, eq, isNull, lt, notExists, sql } from "drizzle-orm";
import { storableText } from "../../core/invocations.js";
import type { Change, EnvironmentRecords, SharedEnvironment } from "../contract.js";
import type { Db } from "./client.js";
import { environments, functionVersions } from "./schema.js";

/** Package environments in SQLite: one gateway, recorded as on PostgreSQL. */
export class SqliteEnvironments implements EnvironmentRecords {
  constructor(
    private readonly db: Db,
    private readonly publish: (change: Change) => void,
  ) {}

  async register(
    environment: Pick<SharedEnvironment, "key" | "runtime" | "interpreterVersion" | "packages">,
    resolver: string,
  ): Promise<SharedEnvironment> {
    const now = Date.now();
    const inserted = this.db.transaction((tx) => {
      const rows = tx
        .insert(environments)
        .values({ ...environment, resolver, createdAt: now, usedAt: now })
        .onConflictDoNothing()
        .returning({ key: environments.key })
        .all();
      if (rows.length === 0) tx.update(environments).set({ usedAt: now }).where(eq(environments.key, environment.key)).run();
      return rows.length > 0;
    });
    if (inserted) this.publish({ kind: "environment", key: environment.key });
    return (await this.get(environment.key))!;
  }

  async get(key: string): Promise<SharedEnvironment | undefined> {
    return this.db.select().from(environments).where(eq(environments.key, key)).get();
  }

  async all(): Promise<SharedEnvironment[]> {
    return this.db.select().from(environments).all();
  }

  async resolve(key: string, lock: string, node: string): Promise<SharedEnvironment | undefined> {
    return this.settle(key, { lock, resolver: node });
  }

  async fail(key: string, failure: { error: string; output: string }, node: string): Promise<SharedEnvironment | undefined> {
    // Stored as on PostgreSQL, whose text cannot hold NUL.
    return this.settle(key, { error: storableText(failure.error), output: storableText(failure.output), resolver: node });
  }

  private async settle(key: string, changes: Partial<SharedEnvironment>): Promise<SharedEnvironment | undefined> {
    const changed = this.db
      .update(environments)
      .set({ ...changes, usedAt: Date.now() })
      .where(and(eq(environments.key, key), isNull(environments.lock), isNull(environments.error)))
      .run().changes;
    if (changed > 0) this.publish({ kind: "environment", key });
    return this.get(key);
  }

  async takeOver(key: string, previous: string, node: string): Promise<boolean> {
    return (
      this.db
        .update(environments)
        .set({ resolver: node })
        .where(and(eq(environments.key, key), eq(environments.resolver, previous), isNull(environments.lock), isNull(environments.error)))
        .run().changes > 0
    );
  }

  async prune(usedBefore: number): Promise<number> {
    const referring = this.db.select({ one: sql`1` }).from(functionVersions).where(eq(functionVersions.environmentKey, environments.key));
    return this.db
      .delete(environments)
      .where(and(lt(environments.usedAt, usedBefore), notExists(referring)))
      .run().changes;
  }
}

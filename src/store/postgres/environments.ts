import { and, eq, isNull, lt, notExists, sql } from "drizzle-orm";
import { storableText } from "../../core/invocations.js";
import type { EnvironmentRecords, SharedEnvironment } from "../contract.js";
import { type Db, transaction } from "./client.js";
import type { Notify } from "./functions.js";
import { environments, functionVersions } from "./schema.js";

/** Package environments in PostgreSQL. A row settles once (the first lock or failure stored wins); settling tells every gateway. */
export class PostgresEnvironments implements EnvironmentRecords {
  constructor(
    private readonly db: Db,
    private readonly notify: Notify,
  ) {}

  async register(
    environment: Pick<SharedEnvironment, "key" | "runtime" | "interpreterVersion" | "packages">,
    resolver: string,
  ): Promise<SharedEnvironment> {
    const now = Date.now();
    return transaction(this.db, async (tx) => {
      const [inserted] = await tx
        .insert(environments)
        .values({ ...environment, resolver, createdAt: now, usedAt: now })
        .onConflictDoNothing()
        .returning();
      if (inserted) {
        await this.notify(tx, { kind: "environment", key: environment.key });
        return inserted;
      }
      const [used] = await tx.update(environments).set({ usedAt: now }).where(eq(environments.key, environment.key)).returning();
      return used!;
    });
  }

  async get(key: string): Promise<SharedEnvironment | undefined> {
    const [row] = await this.db.select().from(environments).where(eq(environments.key, key));
    return row;
  }

  async all(): Promise<SharedEnvironment[]> {
    return this.db.select().from(environments);
  }

  async resolve(key: string, lock: string, node: string): Promise<SharedEnvironment | undefined> {
    return this.settle(key, { lock, resolver: node });
  }

  async fail(key: string, failure: { error: string; output: string }, node: string): Promise<SharedEnvironment | undefined> {
    return this.settle(key, { error: storableText(failure.error), output: storableText(failure.output), resolver: node });
  }

  private async settle(key: string, changes: Partial<SharedEnvironment>): Promise<SharedEnvironment | undefined> {
    return transaction(this.db, async (tx) => {
      const [settled] = await tx
        .update(environments)
        .set({ ...changes, usedAt: Date.now() })
        .where(and(eq(environments.key, key), isNull(environments.lock), isNull(environments.error)))
        .returning();
      if (settled) {
        await this.notify(tx, { kind: "environment", key });
        return settled;
      }
      const [row] = await tx.select().from(environments).where(eq(environments.key, key));
      return row;
    });
  }

  async takeOver(key: string, previous: string, node: string): Promise<boolean> {
    const taken = await this.db
      .update(environments)
      .set({ resolver: node })
      .where(and(eq(environments.key, key), eq(environments.resolver, previous), isNull(environments.lock), isNull(environments.error)))
      .returning({ key: environments.key });
    return taken.length > 0;
  }

  async prune(usedBefore: number): Promise<number> {
    const referring = this.db.select({ one: sql`1` }).from(functionVersions).where(eq(functionVersions.environmentKey, environments.key));
    const removed = await this.db
      .delete(environments)
      .where(and(lt(environments.usedAt, usedBefore), notExists(referring)))
      .returning({ key: environments.key });
    return removed.length;
  }
}

import { asc, eq, sql } from "drizzle-orm";
import type { Change, TokenRecord, TokenRecords } from "../contract.js";
import type { Db } from "./client.js";
import { tokens } from "./schema.js";

export class SqliteTokens implements TokenRecords {
  constructor(
    private readonly db: Db,
    private readonly publish: (change: Change) => void,
  ) {}

  async all(): Promise<TokenRecord[]> {
    return this.db.select().from(tokens).orderBy(asc(tokens.createdAt), asc(tokens.id)).all();
  }

  async insert(record: TokenRecord): Promise<void> {
    this.db.insert(tokens).values(record).run();
    this.publish({ kind: "token", id: record.id });
  }

  async replace(record: TokenRecord): Promise<void> {
    this.db.transaction((tx) => {
      tx.delete(tokens).where(eq(tokens.id, record.id)).run();
      tx.insert(tokens).values(record).run();
    });
    this.publish({ kind: "token", id: record.id });
  }

  async delete(id: string): Promise<boolean> {
    const deleted = this.db.delete(tokens).where(eq(tokens.id, id)).run().changes > 0;
    if (deleted) this.publish({ kind: "token", id });
    return deleted;
  }

  async touch(used: { id: string; lastUsedAt: number }[]): Promise<void> {
    this.db.transaction((tx) => {
      // The newest use stays (as on PostgreSQL): a late write of an older one changes nothing.
      for (const { id, lastUsedAt } of used)
        tx.update(tokens)
          .set({ lastUsedAt: sql`max(coalesce(${tokens.lastUsedAt}, 0), ${lastUsedAt})` })
          .where(eq(tokens.id, id))
          .run();
    });
  }
}

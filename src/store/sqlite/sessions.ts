import { desc, eq, inArray, lte } from "drizzle-orm";
import type { Change, SessionRecords } from "../contract.js";
import type { Db } from "./client.js";
import { sessions } from "./schema.js";

export class SqliteSessions implements SessionRecords {
  constructor(
    private readonly db: Db,
    private readonly publish: (change: Change) => void,
  ) {}

  async create(key: string, tokenId: string, expiresAt: number): Promise<void> {
    this.db.insert(sessions).values({ key, tokenId, expiresAt }).run();
  }

  async tokenOf(key: string, now: number): Promise<string | null> {
    const row = this.db.select().from(sessions).where(eq(sessions.key, key)).get();
    return row && row.expiresAt > now ? row.tokenId : null;
  }

  async delete(key: string): Promise<void> {
    this.db.delete(sessions).where(eq(sessions.key, key)).run();
    this.publish({ kind: "session", key });
  }

  async prune(now: number, keep: number): Promise<number> {
    return this.db.transaction((tx) => {
      let removed = tx.delete(sessions).where(lte(sessions.expiresAt, now)).run().changes;
      // SQLite takes an offset only after a limit.
      const over = tx
        .select({ key: sessions.key })
        .from(sessions)
        .orderBy(desc(sessions.expiresAt))
        .limit(Number.MAX_SAFE_INTEGER)
        .offset(keep);
      removed += tx.delete(sessions).where(inArray(sessions.key, over)).run().changes;
      return removed;
    });
  }
}

import { desc, eq, inArray, lte } from "drizzle-orm";
import type { SessionRecords } from "../contract.js";
import { type Db, transaction } from "./client.js";
import type { Notify } from "./functions.js";
import { sessions } from "./schema.js";

export class PostgresSessions implements SessionRecords {
  constructor(
    private readonly db: Db,
    private readonly notify: Notify,
  ) {}

  async create(key: string, tokenId: string, expiresAt: number): Promise<void> {
    await this.db.insert(sessions).values({ key, tokenId, expiresAt });
  }

  async tokenOf(key: string, now: number): Promise<string | null> {
    const [row] = await this.db.select().from(sessions).where(eq(sessions.key, key));
    return row && row.expiresAt > now ? row.tokenId : null;
  }

  async delete(key: string): Promise<void> {
    await transaction(this.db, async (tx) => {
      await tx.delete(sessions).where(eq(sessions.key, key));
      await this.notify(tx, { kind: "session", key });
    });
  }

  async prune(now: number, keep: number): Promise<number> {
    return transaction(this.db, async (tx) => {
      const expired = await tx.delete(sessions).where(lte(sessions.expiresAt, now)).returning({ key: sessions.key });
      const kept = tx.select({ key: sessions.key }).from(sessions).orderBy(desc(sessions.expiresAt)).offset(keep);
      const over = await tx.delete(sessions).where(inArray(sessions.key, kept)).returning({ key: sessions.key });
      return expired.length + over.length;
    });
  }
}

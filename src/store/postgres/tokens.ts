import { asc, eq, sql } from "drizzle-orm";
import type { TokenRecord, TokenRecords } from "../contract.js";
import { type Db, transaction } from "./client.js";
import type { Notify } from "./functions.js";
import { tokens } from "./schema.js";

export class PostgresTokens implements TokenRecords {
  constructor(
    private readonly db: Db,
    private readonly notify: Notify,
  ) {}

  async all(): Promise<TokenRecord[]> {
    return this.db.select().from(tokens).orderBy(asc(tokens.createdAt), asc(tokens.id));
  }

  async insert(record: TokenRecord): Promise<void> {
    await transaction(this.db, async (tx) => {
      await tx.insert(tokens).values(record);
      await this.notify(tx, { kind: "token", id: record.id });
    });
  }

  async replace(record: TokenRecord): Promise<void> {
    await transaction(this.db, async (tx) => {
      // One statement: gateways starting together each replace the root token, and a delete then an
      // insert let two of them insert at once (a duplicate key, and a gateway that did not start).
      const { id: _id, ...rest } = record;
      await tx.insert(tokens).values(record).onConflictDoUpdate({ target: tokens.id, set: rest });
      await this.notify(tx, { kind: "token", id: record.id });
    });
  }

  async delete(id: string): Promise<boolean> {
    return transaction(this.db, async (tx) => {
      const deleted = await tx.delete(tokens).where(eq(tokens.id, id)).returning({ id: tokens.id });
      if (deleted.length > 0) await this.notify(tx, { kind: "token", id });
      return deleted.length > 0;
    });
  }

  async touch(used: { id: string; lastUsedAt: number }[]): Promise<void> {
    if (used.length === 0) return;
    const values = sql.join(
      used.map(({ id, lastUsedAt }) => sql`(${id}::text, ${lastUsedAt}::bigint)`),
      sql`, `,
    );
    await this.db.execute(
      sql`update ${tokens} set last_used_at = greatest(coalesce(${tokens.lastUsedAt}, 0), u.at) from (values ${values}) as u(id, at) where ${tokens.id} = u.id`,
    );
  }
}

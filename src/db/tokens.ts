import crypto from "node:crypto";
import { asc, eq } from "drizzle-orm";
import type { Db } from "./client.js";
import { tokens } from "./schema.js";

/** A token as stored: never the token itself, only its hash. */
export type TokenRecord = typeof tokens.$inferSelect;

/** The id of the first-start admin token (GATEWAY_TOKEN, or the one generated and printed once). */
export const ROOT_TOKEN_ID = "root";

/** last_used_at is written at most this often per token, so a busy token costs no write per request. */
const LAST_USED_RESOLUTION_MS = 60_000;

export const sha256 = (text: string): Buffer => crypto.createHash("sha256").update(text, "utf8").digest();

export type Authentication = { kind: "ok"; token: TokenRecord } | { kind: "invalid" } | { kind: "expired" };

/**
 * API tokens. Every token's record is kept in memory by hash (they are few, and this process is
 * the only writer), so authenticating a request costs a SHA-256 and a map lookup, no SQL read.
 */
export class TokenStore {
  private readonly byHash = new Map<string, TokenRecord>();

  constructor(
    private readonly db: Db,
    private readonly now: () => number = Date.now,
  ) {
    for (const row of db.select().from(tokens).all()) this.byHash.set(row.tokenHash, row);
  }

  /** A new token; the token itself is returned this once and never stored. */
  create(name: string, scopes: string[], expiresAt: number | null): { record: TokenRecord; token: string } {
    const token = `fngw_${crypto.randomBytes(32).toString("base64url")}`;
    const record: TokenRecord = {
      id: `tok_${crypto.randomBytes(8).toString("hex")}`,
      name,
      tokenHash: sha256(token).toString("hex"),
      scopes,
      createdAt: this.now(),
      expiresAt,
      lastUsedAt: null,
    };
    this.db.insert(tokens).values(record).run();
    this.byHash.set(record.tokenHash, record);
    return { record, token };
  }

  /** Sets the admin token's hash (a new GATEWAY_TOKEN replaces the old one). */
  setRoot(hash: Buffer, name: string): void {
    const record: TokenRecord = {
      id: ROOT_TOKEN_ID,
      name,
      tokenHash: hash.toString("hex"),
      scopes: ["admin"],
      createdAt: this.now(),
      expiresAt: null,
      lastUsedAt: null,
    };
    const old = this.get(ROOT_TOKEN_ID);
    if (old?.tokenHash === record.tokenHash) return;
    this.db.transaction((tx) => {
      tx.delete(tokens).where(eq(tokens.id, ROOT_TOKEN_ID)).run();
      tx.insert(tokens).values(record).run();
    });
    if (old) this.byHash.delete(old.tokenHash);
    this.byHash.set(record.tokenHash, record);
  }

  get(id: string): TokenRecord | undefined {
    for (const record of this.byHash.values()) if (record.id === id) return record;
    return undefined;
  }

  list(): TokenRecord[] {
    return this.db.select().from(tokens).orderBy(asc(tokens.createdAt), asc(tokens.id)).all();
  }

  delete(id: string): boolean {
    const record = this.get(id);
    if (!record) return false;
    this.db.delete(tokens).where(eq(tokens.id, id)).run();
    this.byHash.delete(record.tokenHash);
    return true;
  }

  /**
   * The token presented, if it is one. Looked up by its hash, then the hashes compared with
   * timingSafeEqual (equal lengths, so nothing of the token's length leaks either).
   */
  authenticate(presented: string): Authentication {
    const hash = sha256(presented);
    const record = this.byHash.get(hash.toString("hex"));
    if (!record || !crypto.timingSafeEqual(hash, Buffer.from(record.tokenHash, "hex"))) return { kind: "invalid" };
    const now = this.now();
    if (record.expiresAt !== null && record.expiresAt <= now) return { kind: "expired" };
    if (record.lastUsedAt === null || now - record.lastUsedAt >= LAST_USED_RESOLUTION_MS) {
      record.lastUsedAt = now;
      this.db.update(tokens).set({ lastUsedAt: now }).where(eq(tokens.id, record.id)).run();
    }
    return { kind: "ok", token: record };
  }
}

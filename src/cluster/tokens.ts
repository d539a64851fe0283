import crypto from "node:crypto";
import { log } from "../core/log.js";
import type { Store, TokenRecord, TokenRecords } from "../store/contract.js";

/** The id of the first-start admin token (GATEWAY_TOKEN, or the one generated and printed once). */
export const ROOT_TOKEN_ID = "root";

/** last_used_at is written at most this often per token, so a busy token costs no write per request. */
const LAST_USED_RESOLUTION_MS = 60_000;

export const sha256 = (text: string): Buffer => crypto.createHash("sha256").update(text, "utf8").digest();

export type Authentication = { kind: "ok"; token: TokenRecord } | { kind: "invalid" } | { kind: "expired" };

/**
 * API tokens, every record in memory by hash (they are few): authenticating a request costs a
 * SHA-256 and a map lookup, no database read. Any gateway's change to a token (a revocation, a
 * new admin token) reloads the set from the store's change channel; `resync` does the same as a
 * safety net. Last-use times are written in the background, at most once a minute per token.
 */
export class TokenRegistry {
  private byHash = new Map<string, TokenRecord>();
  private reloading: Promise<void> = Promise.resolve();
  private unsubscribe: () => void = () => {};

  private constructor(
    private readonly records: TokenRecords,
    private readonly now: () => number,
  ) {}

  static async load(store: Store, now: () => number = Date.now): Promise<TokenRegistry> {
    const registry = new TokenRegistry(store.tokens, now);
    registry.unsubscribe = store.changes.subscribe(
      (change) => {
        if (change.kind === "token") void registry.resync();
      },
      () => void registry.resync(),
    );
    await registry.resync();
    return registry;
  }

  /** Reads every token again (after any reload in progress). */
  resync(): Promise<void> {
    this.reloading = this.reloading.then(async () => {
      try {
        const records = await this.records.all();
        // A last use recorded here may not have reached the database yet: the newer time stays.
        for (const record of records) {
          const known = this.byHash.get(record.tokenHash)?.lastUsedAt ?? null;
          if (known !== null && (record.lastUsedAt === null || known > record.lastUsedAt)) record.lastUsedAt = known;
        }
        this.byHash = new Map(records.map((record) => [record.tokenHash, record]));
      } catch (err) {
        log.warn({ err }, `tokens could not be reloaded from the database: ${(err as Error).message}`);
      }
    });
    return this.reloading;
  }

  /** A new token; the token itself is returned this once and never stored. */
  async create(name: string, scopes: string[], expiresAt: number | null): Promise<{ record: TokenRecord; token: string }> {
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
    await this.records.insert(record);
    await this.resync();
    return { record, token };
  }

  /** Sets the admin token's hash (a new GATEWAY_TOKEN replaces the old one). */
  async setRoot(hash: Buffer, name: string): Promise<void> {
    if (this.get(ROOT_TOKEN_ID)?.tokenHash === hash.toString("hex")) return;
    await this.records.replace({
      id: ROOT_TOKEN_ID,
      name,
      tokenHash: hash.toString("hex"),
      scopes: ["admin"],
      createdAt: this.now(),
      expiresAt: null,
      lastUsedAt: null,
    });
    await this.resync();
  }

  get(id: string): TokenRecord | undefined {
    for (const record of this.byHash.values()) if (record.id === id) return record;
    return undefined;
  }

  /** Every token, oldest first. */
  list(): TokenRecord[] {
    return [...this.byHash.values()].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async delete(id: string): Promise<boolean> {
    const deleted = await this.records.delete(id);
    await this.resync();
    return deleted;
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
      this.records.touch([{ id: record.id, lastUsedAt: now }]).catch((err: unknown) => {
        log.warn({ err }, `token ${record.id}: its last use could not be recorded: ${(err as Error).message}`);
      });
    }
    return { kind: "ok", token: record };
  }

  close(): void {
    this.unsubscribe();
  }
}

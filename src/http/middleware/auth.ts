import crypto from "node:crypto";
import type { MiddlewareHandler } from "hono";
import type { KeyValueStore } from "../../db/key-value.js";
import { ApiError } from "../errors.js";

/** Settings key of the API token's SHA-256 (hex); the token itself is never stored. */
export const TOKEN_HASH_KEY = "api_token_sha256";

export function sha256(text: string): Buffer {
  return crypto.createHash("sha256").update(text, "utf8").digest();
}

export interface ApiToken {
  /** SHA-256 of the token every protected request must present. */
  hash: Buffer;
  /** The token, only when it was generated just now (to be printed once); otherwise null. */
  generated: string | null;
}

/**
 * GATEWAY_TOKEN wins when set (its hash replaces the stored one). Otherwise the stored hash is
 * kept, and on the very first start a random token is generated and only its hash stored.
 */
export function provisionToken(store: KeyValueStore, envToken: string | undefined): ApiToken {
  if (envToken !== undefined) {
    const hash = sha256(envToken);
    store.set(TOKEN_HASH_KEY, hash.toString("hex"));
    return { hash, generated: null };
  }
  const stored = store.get(TOKEN_HASH_KEY);
  if (stored !== undefined) return { hash: Buffer.from(stored, "hex"), generated: null };
  const token = crypto.randomBytes(32).toString("base64url");
  const hash = sha256(token);
  store.set(TOKEN_HASH_KEY, hash.toString("hex"));
  return { hash, generated: token };
}

export type TokenCheck = "ok" | "missing" | "invalid";

/** Compares hashes, not tokens, so timingSafeEqual gets equal lengths and the token's length does not leak. */
export function checkBearer(authorization: string | undefined, tokenHash: Buffer): TokenCheck {
  const match = authorization?.match(/^Bearer[ \t]+(\S+)[ \t]*$/i);
  if (!match?.[1]) return "missing";
  return crypto.timingSafeEqual(sha256(match[1]), tokenHash) ? "ok" : "invalid";
}

export function unauthorized(check: Exclude<TokenCheck, "ok">): ApiError {
  return check === "missing"
    ? new ApiError(401, "unauthorized", "missing token: send Authorization: Bearer <token>", {
        "WWW-Authenticate": 'Bearer realm="fngw"',
      })
    : new ApiError(401, "unauthorized", "invalid token", {
        "WWW-Authenticate": 'Bearer realm="fngw", error="invalid_token"',
      });
}

/** Guards the management API. */
export function requireToken(tokenHash: Buffer): MiddlewareHandler {
  return async (c, next) => {
    const check = checkBearer(c.req.header("authorization"), tokenHash);
    if (check !== "ok") throw unauthorized(check);
    await next();
  };
}

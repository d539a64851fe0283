import crypto from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { sha256, type TokenRecord, type TokenStore } from "../../db/tokens.js";
import { ApiError } from "../errors.js";
import { checkBearer, unauthorized } from "./auth.js";

/**
 * Console sessions. The browser holds only an opaque random id in an HttpOnly, SameSite=Strict
 * cookie; the API token never reaches script. A cookie alone authenticates nothing: the request
 * must also carry `X-Fngw-Console: 1`, a custom header that a page of another origin (a function's
 * page included, which runs in an opaque origin) can send only after a CORS preflight the gateway
 * never grants.
 */

export const SESSION_COOKIE = "fngw_session";
export const CONSOLE_HEADER = "x-fngw-console";
export const SESSION_TTL_MS = 12 * 3600_000;
/** Bounds the table: past it, the session closest to expiry makes room. */
const MAX_SESSIONS = 1000;

/** The server-side session table, in memory: a restart signs everyone out. */
export class SessionStore {
  /** Keyed by the id's SHA-256, so a lookup's timing says nothing about stored ids: when it expires, and the token it signed in with. */
  private readonly sessions = new Map<string, { expiry: number; tokenId: string }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** A new session for the token `tokenId`; the session acts with that token's scopes for as long as the token stands. */
  create(tokenId: string): string {
    this.prune();
    if (this.sessions.size >= MAX_SESSIONS) {
      const oldest = this.sessions.keys().next().value;
      if (oldest !== undefined) this.sessions.delete(oldest);
    }
    const id = crypto.randomBytes(32).toString("base64url");
    this.sessions.set(this.key(id), { expiry: this.now() + SESSION_TTL_MS, tokenId });
    return id;
  }

  /** The token a live session signed in with, or null. */
  tokenOf(id: string): string | null {
    const key = this.key(id);
    const session = this.sessions.get(key);
    if (session === undefined) return null;
    if (session.expiry <= this.now()) {
      this.sessions.delete(key);
      return null;
    }
    return session.tokenId;
  }

  delete(id: string): void {
    this.sessions.delete(this.key(id));
  }

  private key(id: string): string {
    return sha256(id).toString("hex");
  }

  /** Insertion order is expiry order (every session lives as long), so expired ones are at the front. */
  private prune(): void {
    const now = this.now();
    for (const [key, { expiry }] of this.sessions) {
      if (expiry > now) break;
      this.sessions.delete(key);
    }
  }
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * A state-changing request must come from the gateway's own pages: an `Origin` header, when
 * present, must name this host (the scheme is not compared, so a TLS-terminating proxy in front
 * does not break the console; the cookie is SameSite=Strict either way). "null", an opaque
 * origin such as a function's sandboxed page, never matches.
 */
function sameOrigin(c: Context): boolean {
  const origin = c.req.header("origin");
  if (origin === undefined) return true;
  try {
    const url = new URL(origin);
    return (url.protocol === "http:" || url.protocol === "https:") && url.host === (c.req.header("host") ?? new URL(c.req.url).host);
  } catch {
    return false;
  }
}

/** The checks a console request passes before its cookie counts; throws the refusal. */
export function requireConsoleRequest(c: Context): void {
  if (c.req.header(CONSOLE_HEADER) !== "1") {
    throw new ApiError(401, "unauthorized", "the session cookie is accepted only with the header X-Fngw-Console: 1");
  }
  if (!SAFE_METHODS.has(c.req.method) && !sameOrigin(c)) {
    throw new ApiError(403, "forbidden", "cross-origin request refused");
  }
}

/**
 * Guards the management API: the bearer token as before, or a console session cookie sent
 * with the console header (and, for state-changing methods, from the gateway's own origin).
 */
export function requireTokenOrSession(tokens: TokenStore, sessions: SessionStore): MiddlewareHandler {
  return async (c, next) => {
    const bearer = checkBearer(c.req.header("authorization"), tokens);
    if (bearer.kind === "ok") {
      c.set("apiToken", bearer.token);
      return next();
    }
    const sessionId = getCookie(c, SESSION_COOKIE);
    if (bearer.kind === "missing" && sessionId !== undefined) {
      requireConsoleRequest(c);
      const token = sessionToken(tokens, sessions, sessionId);
      if (token) {
        c.set("apiToken", token);
        return next();
      }
      throw new ApiError(401, "unauthorized", "the console session has expired, was signed out or its token was revoked: sign in again");
    }
    throw unauthorized(bearer);
  };
}

/** The token behind a live session, if it still stands (not revoked, not expired). */
export function sessionToken(tokens: TokenStore, sessions: SessionStore, sessionId: string, now = Date.now()): TokenRecord | null {
  const tokenId = sessions.tokenOf(sessionId);
  const token = tokenId === null ? undefined : tokens.get(tokenId);
  if (!token || (token.expiresAt !== null && token.expiresAt <= now)) return null;
  return token;
}

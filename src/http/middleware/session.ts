import crypto from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { sha256, type TokenRegistry } from "../../cluster/tokens.js";
import type { SessionRecords, TokenRecord } from "../../store/contract.js";
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
/** Bounds the table: past it, the sessions closest to expiry make room. */
const MAX_SESSIONS = 1000;

/**
 * The server-side session table, in the database: a session is valid on every gateway that shares
 * it, and signing out ends it on all of them at once. Keyed by the id's SHA-256, so neither a
 * lookup's timing nor the table itself gives away a usable id.
 */
export class SessionStore {
  constructor(
    private readonly records: SessionRecords,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new session for the token `tokenId`; the session acts with that token's scopes for as long as the token stands. */
  async create(tokenId: string): Promise<string> {
    await this.records.prune(this.now(), MAX_SESSIONS - 1);
    const id = crypto.randomBytes(32).toString("base64url");
    await this.records.create(this.key(id), tokenId, this.now() + SESSION_TTL_MS);
    return id;
  }

  /** The token a live session signed in with, or null. */
  tokenOf(id: string): Promise<string | null> {
    return this.records.tokenOf(this.key(id), this.now());
  }

  delete(id: string): Promise<void> {
    return this.records.delete(this.key(id));
  }

  private key(id: string): string {
    return sha256(id).toString("hex");
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
export function requireTokenOrSession(tokens: TokenRegistry, sessions: SessionStore): MiddlewareHandler {
  return async (c, next) => {
    const bearer = checkBearer(c.req.header("authorization"), tokens);
    if (bearer.kind === "ok") {
      c.set("apiToken", bearer.token);
      return next();
    }
    const sessionId = getCookie(c, SESSION_COOKIE);
    if (bearer.kind === "missing" && sessionId !== undefined) {
      requireConsoleRequest(c);
      const token = await sessionToken(tokens, sessions, sessionId);
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
export async function sessionToken(
  tokens: TokenRegistry,
  sessions: SessionStore,
  sessionId: string,
  now = Date.now(),
): Promise<TokenRecord | null> {
  const tokenId = await sessions.tokenOf(sessionId);
  const token = tokenId === null ? undefined : tokens.get(tokenId);
  if (!token || (token.expiresAt !== null && token.expiresAt <= now)) return null;
  return token;
}

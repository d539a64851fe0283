import crypto from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { checkBearer, sha256, unauthorized } from "./auth.js";
import { ApiError } from "../errors.js";

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
  /** Keyed by the id's SHA-256, so a lookup's timing says nothing about stored ids. */
  private readonly expiries = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  create(): string {
    this.prune();
    if (this.expiries.size >= MAX_SESSIONS) {
      const oldest = this.expiries.keys().next().value;
      if (oldest !== undefined) this.expiries.delete(oldest);
    }
    const id = crypto.randomBytes(32).toString("base64url");
    this.expiries.set(this.key(id), this.now() + SESSION_TTL_MS);
    return id;
  }

  valid(id: string): boolean {
    const key = this.key(id);
    const expiry = this.expiries.get(key);
    if (expiry === undefined) return false;
    if (expiry <= this.now()) {
      this.expiries.delete(key);
      return false;
    }
    return true;
  }

  delete(id: string): void {
    this.expiries.delete(this.key(id));
  }

  private key(id: string): string {
    return sha256(id).toString("hex");
  }

  /** Insertion order is expiry order (every session lives as long), so expired ones are at the front. */
  private prune(): void {
    const now = this.now();
    for (const [key, expiry] of this.expiries) {
      if (expiry > now) break;
      this.expiries.delete(key);
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
export function requireTokenOrSession(tokenHash: Buffer, sessions: SessionStore): MiddlewareHandler {
  return async (c, next) => {
    const bearer = checkBearer(c.req.header("authorization"), tokenHash);
    if (bearer === "ok") return next();
    const sessionId = getCookie(c, SESSION_COOKIE);
    if (bearer === "missing" && sessionId !== undefined) {
      requireConsoleRequest(c);
      if (sessions.valid(sessionId)) return next();
      throw new ApiError(401, "unauthorized", "the console session has expired or was signed out: sign in again");
    }
    throw unauthorized(bearer);
  };
}


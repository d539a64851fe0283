import crypto from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { type Authentication, ROOT_TOKEN_ID, sha256, type TokenRegistry } from "../../cluster/tokens.js";
import { grants, type RouteScope } from "../../core/scopes.js";
import type { TokenRecord } from "../../store/contract.js";
import { ApiError } from "../errors.js";

declare module "hono" {
  interface ContextVariableMap {
    /** The token of an authenticated /api request. */
    apiToken: TokenRecord;
  }
}

export interface ProvisionedToken {
  /** The admin token, only when it was generated just now (to be printed once); otherwise null. */
  generated: string | null;
}

/**
 * The first-start admin token. GATEWAY_TOKEN wins when set (its hash replaces the stored one).
 * Otherwise the stored one is kept, and on the very first start a random token is generated
 * and only its hash stored.
 */
export async function provisionToken(tokens: TokenRegistry, envToken: string | undefined): Promise<ProvisionedToken> {
  if (envToken !== undefined) {
    await tokens.setRoot(sha256(envToken), "GATEWAY_TOKEN");
    return { generated: null };
  }
  if (tokens.get(ROOT_TOKEN_ID)) return { generated: null };
  const token = crypto.randomBytes(32).toString("base64url");
  await tokens.setRoot(sha256(token), "generated at first start");
  return { generated: token };
}

export type TokenCheck = Authentication | { kind: "missing" };

/** Reads `Authorization: Bearer <token>` and authenticates the token. */
export function checkBearer(authorization: string | undefined, tokens: TokenRegistry): TokenCheck {
  const match = authorization?.match(/^Bearer[ \t]+(\S+)[ \t]*$/i);
  if (!match?.[1]) return { kind: "missing" };
  return tokens.authenticate(match[1]);
}

export function unauthorized(check: Exclude<TokenCheck, { kind: "ok" }>): ApiError {
  if (check.kind === "missing") {
    return new ApiError(401, "unauthorized", "missing token: send Authorization: Bearer <token>", {
      "WWW-Authenticate": 'Bearer realm="fngw"',
    });
  }
  const message = check.kind === "expired" ? "the token has expired" : "invalid token";
  return new ApiError(401, "unauthorized", message, {
    "WWW-Authenticate": `Bearer realm="fngw", error="invalid_token", error_description="${message}"`,
  });
}

/** A token without the scope a route needs. */
export const forbidden = (message: string) => new ApiError(403, "forbidden", message);

/** A route's scope check (runs after the token or session guard, before the request is validated). */
export function requireScope(scope: RouteScope): MiddlewareHandler {
  return async (c, next) => {
    const token = c.get("apiToken");
    if (!grants(token.scopes, scope)) {
      const also = scope === "admin" ? "" : " (or admin)";
      throw forbidden(`this needs a token with the '${scope}' scope${also}; this token has ${token.scopes.join(", ")}`);
    }
    await next();
  };
}

import { createRoute, OpenAPIHono, type RouteHandler, z } from "@hono/zod-openapi";
import { SCOPE_PATTERN } from "../../core/scopes.js";
import { requiredField } from "../../core/settings.js";
import type { TokenRecord, TokenStore } from "../../db/tokens.js";
import { ApiError, ErrorSchema, notFoundError, validationHook } from "../errors.js";
import { isoTime, json, operation, requires } from "../schemas.js";

// /api/tokens (admin only): create a scoped token (shown once), list tokens (never a secret), revoke one.

export interface TokensDeps {
  tokens: TokenStore;
  now?: () => number;
}

export function tokensApi(deps: TokensDeps) {
  return new OpenAPIHono({ defaultHook: validationHook })
    .openapi(routes.create, createToken(deps))
    .openapi(routes.list, listTokens(deps))
    .openapi(routes.remove, deleteToken(deps));
}

const Scope = z
  .string()
  .regex(SCOPE_PATTERN, "must be admin, deploy, logs:read, metrics:read, invoke:<function name> or invoke:<prefix>*")
  .openapi({ example: "invoke:billing-*" });

const CreateToken = z
  .strictObject({
    name: z
      .string(requiredField)
      .trim()
      .min(1, "must not be empty")
      .max(100)
      .openapi({ description: "What the token is for", example: "ci deploys" }),
    scopes: z
      .array(Scope, requiredField)
      .min(1, "give at least one scope")
      .max(64)
      .refine((scopes) => new Set(scopes).size === scopes.length, { message: "must not repeat a scope" }),
    expires_at: z.iso
      .datetime({ offset: true, error: "must be an ISO 8601 date-time with a zone, e.g. 2031-01-31T12:00:00Z" })
      .optional()
      .openapi({ description: "When the token stops working; none: never" }),
  })
  .openapi("CreateToken");

const TokenSchema = z
  .object({
    id: z.string().openapi({ example: "tok_3f2a9c0d1e4b5a67" }),
    name: z.string(),
    scopes: z.array(z.string()),
    created_at: z.string(),
    expires_at: z.string().nullable(),
    last_used_at: z.string().nullable().openapi({ description: "To the minute" }),
  })
  .openapi("Token");
const CreatedTokenSchema = TokenSchema.extend({
  token: z.string().openapi({ description: "The token itself: shown this once, only its SHA-256 is stored" }),
}).openapi("CreatedToken");
const IdParam = z.object({
  id: z
    .string()
    .max(64)
    .openapi({ param: { name: "id", in: "path" }, example: "tok_3f2a9c0d1e4b5a67" }),
});

const errors = {
  400: json(ErrorSchema, "Invalid request"),
  401: json(ErrorSchema, "Missing or wrong token"),
  403: json(ErrorSchema, "The token is not admin"),
};

const routes = {
  create: createRoute({
    method: "post",
    path: "/",
    ...operation("tokens", "createToken"),
    summary: "Create a scoped token; the answer holds the token, shown this once",
    ...requires("admin"),
    request: { body: { content: { "application/json": { schema: CreateToken } }, required: true } },
    responses: { 201: json(CreatedTokenSchema, "The token, with its secret"), ...errors },
  }),
  list: createRoute({
    method: "get",
    path: "/",
    ...operation("tokens", "listTokens"),
    summary: "Every token (no secrets), oldest first",
    ...requires("admin"),
    responses: { 200: json(z.object({ items: z.array(TokenSchema) }), "Every token"), ...errors },
  }),
  remove: createRoute({
    method: "delete",
    path: "/{id}",
    ...operation("tokens", "deleteToken"),
    summary: "Revoke a token (effective at once)",
    ...requires("admin"),
    request: { params: IdParam },
    responses: { 204: { description: "Revoked" }, ...errors, 404: json(ErrorSchema, "No such token") },
  }),
};

const tokenJson = (t: TokenRecord) => ({
  id: t.id,
  name: t.name,
  scopes: t.scopes,
  created_at: isoTime(t.createdAt),
  expires_at: t.expiresAt === null ? null : isoTime(t.expiresAt),
  last_used_at: t.lastUsedAt === null ? null : isoTime(t.lastUsedAt),
});

function createToken({ tokens, now = Date.now }: TokensDeps): RouteHandler<typeof routes.create> {
  return (c) => {
    const { name, scopes, expires_at } = c.req.valid("json");
    const expiresAt = expires_at === undefined ? null : Date.parse(expires_at);
    if (expiresAt !== null && expiresAt <= now()) throw new ApiError(400, "invalid_request", "expires_at: must be in the future");
    const { record, token } = tokens.create(name, scopes, expiresAt);
    c.header("Cache-Control", "no-store");
    return c.json({ ...tokenJson(record), token }, 201);
  };
}

function listTokens({ tokens }: TokensDeps): RouteHandler<typeof routes.list> {
  return (c) => c.json({ items: tokens.list().map(tokenJson) }, 200);
}

function deleteToken({ tokens }: TokensDeps): RouteHandler<typeof routes.remove> {
  return (c) => {
    const { id } = c.req.valid("param");
    if (!tokens.delete(id)) throw notFoundError(`no token with id '${id}'`);
    return c.body(null, 204);
  };
}

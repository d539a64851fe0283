import { OpenAPIHono, z } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { TokenStore } from "../../db/tokens.js";
import { ApiError, describeZodError, ErrorSchema } from "../errors.js";
import { requireConsoleRequest, SESSION_COOKIE, SESSION_TTL_MS, type SessionStore, sessionToken } from "../middleware/session.js";
import { json, operation } from "../schemas.js";

const SignIn = z.strictObject({ token: z.string().min(1).max(1024) }).openapi("SignIn");
const SessionSchema = z
  .object({
    signed_in: z.boolean(),
    scopes: z.array(z.string()).openapi({ description: "The scopes of the token the session signed in with; [] when signed out" }),
  })
  .openapi("Session");

const CONSOLE_ONLY =
  "Only with the header `X-Fngw-Console: 1` (a page of another origin cannot send it without a CORS preflight, which the gateway never grants); " +
  "a state-changing request must also carry no `Origin`, or the gateway's own.";
const consoleHeader = z.object({ "X-Fngw-Console": z.literal("1").openapi({ param: { name: "X-Fngw-Console", in: "header" } }) });

/** Documented by hand: the handlers below read their body themselves (a 4 KiB cap, before the API's guard). */
function documentSession(app: OpenAPIHono): void {
  const refused = {
    401: json(ErrorSchema, "Without the console header, or (signing in) a wrong or expired token"),
    403: json(ErrorSchema, "A cross-origin request"),
  };
  app.openAPIRegistry.registerPath({
    method: "post",
    path: "/",
    summary: "Sign the web console in: the token is exchanged for an HttpOnly, SameSite=Strict session cookie",
    description: `${CONSOLE_ONLY} The session acts with the token's scopes for 12 h, or until the token is revoked or expires.`,
    ...operation("session", "signIn"),
    security: [],
    request: { headers: consoleHeader, body: { content: { "application/json": { schema: SignIn } }, required: true } },
    responses: {
      204: { description: `Signed in; the answer sets the ${SESSION_COOKIE} cookie` },
      400: json(ErrorSchema, "Not a sign-in body"),
      ...refused,
      413: json(ErrorSchema, "A body over 4 KiB"),
      415: json(ErrorSchema, "Not JSON"),
    },
  });
  app.openAPIRegistry.registerPath({
    method: "get",
    path: "/",
    summary: "Whether the browser's session cookie (which the console's script cannot read) is a live session, and its scopes",
    description: CONSOLE_ONLY,
    ...operation("session", "getSession"),
    security: [],
    request: { headers: consoleHeader },
    responses: { 200: json(SessionSchema, "The session"), ...refused },
  });
  app.openAPIRegistry.registerPath({
    method: "delete",
    path: "/",
    summary: "Sign out: the session ends and its cookie is cleared",
    description: CONSOLE_ONLY,
    ...operation("session", "signOut"),
    security: [],
    request: { headers: consoleHeader },
    responses: { 204: { description: "Signed out" }, ...refused },
  });
}

/** POST /api/session (sign in with the token), GET (signed in?), DELETE (sign out); mounted at /api/session before the API's guard. */
export function sessionApi(tokens: TokenStore, sessions: SessionStore) {
  const app = new OpenAPIHono();
  documentSession(app);
  const tooLarge = () => {
    throw new ApiError(413, "payload_too_large", "the sign-in body is at most 4 KiB");
  };

  app.post("/", bodyLimit({ maxSize: 4096, onError: tooLarge }), async (c) => {
    requireConsoleRequest(c);
    if (!c.req.header("content-type")?.toLowerCase().startsWith("application/json")) {
      throw new ApiError(415, "unsupported_media_type", "send the body as JSON with Content-Type: application/json");
    }
    let raw: unknown;
    try {
      raw = await c.req.json();
    } catch {
      throw new ApiError(400, "invalid_json", "the request body is not valid JSON");
    }
    const parsed = SignIn.safeParse(raw);
    if (!parsed.success) throw new ApiError(400, "invalid_request", describeZodError(parsed.error));
    const signedIn = tokens.authenticate(parsed.data.token);
    if (signedIn.kind !== "ok")
      throw new ApiError(401, "unauthorized", signedIn.kind === "expired" ? "the token has expired" : "invalid token");
    setCookie(c, SESSION_COOKIE, sessions.create(signedIn.token.id), {
      httpOnly: true,
      sameSite: "Strict",
      path: "/",
      maxAge: SESSION_TTL_MS / 1000,
      secure: new URL(c.req.url).protocol === "https:",
    });
    return c.body(null, 204);
  });

  // Whether the browser's cookie (which the console's script cannot see) is a live session.
  app.get("/", (c) => {
    requireConsoleRequest(c);
    const sessionId = getCookie(c, SESSION_COOKIE);
    const token = sessionId === undefined ? null : sessionToken(tokens, sessions, sessionId);
    return c.json({ signed_in: token !== null, scopes: token?.scopes ?? [] }, 200);
  });

  app.delete("/", (c) => {
    requireConsoleRequest(c);
    const sessionId = getCookie(c, SESSION_COOKIE);
    if (sessionId !== undefined) sessions.delete(sessionId);
    deleteCookie(c, SESSION_COOKIE, { path: "/", httpOnly: true, sameSite: "Strict" });
    return c.body(null, 204);
  });

  return app;
}

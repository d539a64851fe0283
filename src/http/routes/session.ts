import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { z } from "zod";
import type { TokenRegistry } from "../../cluster/tokens.js";
import { ApiError, describeZodError } from "../errors.js";
import { requireConsoleRequest, SESSION_COOKIE, SESSION_TTL_MS, type SessionStore, sessionToken } from "../middleware/session.js";

const SignIn = z.strictObject({ token: z.string().min(1).max(1024) });

/** POST /api/session (sign in with the token), GET (signed in?), DELETE (sign out); mounted at /api/session before the API's guard. */
export function sessionApi(tokens: TokenRegistry, sessions: SessionStore) {
  const app = new Hono();
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
    setCookie(c, SESSION_COOKIE, await sessions.create(signedIn.token.id), {
      httpOnly: true,
      sameSite: "Strict",
      path: "/",
      maxAge: SESSION_TTL_MS / 1000,
      secure: new URL(c.req.url).protocol === "https:",
    });
    return c.body(null, 204);
  });

  // Whether the browser's cookie (which the console's script cannot see) is a live session.
  app.get("/", async (c) => {
    requireConsoleRequest(c);
    const sessionId = getCookie(c, SESSION_COOKIE);
    const token = sessionId === undefined ? null : await sessionToken(tokens, sessions, sessionId);
    return c.json({ signed_in: token !== null, scopes: token?.scopes ?? [] }, 200);
  });

  app.delete("/", async (c) => {
    requireConsoleRequest(c);
    const sessionId = getCookie(c, SESSION_COOKIE);
    if (sessionId !== undefined) await sessions.delete(sessionId);
    deleteCookie(c, SESSION_COOKIE, { path: "/", httpOnly: true, sameSite: "Strict" });
    return c.body(null, 204);
  });

  return app;
}

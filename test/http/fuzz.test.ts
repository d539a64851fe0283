// Property-based: random requests against the whole API, and random function answers, served
// through the Node adapter (the scripted runner stands in for the sandbox, which is not the point
// here). Whatever comes in, the answer is as specified: never a 5xx the function did not ask for.
import { validateHeaderName, validateHeaderValue } from "node:http";
import fc from "fast-check";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DROPPED_RESPONSE_HEADERS } from "../../src/http/invoke/exchange.js";
import type { Json } from "../json.js";
import { type Gateway, listen, makeGateway, okResult, register, TOKEN } from "./harness.js";

const RUNS = Number(process.env.FUZZ_RUNS ?? 250);

let gw: Gateway;
let served: Awaited<ReturnType<typeof listen>>;
const agent = new Agent({ connections: 4 });
beforeAll(async () => {
  gw = makeGateway({ MAX_BODY_BYTES: "4096", BODY_READ_TIMEOUT_MS: "2000" });
  await register(gw, { name: "open", public: true });
  await register(gw, { name: "private" });
  served = await listen(gw);
});
afterAll(async () => {
  await agent.close();
  await served.close();
  gw.close();
});

const logRow = (id: string) => gw.database.sqlite.prepare("select * from invocations where id = ?").get(id) as Json | undefined;

const isValidHeader = (name: string, value: string) => {
  try {
    validateHeaderName(name);
    validateHeaderValue(name, value);
    return true;
  } catch {
    return false;
  }
};

/** Header names the client itself owns (framing, connection): undici refuses to send them as given. */
const CLIENT_OWNED = new Set([
  "connection",
  "content-length",
  "transfer-encoding",
  "keep-alive",
  "upgrade",
  "host",
  "expect",
  "te",
  "trailer",
]);

const text = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom("", "..", "%", "%zz", "%00", "a@1", "open", "open@1", "open@99", "private", "missing", "__proto__", "ünï", "😀"),
);
const segment = text.map((t) => encodeURIComponent(t));
const path = fc
  .tuple(
    fc.constantFrom(
      "/api/functions",
      "/api/invocations",
      "/api/functions/open",
      "/api/functions/open/versions",
      "/api/functions/open/stats",
      "/fn",
      "/healthz",
      "/openapi.json",
      "/api",
      "",
    ),
    fc.array(segment, { maxLength: 3 }),
    fc.option(fc.array(fc.tuple(segment, segment), { maxLength: 4 })),
  )
  .map(([prefix, rest, query]) => {
    const base = [prefix, ...rest].join("/") || "/";
    return query ? `${base}?${query.map(([k, v]) => `${k}=${v}`).join("&")}` : base;
  });
const headerValue = fc.oneof(
  fc.string({ unit: "grapheme-ascii", maxLength: 60 }),
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.constant("x".repeat(20_000)), // past Node's header limit: 431
);
const headers = fc
  .dictionary(fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/), headerValue, { maxKeys: 5 })
  .map((h) => Object.fromEntries(Object.entries(h).filter(([name, value]) => !CLIENT_OWNED.has(name) && isValidHeader(name, value))));
const body = fc.option(
  fc.oneof(
    fc.uint8Array({ maxLength: 512 }).map((bytes) => Buffer.from(bytes)),
    fc.json().map((json) => Buffer.from(json)),
    fc
      .record({ name: text, runtime: fc.constantFrom("python", "node", "ruby"), code: text, public: fc.boolean() })
      .map((r) => Buffer.from(JSON.stringify(r))),
    fc.constant(Buffer.alloc(300_000, 0x61)), // over every cap
  ),
);
const method = fc.oneof(
  fc.constantFrom("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"),
  fc.stringMatching(/^[A-Z]{1,8}$/),
);

describe("random requests against /api/*, /fn/*, /healthz", () => {
  it("answer a 2xx-4xx, errors as JSON, and a /fn answer carries an id exactly when it has a log row, which matches it", async () => {
    await fc.assert(
      fc.asyncProperty(
        method,
        path,
        headers,
        body,
        fc.constantFrom("none", "valid", "invalid"),
        async (verb, target, extra, payload, token) => {
          if (verb === "CONNECT") return;
          const sent: Record<string, string> = { ...extra };
          if (token !== "none") sent.authorization = `Bearer ${token === "valid" ? TOKEN : "not-the-token-0000"}`;
          const withBody = payload !== null && verb !== "GET" && verb !== "HEAD";
          const res = await request(`${served.url}${target}`, {
            method: verb,
            headers: sent,
            body: withBody ? payload : undefined,
            dispatcher: agent,
          });
          const answer = await res.body.text();
          const context = `${verb} ${target} → ${res.statusCode} ${answer.slice(0, 300)}`;
          expect(res.statusCode, context).toBeGreaterThanOrEqual(200);
          expect(res.statusCode, context).toBeLessThan(500);
          let code: unknown = null;
          if (res.statusCode >= 400 && verb !== "HEAD") {
            expect(String(res.headers["content-type"]), context).toContain("application/json");
            const parsed = JSON.parse(answer) as Json;
            code = parsed.error?.code;
            expect(typeof code, context).toBe("string");
            expect(typeof parsed.error?.message, context).toBe("string");
          }
          // Node's parser refuses unknown methods and oversized headers before the app: no id there.
          const reachedApp = code !== "invalid_http" && code !== "headers_too_large" && res.statusCode !== 431;
          // Dot segments are resolved first: /fn/.. is /, not a function.
          const routedToFn = new URL(`${served.url}${target}`).pathname.startsWith("/fn/");
          const id = res.headers["x-invocation-id"];
          if (routedToFn && reachedApp && id !== undefined) {
            // An id is only on an answer that has its row.
            expect(logRow(id as string)?.http_status, context).toBe(res.statusCode);
          } else if (routedToFn && reachedApp) {
            // Refused before the log: nothing ran, so there is no id to look up.
            expect([401, 403, 404, 405], context).toContain(res.statusCode);
          } else {
            expect(id, context).toBeUndefined();
          }
        },
      ),
      { numRuns: RUNS },
    );
  }, 120_000);
});

describe("random function answers", () => {
  const reserved = DROPPED_RESPONSE_HEADERS;
  const anyHeader = fc.tuple(
    fc.oneof(fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/), fc.string({ unit: "binary", minLength: 1, maxLength: 12 })),
    fc.oneof(
      fc.string({ unit: "binary", maxLength: 30 }),
      fc.string({ unit: "grapheme-ascii", maxLength: 30 }),
      fc.constantFrom("\x01", "\x7f", "a\r\nb", " spaced ", "caf\xe9"),
    ),
  );

  // A function of its own: the random requests above may have deleted or changed `open` with the valid token.
  beforeAll(async () => {
    await register(gw, { name: "answers", public: true });
  });

  it("never break the gateway: the status goes out with its id, kept headers are Node-valid, the row matches", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 200, max: 599 }),
        fc.array(anyHeader, { maxLength: 8 }),
        fc.uint8Array({ maxLength: 256 }),
        async (status, answerHeaders, bytes) => {
          gw.runner.script = () => okResult({ status, headers: answerHeaders, body: Buffer.from(bytes) });
          const res = await request(`${served.url}/fn/answers`, { dispatcher: agent });
          await res.body.arrayBuffer();
          const context = `${status} ${JSON.stringify(answerHeaders)}`;
          expect(res.statusCode, context).toBe(status);
          const id = res.headers["x-invocation-id"];
          expect(typeof id, context).toBe("string");
          const row = logRow(id as string)!;
          expect(row, context).toMatchObject({ status: "ok", http_status: status });
          for (const [name, value] of answerHeaders) {
            const keep = !reserved.has(name.toLowerCase()) && isValidHeader(name, value);
            if (keep) expect(res.headers[name.toLowerCase()], `${context}: ${name} kept`).toBeDefined();
            else if (!reserved.has(name.toLowerCase()))
              expect(row.stderr, `${context}: ${name} reported`).toContain("dropped response header");
          }
        },
      ),
      { numRuns: RUNS },
    );
  }, 120_000);
});

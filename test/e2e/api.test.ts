// End to end: the token, stats, the OpenAPI document, the docs page and health.
// The real gateway (src/main.ts) in a child process, real sandboxed Python and Node, spoken to only
// over HTTP. The README's "Writing functions" and "HTTP API" are the spec.
import http from "node:http";
import { beforeAll, describe, expect, it } from "vitest";
import { type Json, useGateway } from "./harness.js";

const TOKEN = "e2e-token-4f1c9a7d2b8e6035";
const MiB = 1024 * 1024;

const gateway = useGateway(TOKEN, { MAX_BODY_BYTES: String(MiB) });
const { call, python } = gateway;

describe("auth", () => {
  beforeAll(async () => {
    await python("private", `def handler(request):\n    return "private"\n`);
    await python("open", `def handler(request):\n    return "open"\n`, { public: true });
  });

  it.each([
    ["no token", null],
    ["a wrong token", "not-the-token-at-all"],
  ])("/api with %s answers 401 with a JSON error", async (_what, token) => {
    for (const [method, pathname] of [
      ["GET", "/api/functions"],
      ["GET", "/api/invocations"],
      ["DELETE", "/api/functions/private"],
    ]) {
      const res = await call(pathname!, { method: method!, token });
      expect(res.status, `${method} ${pathname}`).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect(((await res.json()) as Json).error.code).toBe("unauthorized");
    }
    expect((await call("/api/functions/private")).status).toBe(200); // not deleted
  });

  it("a non-public function at /fn answers 401 without the token or with a wrong one, and runs with it", async () => {
    const none = await call("/fn/private", { token: null });
    expect(none.status).toBe(401);
    expect(none.headers.get("x-invocation-id")).toBeNull(); // nothing ran or was logged: no id to look up
    expect((await call("/fn/private", { token: "not-the-token-at-all" })).status).toBe(401);
    const ok = await call("/fn/private");
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("private");
  });

  it("a `public: true` function runs without a token", async () => {
    const res = await call("/fn/open", { token: null });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("open");
  });
});

describe("stats", () => {
  it("GET /api/functions/:name/stats?window=1h counts the invocations made, with p50/p95/p99", async () => {
    await python(
      "counted",
      `def handler(request):\n    if "fail" in request.query:\n        raise RuntimeError("asked to")\n    return "ok"\n`,
    );
    for (let i = 0; i < 5; i++) expect((await call("/fn/counted")).status).toBe(200);
    expect((await call("/fn/counted?fail=1")).status).toBe(500);
    const res = await call("/api/functions/counted/stats?window=1h");
    expect(res.status).toBe(200);
    const stats = (await res.json()) as Json;
    expect(stats).toMatchObject({ function: "counted", window: "1h", count: 6, errors: 1, timeouts: 0 });
    expect(stats.by_status).toMatchObject({ ok: 5, error: 1 });
    const { p50, p95, p99, max } = stats.duration_ms;
    expect(p50).toBeGreaterThan(0);
    expect(p50).toBeLessThanOrEqual(p95);
    expect(p95).toBeLessThanOrEqual(p99);
    expect(p99).toBeLessThanOrEqual(max);
    expect(Date.parse(stats.until) - Date.parse(stats.since)).toBe(3600_000);
  });

  it("answers 400 to a window it cannot read and 404 for an unknown function", async () => {
    expect((await call("/api/functions/counted/stats?window=forever")).status).toBe(400);
    expect((await call("/api/functions/never-registered/stats?window=1h")).status).toBe(404);
  });
});

describe("discoverability and health", () => {
  it("/openapi.json is an OpenAPI 3 document listing every route, each $ref resolving", async () => {
    const res = await call("/openapi.json", { token: null });
    expect(res.status).toBe(200);
    const doc = (await res.json()) as Json;
    expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    const operations = Object.entries(doc.paths as Json).flatMap(([p, item]) =>
      Object.keys(item as Json)
        .filter((k) => ["get", "put", "post", "delete", "patch"].includes(k))
        .map((m) => `${m.toUpperCase()} ${p}`),
    );
    expect(operations).toEqual(
      expect.arrayContaining([
        "POST /api/functions",
        "GET /api/functions",
        "GET /api/functions/{name}",
        "PUT /api/functions/{name}",
        "DELETE /api/functions/{name}",
        "GET /api/functions/{name}/versions",
        "GET /api/functions/{name}/stats",
        "GET /api/invocations",
        "GET /api/invocations/{id}",
        "GET /healthz",
        "GET /fn/{target}",
        "POST /fn/{target}",
      ]),
    );
    for (const [p, item] of Object.entries(doc.paths as Json)) {
      for (const [method, op] of Object.entries(item as Json)) {
        expect(Object.keys((op as Json).responses ?? {}), `${method} ${p} has responses`).not.toHaveLength(0);
        // Every templated path segment is declared as a path parameter.
        for (const [, param] of p.matchAll(/\{(\w+)\}/g)) {
          expect((op as Json).parameters ?? [], `${method} ${p}`).toContainEqual(expect.objectContaining({ name: param, in: "path" }));
        }
      }
    }
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      const target = ref.split("/").reduce<Json | undefined>((node, key) => node?.[key], doc);
      expect(target, `$ref #/${ref}`).toBeDefined();
    }
    expect(doc.components.securitySchemes).toMatchObject({ bearer: { type: "http", scheme: "bearer" } });
  });

  it("/docs serves an HTML page whose own script points at the document", async () => {
    const res = await call("/docs", { token: null });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toMatch(/<html/i);
    const scripts = [...html.matchAll(/<script[^>]*src="([^"]+)"/g)].map((m) => m[1]!);
    const sources = await Promise.all(
      scripts.filter((src) => src.startsWith("/")).map(async (src) => (await call(src, { token: null })).text()),
    );
    expect(sources.some((source) => source.includes("/openapi.json"))).toBe(true);
  });

  it("/healthz answers without a token: ok, the sandbox ready, with its cgroup mode", async () => {
    const res = await call("/healthz", { token: null });
    expect(res.status).toBe(200);
    const health = (await res.json()) as Json;
    expect(health.ok).toBe(true);
    expect(health.sandbox).toMatchObject({ ready: true, slots: expect.any(Number), busy: 0, firewall: true });
    expect(["v1", "v2"]).toContain(health.sandbox.cgroups);
    // The total is the sum of the per-runtime counts (Python's standbys are the fork-server's waiting children).
    const byRuntime = health.sandbox.standby_by_runtime as Record<string, number>;
    expect(health.sandbox.standby).toBe(Object.values(byRuntime).reduce((sum, n) => sum + n, 0));
  });

  it("TRACE on a function answers 405 in the error shape (fetch cannot send it: plain node:http)", async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        `${gateway.server.url}/fn/anything`,
        { method: "TRACE", headers: { authorization: `Bearer ${TOKEN}` } },
        (res) => {
          let body = "";
          res.on("data", (chunk: Buffer) => (body += chunk));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(405);
    expect(JSON.parse(body).error.code).toBe("method_not_allowed");
  });

  it("an unknown route answers 404 in the error shape", async () => {
    const res = await call("/nowhere");
    expect(res.status).toBe(404);
    expect(((await res.json()) as Json).error.code).toBe("not_found");
  });
});

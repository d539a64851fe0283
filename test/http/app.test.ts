import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256, TokenRegistry } from "../../src/cluster/tokens.js";
import { Admission } from "../../src/http/admission.js";
import { checkBearer, provisionToken } from "../../src/http/middleware/auth.js";
import type { Json } from "../json.js";
import { type Gateway, makeGateway, register, runScenarios, type Scenario, TOKEN } from "./harness.js";

let gw: Gateway;
beforeAll(async () => {
  gw = await makeGateway();
  await register(gw, { name: "hello" });
});
afterAll(() => gw.close());

describe("GET /healthz", () => {
  it("is public and reports the sandbox's readiness", async () => {
    const res = await gw.call("/healthz", { token: null });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      ok: true,
      sandbox: { ready: true, slots: 4 },
      database: { ready: true, database: "reachable" },
    });
  });

  it("answers 503 while the sandbox is not ready", async () => {
    gw.health.value = { ready: false };
    const res = await gw.call("/healthz", { token: null });
    gw.health.value = { ready: true };
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ ok: false, sandbox: { ready: false }, database: { ready: true } });
  });
});

describe("the OpenAPI document and the docs page", () => {
  it("serves /openapi.json without the token, generated from the route schemas", async () => {
    const res = await gw.call("/openapi.json", { token: null });
    expect(res.status).toBe(200);
    const doc = (await res.json()) as Json;
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/api/functions",
        "/api/functions/{name}",
        "/api/functions/{name}/versions",
        "/api/functions/{name}/versions/{version}",
        "/api/functions/{name}/stats",
        "/api/invocations",
        "/api/invocations/{id}",
        "/healthz",
        "/fn/{target}",
      ]),
    );
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    const create = doc.components.schemas.CreateFunction;
    expect(create.required).toEqual(expect.arrayContaining(["name", "runtime", "code"]));
    expect(create.properties.runtime.enum).toEqual(["python", "node", "typescript"]);
    expect(create.properties.timeout_ms.maximum).toBe(gw.config.MAX_TIMEOUT_MS);
    expect(doc.paths["/healthz"].get.security).toEqual([]);
  });

  it("serves the docs page at /docs without the token, every asset from the gateway under a 'self'-only CSP", async () => {
    const res = await gw.call("/docs", { token: null });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/html/);
    expect(res.headers.get("content-security-policy")).toMatch(/^default-src 'self'; script-src 'self'; style-src 'self';/);
    const page = await res.text();
    const assets = Array.from(page.matchAll(/(?:src|href)="([^"]+)"/g), (m) => m[1]!);
    expect(assets).toEqual(["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/init.js"]);
    for (const asset of assets) {
      const served = await gw.call(asset, { token: null });
      expect(served.status, asset).toBe(200);
      expect(served.headers.get("content-type"), asset).toMatch(asset.endsWith(".css") ? /^text\/css/ : /^text\/javascript/);
    }
    const init = await (await gw.call("/docs/init.js", { token: null })).text();
    expect(init).toContain('url: "/openapi.json"');
    expect(init).toContain("validatorUrl: null");
  });

  it("serves nothing else of swagger-ui-dist", async () => {
    for (const name of ["index.html", "swagger-initializer.js", "package.json", "..%2Fpackage.json"]) {
      expect((await gw.call(`/docs/${name}`, { token: null })).status, name).toBe(404);
    }
  });
});

describe("the token on /api", () => {
  const routes: [string, string][] = [
    ["GET", "/api/functions"],
    ["POST", "/api/functions"],
    ["GET", "/api/functions/hello"],
    ["PUT", "/api/functions/hello"],
    ["DELETE", "/api/functions/hello"],
    ["GET", "/api/functions/hello/versions"],
    ["GET", "/api/functions/hello/versions/1"],
    ["GET", "/api/functions/hello/stats"],
    ["GET", "/api/invocations"],
    ["GET", "/api/invocations/some-id"],
  ];

  runScenarios(
    () => gw,
    [
      ...routes.map(
        ([method, url]): Scenario => ({
          name: `${method} ${url} answers 401 with WWW-Authenticate without it`,
          method,
          url,
          token: null,
          expectedStatus: 401,
          expectedError: "unauthorized",
          expectedHeaders: { "www-authenticate": 'Bearer realm="fngw"' },
        }),
      ),
      ...routes.map(
        ([method, url]): Scenario => ({
          name: `${method} ${url} answers 401 with a wrong token`,
          method,
          url,
          token: `${TOKEN}x`,
          expectedStatus: 401,
          expectedError: "unauthorized",
          expectedHeaders: { "www-authenticate": /error="invalid_token"/ },
        }),
      ),
      ...[`Basic ${TOKEN}`, TOKEN, "Bearer", `Bearer ${TOKEN} extra`].map(
        (authorization): Scenario => ({
          name: `refuses the malformed or foreign Authorization ${JSON.stringify(authorization.replace(TOKEN, "<token>"))}`,
          url: "/api/functions",
          headers: { authorization },
          expectedStatus: 401,
          expectedError: "unauthorized",
        }),
      ),
      {
        name: "accepts the scheme name in any case",
        url: "/api/functions",
        headers: { authorization: `bearer ${TOKEN}` },
        expectedStatus: 200,
      },
    ],
  );

  it("left the function alone after all those refused requests", async () => {
    expect((await gw.call("/api/functions/hello")).status).toBe(200);
  });
});

describe("provisionToken", () => {
  // A registry of its own over the same database, as a gateway starting next would have.
  const fresh = async () => TokenRegistry.load(gw.store);

  it("generates an admin token at the first start and stores only its SHA-256", async () => {
    await gw.sql("delete from tokens"); // as if never started
    const registry = await fresh();
    const first = await provisionToken(registry, undefined);
    expect(first.generated).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const stored = await gw.sql("select id, token_hash, scopes from tokens");
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ id: "root", token_hash: sha256(first.generated ?? "").toString("hex") });
    expect(JSON.parse(JSON.stringify(stored[0]?.scopes)).toString()).toContain("admin");
    expect(JSON.stringify(stored)).not.toContain(first.generated);
    const check = checkBearer(`Bearer ${first.generated}`, registry);
    expect(check.kind === "ok" && check.token.scopes).toEqual(["admin"]);
    registry.close();
  });

  it("prints nothing new at later starts: the stored hash is kept", async () => {
    const again = await fresh();
    expect((await provisionToken(again, undefined)).generated).toBeNull();
    expect(checkBearer(`Bearer ${TOKEN}`, again).kind).toBe("invalid");
    again.close();
  });

  it("lets GATEWAY_TOKEN replace the stored hash", async () => {
    const replacing = await fresh();
    expect((await provisionToken(replacing, TOKEN)).generated).toBeNull();
    replacing.close();
    const later = await fresh();
    expect((await provisionToken(later, undefined)).generated).toBeNull();
    expect(checkBearer(`Bearer ${TOKEN}`, later).kind).toBe("ok");
    later.close();
  });
});

describe("Admission (what shutdown waits for)", () => {
  it("resolves true once the last invocation leaves, false when the grace period runs out", async () => {
    const admission = new Admission(4);
    expect(await admission.idle(10)).toBe(true);
    const release = admission.enter("f", null);
    expect(release).not.toBeNull();
    expect(await admission.idle(20)).toBe(false);
    const drained = admission.idle(5000);
    setTimeout(() => release?.(), 10);
    expect(await drained).toBe(true);
    expect(admission.size).toBe(0);
  });

  it("admits up to its limit, and up to a function's own max_concurrency", () => {
    const admission = new Admission(2);
    const first = admission.enter("a", 1);
    expect(first).not.toBeNull();
    expect(admission.enter("a", 1)).toBeNull();
    const second = admission.enter("b", null);
    expect(second).not.toBeNull();
    expect(admission.enter("c", null)).toBeNull();
    first?.();
    first?.(); // a second release changes nothing
    expect(admission.size).toBe(1);
    expect(admission.enter("a", 1)).not.toBeNull();
  });
});

describe("methods a route does not serve", () => {
  runScenarios(
    () => gw,
    (
      [
        ["PATCH", "/api/functions/hello", "GET, HEAD, PUT, DELETE"],
        ["DELETE", "/api/functions", "GET, HEAD, POST"],
        ["POST", "/api/invocations", "GET, HEAD"],
        ["PUT", "/healthz", "GET, HEAD"],
      ] as const
    ).map(([method, url, allow]) => ({
      name: `${method} ${url} answers 405 with Allow: ${allow}`,
      method,
      url,
      expectedStatus: 405,
      expectedError: "method_not_allowed",
      expectedHeaders: { allow },
    })),
  );
});

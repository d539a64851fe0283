import { createConfig, lintFromString } from "@redocly/openapi-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Json } from "../json.js";
import { type Gateway, makeGateway } from "./harness.js";

let gw: Gateway;
let doc: Json;
beforeAll(async () => {
  gw = makeGateway();
  doc = (await (await gw.call("/openapi.json", { token: null })).json()) as Json;
});
afterAll(() => gw.close());

/** What the app serves that is a page, not an operation of the API. */
const PAGES = [
  "GET /",
  "GET /console",
  "GET /console/*",
  "GET /openapi.json",
  "GET /docs",
  "GET /docs/init.js",
  "GET /docs/:asset",
  "GET /favicon.ico",
];
/** Mounts that take every method (the function decides): documented under one path each. */
const ANY_METHOD = { "/fn/*": "/fn/{target}", "/api/invoke/*": "/api/invoke/{target}" } as Record<string, string>;

/** `METHOD /path/{param}` of each route the app answers, from Hono's own route table. */
function servedOperations(): Set<string> {
  const served = new Set<string>();
  for (const { method, path } of gw.app.routes) {
    if (method === "ALL") {
      // Middleware, the 405 refusals, and the two any-method mounts; only those count as operations.
      if (ANY_METHOD[path]) served.add(`ANY ${ANY_METHOD[path]}`);
      continue;
    }
    if (PAGES.includes(`${method} ${path}`)) continue;
    served.add(`${method} ${path.replace(/:(\w+)/g, "{$1}")}`);
  }
  return served;
}

function documentedOperations(): Set<string> {
  const documented = new Set<string>();
  for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, Json>>)) {
    for (const method of Object.keys(item))
      documented.add(Object.values(ANY_METHOD).includes(path) ? `ANY ${path}` : `${method.toUpperCase()} ${path}`);
  }
  return documented;
}

describe("the OpenAPI document", () => {
  it("documents exactly the routes the app serves: a new route cannot go undocumented", () => {
    const served = servedOperations();
    expect(served.size).toBeGreaterThan(20);
    expect([...served].sort()).toEqual([...documentedOperations()].sort());
  });

  it("gives every operation a tag the document lists and an operationId of its own", () => {
    const tags = new Set((doc.tags as Json[]).map((tag) => tag.name as string));
    const ids: string[] = [];
    for (const item of Object.values(doc.paths as Record<string, Record<string, Json>>)) {
      for (const operation of Object.values(item)) {
        expect(operation.tags).toHaveLength(1);
        expect(tags.has(operation.tags[0])).toBe(true);
        expect(operation.operationId).toMatch(/^[a-z][A-Za-z]+$/);
        ids.push(operation.operationId);
      }
    }
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("passes Redocly's recommended rules without an error", async () => {
    const config = await createConfig({ extends: ["recommended"] });
    const problems = await lintFromString({ source: JSON.stringify(doc), absoluteRef: "openapi.json", config });
    const described = problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location[0]?.pointer}`);
    expect(described.filter((line) => line.startsWith("error"))).toEqual([]);
    // The two warnings left: the project states no licence, and /healthz has no 4xx to document (it answers 200 or 503).
    expect(described).toEqual([
      "warn info-license: Info object should contain `license` field. at #/info",
      "warn operation-4xx-response: Operation must have at least one `4XX` response. at #/paths/~1healthz/get/responses",
    ]);
  });

  it("names this gateway as its server, relative, so it holds behind any proxy", () => {
    expect(doc.servers).toEqual([{ url: "/", description: "This gateway" }]);
  });
});

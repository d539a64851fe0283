import type { InvocationSpec } from "../../src/core/runner.js";
import type { InterpreterKind } from "../../src/core/runtimes.js";

/** A function the bench registers, and the request it sends to it. */
export interface BenchFunction {
  /** Short label: `hello`, `json`, or `script` (no handler: stdout is the answer, as Dify sends code). */
  kind: "hello" | "json" | "script";
  runtime: InterpreterKind;
  code: string;
  method: "GET" | "POST";
  /** Path and query after `/fn/<name>`. */
  query: string;
  body?: string;
  headers?: Record<string, string>;
}

/** What the JSON-transform functions receive: a small order, ~1 KiB. */
export const ORDER_BODY = JSON.stringify({
  customer: "bench",
  items: Array.from({ length: 12 }, (_, i) => ({ sku: `sku-${i}`, name: `item number ${i}`, price: 1.25 * (i + 1), qty: (i % 3) + 1 })),
});

const PYTHON_HELLO = `def handler(request):
    return {"hello": request.query.get("name", "world")}
`;

const NODE_HELLO = `export default async function (request) {
  return Response.json({ hello: new URL(request.url).searchParams.get("name") });
}
`;

// Parse the body, transform (totals, upper-cased names, sorted by line total), answer JSON.
const PYTHON_JSON = `def handler(request):
    order = request.json()
    lines = [
        {"sku": item["sku"], "name": item["name"].upper(), "total": round(item["price"] * item["qty"], 2)}
        for item in order["items"]
    ]
    lines.sort(key=lambda line: line["total"], reverse=True)
    return {"customer": order["customer"], "lines": lines, "total": round(sum(l["total"] for l in lines), 2)}
`;

const NODE_JSON = `export default async function (request) {
  const order = await request.json();
  const lines = order.items
    .map((item) => ({ sku: item.sku, name: item.name.toUpperCase(), total: Math.round(item.price * item.qty * 100) / 100 }))
    .sort((a, b) => b.total - a.total);
  const total = Math.round(lines.reduce((sum, line) => sum + line.total, 0) * 100) / 100;
  return Response.json({ customer: order.customer, lines, total });
}
`;

// A script: no handler, its stdout is the response.
const PYTHON_SCRIPT = `import json
print(json.dumps({"hello": "world"}))
`;

const JSON_REQUEST = { method: "POST", query: "", body: ORDER_BODY, headers: { "content-type": "application/json" } } as const;

export const BENCH_FUNCTIONS: readonly BenchFunction[] = [
  { kind: "hello", runtime: "python", code: PYTHON_HELLO, method: "GET", query: "?name=bench" },
  { kind: "hello", runtime: "node", code: NODE_HELLO, method: "GET", query: "?name=bench" },
  { kind: "json", runtime: "python", code: PYTHON_JSON, ...JSON_REQUEST },
  { kind: "json", runtime: "node", code: NODE_JSON, ...JSON_REQUEST },
  { kind: "script", runtime: "python", code: PYTHON_SCRIPT, method: "GET", query: "" },
];

/** A bench function of `runtime` (the hello world by default) as `Sandbox.run` takes it, for the benches that leave HTTP out. */
export function helloSpec(runtime: InterpreterKind, kind: BenchFunction["kind"] = "hello"): InvocationSpec {
  const hello = BENCH_FUNCTIONS.find((fn) => fn.runtime === runtime && fn.kind === kind);
  if (!hello) throw new Error(`no ${kind} function for ${runtime}`);
  return {
    runtime,
    code: hello.code,
    env: {},
    timeoutMs: 10_000,
    memoryMb: 256,
    network: false,
    request: {
      method: hello.method,
      path: "/",
      query: [["name", "bench"]],
      headers: [],
      body: new Uint8Array(),
      url: `http://bench/fn/hello${hello.query}`,
    },
  };
}

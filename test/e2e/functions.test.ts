// End to end: registering functions, the function contract over HTTP, and versions.
// The real gateway (src/main.ts) in a child process, real sandboxed Python and Node, spoken to only
// over HTTP. The README's "Writing functions" and "HTTP API" are the spec.
import crypto from "node:crypto";
import http from "node:http";
import { beforeAll, describe, expect, it } from "vitest";
import { invocation, invocationId, type Json, useGateway } from "./harness.js";

const TOKEN = "e2e-token-4f1c9a7d2b8e6035";
const MiB = 1024 * 1024;

const gateway = useGateway(TOKEN, { MAX_BODY_BYTES: String(MiB) });
const { call, node, python } = gateway;

describe("a Python and a JavaScript function, from registration to the log", () => {
  // The README's two examples, each printing a line to stdout and one to stderr: those belong in the log.
  const pyCode = `import sys

def handler(request):
    name = request.query.get("name", "world")
    print("greeting", name)
    print("to stderr", file=sys.stderr)
    return {"hello": name}
`;
  const jsCode = `export default async function (request) {   // a Web-standard Request
  console.log("greeting", new URL(request.url).searchParams.get("name"));
  console.error("to stderr");
  return Response.json({ hello: new URL(request.url).searchParams.get("name") });
}
`;
  const ids: Record<string, string> = {};

  it("registers the Python example with POST /api/functions: 201, version 1", async () => {
    const res = await call("/api/functions", { method: "POST", json: { name: "hello-py", runtime: "python", code: pyCode } });
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe("/api/functions/hello-py");
    expect(await res.json()).toMatchObject({ name: "hello-py", runtime: "python", version: 1, code: pyCode, public: false });
  });

  it("registers the JavaScript `export default` example: 201, version 1", async () => {
    const res = await call("/api/functions", { method: "POST", json: { name: "hello-js", runtime: "node", code: jsCode } });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ name: "hello-js", runtime: "node", version: 1, code: jsCode });
  });

  it("refuses a second registration under a taken name with 409", async () => {
    const res = await call("/api/functions", { method: "POST", json: { name: "hello-py", runtime: "python", code: pyCode } });
    expect(res.status).toBe(409);
    expect((await res.json()).error.code).toBe("conflict");
  });

  it("lists both with GET /api/functions", async () => {
    const res = await call("/api/functions");
    expect(res.status).toBe(200);
    const { items } = (await res.json()) as Json;
    expect(items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: "hello-py", runtime: "python", version: 1 }),
        expect.objectContaining({ name: "hello-js", runtime: "node", version: 1 }),
      ]),
    );
  });

  it.each(["hello-py", "hello-js"])("invokes %s at /fn/:name?name=... and answers its JSON, nothing printed in it", async (name) => {
    const res = await call(`/fn/${name}?name=ada`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await res.text()).toMatch(/^\{"hello": ?"ada"\}$/);
    ids[name] = invocationId(res);
  });

  it.each(["hello-py", "hello-js"])(
    "finds the invocation of %s in GET /api/invocations?function=... with duration_ms and exit_code 0",
    async (name) => {
      const res = await call(`/api/invocations?function=${name}`);
      expect(res.status).toBe(200);
      const page = (await res.json()) as Json;
      expect(page.next_cursor).toBeNull();
      expect(page.items).toHaveLength(1);
      const [row] = page.items;
      expect(row).toMatchObject({
        id: ids[name],
        function: name,
        version: 1,
        status: "ok",
        http_status: 200,
        exit_code: 0,
        signal: null,
        method: "GET",
        path: "/",
      });
      expect(row.duration_ms).toBeGreaterThan(0);
      expect(row.duration_ms).toBeLessThan(10_000);
      expect(row).not.toHaveProperty("stdout");
    },
  );

  it.each(["hello-py", "hello-js"])("shows what %s printed in the row's stdout and stderr at GET /api/invocations/:id", async (name) => {
    const row = await invocation(call, ids[name]!);
    expect(row).toMatchObject({ id: ids[name], status: "ok", exit_code: 0 });
    expect(row.stdout).toBe("greeting ada\n");
    expect(row.stderr).toBe("to stderr\n");
    expect(row.stdout_truncated).toBe(false);
  });
});

describe("the function contract over HTTP", () => {
  beforeAll(async () => {
    await python(
      "echo",
      `import hashlib
def handler(request):
    return {
        "method": request.method,
        "path": request.path,
        "query": request.query_items,
        "headers": dict(request.headers),
        "body_sha256": hashlib.sha256(request.body).hexdigest(),
        "body_length": len(request.body),
        "json": request.json() if request.headers.get("content-type") == "application/json" else None,
    }
`,
    );
    await python(
      "returns",
      `def handler(request):
    kind = request.query["as"]
    if kind == "dict":
        return {"a": [1, 2], "b": None}
    if kind == "list":
        return [1, "two"]
    if kind == "str":
        return "plain text ✓"
    if kind == "bytes":
        return bytes(range(256))
    if kind == "tuple2":
        return {"created": True}, 201
    if kind == "tuple3":
        return "a,b\\n1,2\\n", 418, {"Content-Type": "text/csv", "X-Teapot": "short and stout"}
    if kind == "reset":
        return "ignored", 205
`,
    );
    await node(
      "returns-js",
      `export default async (request) => {
  const kind = new URL(request.url).searchParams.get("as");
  if (kind === "object") return { a: [1, 2], b: null };
  if (kind === "string") return "plain text ✓";
  if (kind === "bytes") return new Uint8Array(Array.from({ length: 256 }, (_, i) => i));
  if (kind === "response") return new Response("made by hand", { status: 202, headers: { "content-type": "text/x-made", "x-made-by": "js" } });
};
`,
    );
  });

  it("runs a Python script without a handler top to bottom: its stdout is the body, text/plain, 200", async () => {
    await python("script-py", `import sys\nprint("line one")\nsys.stdout.write("line two\\n")\n`);
    const res = await call("/fn/script-py");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await res.text()).toBe("line one\nline two\n");
    expect((await invocation(call, invocationId(res))).stdout).toBe("line one\nline two\n");
  });

  it("runs a JavaScript script without an export the same way", async () => {
    await node("script-js", `console.log("from a script");\nprocess.stdout.write("and more\\n");\n`);
    const res = await call("/fn/script-js");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("from a script\nand more\n");
  });

  const bytes256 = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  it.each([
    ["returns", "dict", 200, /^application\/json/, (body: Buffer) => expect(JSON.parse(body.toString())).toEqual({ a: [1, 2], b: null })],
    ["returns", "list", 200, /^application\/json/, (body: Buffer) => expect(JSON.parse(body.toString())).toEqual([1, "two"])],
    ["returns", "str", 200, /^text\/plain/, (body: Buffer) => expect(body.toString()).toBe("plain text ✓")],
    ["returns", "bytes", 200, /^application\/octet-stream$/, (body: Buffer) => expect(body.equals(bytes256)).toBe(true)],
    ["returns", "tuple2", 201, /^application\/json/, (body: Buffer) => expect(JSON.parse(body.toString())).toEqual({ created: true })],
    ["returns", "tuple3", 418, /^text\/csv$/, (body: Buffer) => expect(body.toString()).toBe("a,b\n1,2\n")],
    [
      "returns-js",
      "object",
      200,
      /^application\/json/,
      (body: Buffer) => expect(JSON.parse(body.toString())).toEqual({ a: [1, 2], b: null }),
    ],
    ["returns-js", "string", 200, /^text\/plain/, (body: Buffer) => expect(body.toString()).toBe("plain text ✓")],
    ["returns-js", "bytes", 200, /^application\/octet-stream$/, (body: Buffer) => expect(body.equals(bytes256)).toBe(true)],
    ["returns-js", "response", 202, /^text\/x-made$/, (body: Buffer) => expect(body.toString()).toBe("made by hand")],
  ] as const)("%s ?as=%s answers %i with its content type and body", async (fn, kind, status, type, checkBody) => {
    const res = await call(`/fn/${fn}?as=${kind}`);
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toMatch(type);
    const body = Buffer.from(await res.arrayBuffer());
    checkBody(body);
    expect(res.headers.get("content-length")).toBe(String(body.byteLength));
  });

  it("answers a 205 with an empty body of declared length 0, whatever the function returned", async () => {
    const { status, headers, body } = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>(
      (resolve, reject) => {
        const req = http.request(`${gateway.server.url}/fn/returns?as=reset`, { headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
          let body = "";
          res.on("data", (chunk: Buffer) => (body += chunk));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        });
        req.on("error", reject);
        req.end();
      },
    );
    expect(status).toBe(205);
    expect(headers["content-length"]).toBe("0");
    expect(headers["transfer-encoding"]).toBeUndefined();
    expect(body).toBe("");
  });

  it("passes the headers a tuple or a Response sets through to the client", async () => {
    expect((await call("/fn/returns?as=tuple3")).headers.get("x-teapot")).toBe("short and stout");
    expect((await call("/fn/returns-js?as=response")).headers.get("x-made-by")).toBe("js");
  });

  it("hands the function the method, the path below it and the query: /fn/echo/a/b?x=1 is path /a/b", async () => {
    const res = await call("/fn/echo/a/b?x=1&y=two&x=3", { method: "DELETE" });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as Json;
    expect(seen.method).toBe("DELETE");
    expect(seen.path).toBe("/a/b");
    expect(seen.query).toEqual([
      ["x", "1"],
      ["y", "two"],
      ["x", "3"],
    ]);
    const row = await invocation(call, invocationId(res));
    expect(row).toMatchObject({ method: "DELETE", path: "/a/b" });
    const root = (await (await call("/fn/echo")).json()) as Json;
    expect(root.path).toBe("/");
  });

  it("delivers a POSTed JSON body intact", async () => {
    const payload = { n: 1, text: "héllo ✓ \u0000", nested: { list: [true, null, 2.5] } };
    const res = await call("/fn/echo", { method: "POST", json: payload });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as Json;
    expect(seen.json).toEqual(payload);
    expect(seen.body_length).toBe(Buffer.byteLength(JSON.stringify(payload)));
    expect((await invocation(call, invocationId(res))).request_bytes).toBe(seen.body_length);
  });

  it("delivers a binary body byte for byte", async () => {
    const payload = crypto.randomBytes(300_000);
    const res = await call("/fn/echo", { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: payload });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as Json;
    expect(seen.body_length).toBe(payload.byteLength);
    expect(seen.body_sha256).toBe(crypto.createHash("sha256").update(payload).digest("hex"));
  });

  it("hands over the request headers but never the Authorization header (the gateway token)", async () => {
    const res = await call("/fn/echo", { headers: { "X-Custom": "Yes", "X-Invocation-Id": "forged" } });
    const seen = (await res.json()) as Json;
    expect(seen.headers["x-custom"]).toBe("Yes");
    expect(seen.headers["user-agent"]).toBeTypeOf("string");
    expect(seen.headers).not.toHaveProperty("authorization");
    expect(JSON.stringify(seen)).not.toContain(TOKEN);
    expect(seen.headers["x-invocation-id"]).toBe(invocationId(res));
  });
});

describe("versions", () => {
  const v1 = `def handler(request):\n    return {"version": 1}\n`;
  const v2 = `def handler(request):\n    return {"version": 2}\n`;

  it("PUT stores version 2; /fn/name runs it and /fn/name@1 still runs version 1", async () => {
    await python("versioned", v1);
    const put = await call("/api/functions/versioned", { method: "PUT", json: { code: v2 } });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ name: "versioned", version: 2, code: v2 });
    expect(await (await call("/fn/versioned")).json()).toEqual({ version: 2 });
    expect(await (await call("/fn/versioned@1")).json()).toEqual({ version: 1 });
    expect(await (await call("/fn/versioned@2/sub?x=1")).json()).toEqual({ version: 2 });
    const rows = ((await (await call("/api/invocations?function=versioned")).json()) as Json).items;
    expect(rows.map((row: Json) => row.version)).toEqual([2, 1, 2]);
  });

  it("an unknown version answers 404", async () => {
    const res = await call("/fn/versioned@3");
    expect(res.status).toBe(404);
    expect(((await res.json()) as Json).error.code).toBe("not_found");
  });

  it("GET /api/functions/:name shows the current version and /versions lists every version newest first", async () => {
    expect(await (await call("/api/functions/versioned")).json()).toMatchObject({ version: 2, code: v2 });
    const res = await call("/api/functions/versioned/versions");
    expect(res.status).toBe(200);
    const { items } = (await res.json()) as Json;
    expect(items.map((v: Json) => v.version)).toEqual([2, 1]);
  });

  it("DELETE removes the function: /fn and the API answer 404, but its invocations stay in the log", async () => {
    const before = ((await (await call("/api/invocations?function=versioned")).json()) as Json).items;
    expect(before).toHaveLength(3);
    const del = await call("/api/functions/versioned", { method: "DELETE" });
    expect(del.status).toBe(204);
    const invoke = await call("/fn/versioned");
    expect(invoke.status).toBe(404);
    expect(((await invoke.json()) as Json).error.code).toBe("not_found");
    expect((await call("/fn/versioned@1")).status).toBe(404);
    expect((await call("/api/functions/versioned")).status).toBe(404);
    const after = ((await (await call("/api/invocations?function=versioned")).json()) as Json).items;
    expect(after.map((row: Json) => row.id)).toEqual(before.map((row: Json) => row.id));
    expect(await invocation(call, before[0].id)).toMatchObject({ function: "versioned", status: "ok" });
  });
});

// The `fngw` command against a real gateway (src/main.ts in a child process, real sandboxed
// interpreters): what each command prints, what it changed on the gateway, and its exit code.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { client, type Json, removeDataDir, type Server, startServer } from "../e2e/harness.js";
import { closedPort, mapLimit, runCli, tableRows, workDir, writeFile } from "./harness.js";

// Each command is a Node process of its own: generous on a busy machine.
vi.setConfig({ testTimeout: 120_000 });

const TOKEN = "cli-test-token-7d2e91b4c3a5";

let server: Server;
let dir: string;
const call = client(
  () => server.url,
  () => TOKEN,
);
/** fngw with GATEWAY_URL and GATEWAY_TOKEN pointing at the test gateway. */
const fngw = (args: string[], options: { input?: string; env?: Record<string, string> } = {}) =>
  runCli(args, { input: options.input, env: { GATEWAY_URL: server.url, GATEWAY_TOKEN: TOKEN, ...options.env } });
const api = async (pathname: string): Promise<Json> => (await (await call(pathname)).json()) as Json;

const HELLO_V1 = `def handler(request):
    print("log line")
    return {"hello": request.query.get("name", "world"), "method": request.method, "path": request.path,
            "body": request.text(), "header": request.headers.get("x-probe")}
`;
const HELLO_V2 = `def handler(request):
    return "version two"
`;
const FAILING_JS = `export default function () { throw new Error("broken on purpose"); }\n`;

beforeAll(async () => {
  server = await startServer({ env: { GATEWAY_TOKEN: TOKEN } });
  dir = workDir();
});

afterAll(async () => {
  if (!server) return;
  const code = await server.stop();
  removeDataDir(server.dataDir);
  expect(code, `stderr:\n${server.stderr()}`).toBe(0);
});

describe("deploy", () => {
  it("creates a function named after the file, runtime from .py, with the settings given", async () => {
    const file = writeFile(dir, "hello.py", HELLO_V1);
    const result = await fngw(["deploy", file, "--env", "GREETING=hi", "--env", "MODE=x=y", "--timeout", "5000", "--memory", "128"]);
    expect(result).toMatchObject({ code: 0, stdout: "created hello (python): version 1\n" });
    const fn = await api("/api/functions/hello");
    expect(fn).toMatchObject({
      name: "hello",
      runtime: "python",
      version: 1,
      code: HELLO_V1,
      timeout_ms: 5000,
      memory_mb: 128,
      public: false,
    });
    expect(Object.keys(fn.env).sort()).toEqual(["GREETING", "MODE"]);
  });

  it("adds a version when the function exists, keeping the settings not given", async () => {
    writeFile(dir, "hello.py", HELLO_V2);
    const result = await fngw(["deploy", `${dir}/hello.py`, "--public"]);
    expect(result).toMatchObject({ code: 0, stdout: "updated hello (python): version 2\n" });
    expect(await api("/api/functions/hello")).toMatchObject({ version: 2, code: HELLO_V2, timeout_ms: 5000, memory_mb: 128, public: true });
  });

  it("takes .mjs as node, --name over the file name, and prints the API's JSON with --json (settings not given are not sent)", async () => {
    const file = writeFile(dir, "whatever.mjs", FAILING_JS);
    const result = await fngw(["deploy", file, "--name", "broken", "--json", "--max-concurrency", "1", "--no-network"]);
    expect(result.code, result.stderr).toBe(0);
    // The gateway refuses unknown fields (strict schema): a 201 shows packages/isolation were left out.
    expect(JSON.parse(result.stdout)).toEqual(await api("/api/functions/broken"));
    expect(JSON.parse(result.stdout)).toMatchObject({ name: "broken", runtime: "node", version: 1, max_concurrency: 1, network: false });
  });
});

describe("ls, show, versions", () => {
  it("ls prints an aligned table of every function, and --json the API's list", async () => {
    const result = await fngw(["ls"]);
    expect(result.code).toBe(0);
    const [head, ...rows] = result.stdout.trimEnd().split("\n");
    expect(head).toMatch(/^NAME\s+RUNTIME\s+VERSION\s+PUBLIC\s+UPDATED$/);
    expect(rows.map((row) => row.split(/\s+/).slice(0, 4))).toEqual([
      ["broken", "node", "1", "false"],
      ["hello", "python", "2", "true"],
    ]);
    // Aligned: every column starts at the same offset on every line.
    expect(new Set(rows.map((row) => (row.indexOf("node") >= 0 ? row.indexOf("node") : row.indexOf("python")))).size).toBe(1);
    const asJson = await fngw(["--json", "ls"]);
    expect(JSON.parse(asJson.stdout)).toEqual(await api("/api/functions"));
  });

  it("show prints the settings, env names without values, and the code", async () => {
    const result = await fngw(["show", "hello"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^version\s+2$/m);
    expect(result.stdout).toMatch(/^timeout_ms\s+5000$/m);
    expect(result.stdout).toMatch(/^env\s+GREETING MODE$/m);
    expect(result.stdout).not.toContain("hi");
    expect(result.stdout.endsWith(`\n\n${HELLO_V2}`)).toBe(true);
  });

  it("versions lists every version newest first, the current one marked", async () => {
    const result = await fngw(["versions", "hello"]);
    expect(result.code).toBe(0);
    const rows = tableRows(result.stdout);
    expect(rows.map((row) => row.slice(0, 3))).toEqual([
      ["2", "current", "python"],
      ["1", "python", "5000"],
    ]);
    const asJson = await fngw(["versions", "hello", "--json"]);
    expect(JSON.parse(asJson.stdout)).toEqual(await api("/api/functions/hello/versions"));
  });
});

describe("invoke", () => {
  it("prints the body on stdout, and the status and the logged invocation's id on stderr", async () => {
    const result = await fngw(["invoke", "hello"]);
    expect(result).toMatchObject({ code: 0, stdout: "version two" });
    const [status, idLine] = result.stderr.trimEnd().split("\n");
    expect(status).toBe("200 OK");
    const id = /^invocation ([0-9a-f-]{36})$/.exec(idLine ?? "")?.[1];
    expect(await api(`/api/invocations/${id}`)).toMatchObject({ function: "hello", version: 2, status: "ok", http_status: 200 });
  });

  it("sends the method, --path with its query, headers and a body from text, @file or stdin (name@N: that version)", async () => {
    const bodyFile = writeFile(dir, "body.txt", "from a file");
    const base = ["invoke", "hello@1", "-X", "put", "--path", "/sub/dir?name=ada", "-H", "X-Probe: probed"];
    for (const [data, expected, input] of [
      ["text body", "text body"],
      [`@${bodyFile}`, "from a file"],
      ["-", "from stdin", "from stdin"],
    ] as const) {
      const result = await fngw([...base, "--data", data], { input });
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ hello: "ada", method: "PUT", path: "/sub/dir", body: expected, header: "probed" });
    }
  });

  it("exits 1 when the function answers 500, still printing its body, status and id", async () => {
    const result = await fngw(["invoke", "broken", "--json"]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).error).toMatchObject({ code: "error" });
    const meta = JSON.parse(result.stderr);
    expect(meta.status).toBe(500);
    expect(await api(`/api/invocations/${meta.invocation_id}`)).toMatchObject({ function: "broken", status: "error", http_status: 500 });
  });
});

describe("logs and stats", () => {
  it("logs prints the log newest first as a table; NAME and --status filter it", async () => {
    const all = await fngw(["logs"]);
    expect(all.code).toBe(0);
    const listed = (await api("/api/invocations")).items as Json[];
    expect(tableRows(all.stdout).map((row) => row[1])).toEqual(listed.map((item) => item.id));
    const failed = await fngw(["logs", "broken", "--status", "error"]);
    const rows = tableRows(failed.stdout);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toEqual(expect.arrayContaining(["broken", "error", "500", "the function raised Error: broken on purpose"]));
  });

  it("logs --json prints the API's page; --limit and --since pass through", async () => {
    const result = await fngw(["logs", "hello", "--json", "--limit", "2", "--since", "1h"]);
    expect(result.code).toBe(0);
    const page = JSON.parse(result.stdout);
    expect(page).toEqual(await api("/api/invocations?function=hello&limit=2"));
    expect(page.items).toHaveLength(2);
    expect(page.next_cursor).not.toBeNull();
    const future = await fngw(["logs", "--json", "--since", "2099-01-01T00:00:00Z"]);
    expect(JSON.parse(future.stdout).items).toEqual([]);
  });

  it("stats prints the counts and percentiles of the window, and --json the API's", async () => {
    const result = await fngw(["stats", "hello", "--window", "1h"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^count\s+4$/m);
    expect(result.stdout).toMatch(/^by status\s+ok=4$/m);
    expect(result.stdout).toMatch(/^p95\s+\d+(\.\d)? ms$/m);
    const asJson = JSON.parse((await fngw(["stats", "broken", "--json"])).stdout);
    expect(asJson).toMatchObject({ function: "broken", window: "24h", count: 1, errors: 1 });
  });
});

describe("rm", () => {
  it("removes the function; its log stays", async () => {
    expect(await fngw(["rm", "broken"])).toMatchObject({ code: 0, stdout: "removed broken (its invocation log stays)\n" });
    expect((await call("/api/functions/broken")).status).toBe(404);
    expect((await fngw(["logs", "broken", "--json"])).stdout).toContain('"function": "broken"');
  });
});

describe("errors: one line on stderr and the documented exit code", () => {
  it("an unreachable gateway exits 3, naming the URL", async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const result = await fngw(["ls", "--url", url]);
    expect(result).toMatchObject({ code: 3, stdout: "" });
    expect(result.stderr).toBe(`error: cannot reach the gateway at ${url}: ECONNREFUSED\n`);
  });

  it("a wrong token exits 4, and so does a missing one", async () => {
    const wrong = await fngw(["ls", "--token", "not-the-token-at-all"]);
    expect(wrong).toMatchObject({ code: 4, stdout: "", stderr: "error: unauthorized: invalid token (check GATEWAY_TOKEN or --token)\n" });
    const missing = await runCli(["invoke", "hello@1"], { env: { GATEWAY_URL: server.url } });
    expect(missing.code).toBe(4);
    expect(missing.stderr).toMatch(/^error: unauthorized: missing token.*\(set GATEWAY_TOKEN or pass --token\)\n$/);
  });

  it("an unknown function exits 1 with the gateway's message, from every command that names one", async () => {
    const commands = [
      ["show", "nope"],
      ["versions", "nope"],
      ["rm", "nope"],
      ["stats", "nope"],
      ["invoke", "nope"],
    ];
    const results = await mapLimit(commands, 2, (args) => fngw(args));
    results.forEach((result, index) => {
      expect(result, commands[index]!.join(" ")).toMatchObject({ code: 1, stdout: "", stderr: "error: no function named 'nope'\n" });
    });
    expect(await fngw(["invoke", "hello@9"])).toMatchObject({ code: 1, stderr: "error: function 'hello' has no version 9\n" });
  });

  it("bad usage exits 2 before any request", async () => {
    const unreachable = { GATEWAY_URL: `http://127.0.0.1:${await closedPort()}` };
    const cases: Array<[string[], RegExp]> = [
      [["frobnicate"], /unknown command 'frobnicate'/],
      [["show"], /missing required argument 'name'/],
      [["deploy", `${dir}/hello.txt`], /cannot tell the runtime/],
      [["deploy", `${dir}/missing.py`], /cannot read '.*missing\.py': ENOENT/],
      [["deploy", `${dir}/hello.py`, "--timeout", "soon"], /--timeout.*must be a positive integer/],
      [["deploy", `${dir}/hello.py`, "--env", "NOVALUE"], /'NOVALUE' is not KEY=VALUE/],
      [["deploy", `${dir}/hello.py`, "--isolation", "none"], /Allowed choices are invocation, function/],
      [["deploy", `${dir}/hello.py`, "--name", "Not A Name"], /'Not A Name' is not a function name/],
      [["invoke", "hello", "-H", "no colon"], /header 'no colon' is not 'Name: value'/],
      [["invoke", "hello", "-X", "TRACE"], /TRACE cannot be sent/],
      [["invoke", "hello", "--path", "relative"], /--path must start with '\/'/],
      [["logs", "--since", "yesterday"], /--since.*ISO 8601/],
      [["ls", "--url", "localhost:8080"], /must start with http:\/\/ or https:\/\//],
    ];
    // An unreachable gateway would exit 3: exit 2 shows each was refused before any request.
    const results = await mapLimit(cases, 2, ([args]) => fngw(args, { env: unreachable }));
    results.forEach((result, index) => {
      const [args, message] = cases[index]!;
      expect(result.code, `${args.join(" ")}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(message);
    });
  });

  it("--help exits 0 and states the exit codes", async () => {
    const result = await runCli(["--help"]);
    expect(result.code).toBe(0);
    for (const line of ["0  ok", "1  the request failed", "2  usage error", "3  the gateway is unreachable", "4  unauthorized"]) {
      expect(result.stdout).toContain(line);
    }
  });
});

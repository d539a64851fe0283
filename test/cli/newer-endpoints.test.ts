// The commands over the newer endpoints and settings: rollback, logs -f (the invocation stream,
// caught up with `?after=`), backup (GET /api/backup), deploy's --packages and --isolation, each
// against a real gateway.
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { client, type Json, removeDataDir, type Server, startServer, waitFor } from "../e2e/harness.js";
import { runCli, startCli, workDir, writeFile } from "./harness.js";

// Each command is a Node process of its own: generous on a busy machine.
vi.setConfig({ testTimeout: 120_000 });

const TOKEN = "cli-follow-token-5b8e0f2a6c19";

let server: Server;
let dir: string;
const call = client(
  () => server.url,
  () => TOKEN,
);
const env = () => ({ GATEWAY_URL: server.url, GATEWAY_TOKEN: TOKEN });
const fngw = (args: string[]) => runCli(args, { env: env() });
const api = async (pathname: string): Promise<Json> => (await (await call(pathname)).json()) as Json;

beforeAll(async () => {
  server = await startServer({ env: { GATEWAY_TOKEN: TOKEN } });
  dir = workDir();
  writeFile(dir, "echo.py", 'def handler(request):\n    return "one"\n');
  expect((await fngw(["deploy", `${dir}/echo.py`])).code).toBe(0);
  writeFile(dir, "echo.py", 'def handler(request):\n    return "two"\n');
  expect((await fngw(["deploy", `${dir}/echo.py`])).code).toBe(0);
});

afterAll(async () => {
  if (!server) return;
  const code = await server.stop();
  removeDataDir(server.dataDir);
  expect(code, `stderr:\n${server.stderr()}`).toBe(0);
});

describe("rollback", () => {
  it("makes version 1 current again as version 3, and the function answers as version 1 did", async () => {
    const result = await fngw(["rollback", "echo", "1"]);
    expect(result).toMatchObject({ code: 0, stdout: "rolled echo back to version 1: now version 3\n" });
    expect(await api("/api/functions/echo")).toMatchObject({ version: 3, code: 'def handler(request):\n    return "one"\n' });
    expect((await fngw(["invoke", "echo"])).stdout).toBe("one");
  });

  it("exits 1 for a version that does not exist, and 2 for one that is not a number", async () => {
    expect((await fngw(["rollback", "echo", "42"])).code).toBe(1);
    expect((await fngw(["rollback", "echo", "latest"])).code).toBe(2);
  });
});

describe("logs -f", () => {
  it("prints the log so far, then each invocation as it finishes, one JSON object a line", async () => {
    const before = await fngw(["invoke", "echo"]);
    const beforeId = /invocation (\S+)/.exec(before.stderr)?.[1];
    const follow = startCli(["logs", "echo", "-f", "--json"], { env: env() });
    const ids = () =>
      follow
        .stdout()
        .split("\n")
        .filter(Boolean)
        .map((line) => (JSON.parse(line) as Json).id as string);
    try {
      await waitFor(
        () => ids().includes(beforeId!),
        () => `the earlier invocation; output: ${follow.stdout()} ${follow.stderr()}`,
      );
      const later = await Promise.all([fngw(["invoke", "echo"]), fngw(["invoke", "echo"])]);
      const laterIds = later.map((result) => /invocation (\S+)/.exec(result.stderr)?.[1]);
      await waitFor(
        () => laterIds.every((id) => ids().includes(id!)),
        () => `the new invocations; output: ${follow.stdout()}`,
      );
      expect(new Set(ids()).size).toBe(ids().length); // nothing printed twice
      expect(ids().indexOf(beforeId!)).toBeLessThan(ids().indexOf(laterIds[0]!));
    } finally {
      await follow.stop();
    }
  });

  it("catches up with ?after= on what finished after a given invocation, each once", async () => {
    const first = (await api("/api/invocations?function=echo&limit=500")).items as Json[];
    const oldest = first[first.length - 1]!;
    const after = (await api(`/api/invocations?after=${oldest.id}`)).items as Json[];
    // In the order they finished: the two invoked at once above may have finished in either order.
    expect(after.map((item) => item.id).sort()).toEqual(
      first
        .slice(0, -1)
        .map((item) => item.id)
        .sort(),
    );
    const sequential = after.filter((item) => first.slice(-3).some((earlier) => earlier.id === item.id));
    expect(sequential.map((item) => item.id)).toEqual(
      first
        .slice(-3, -1)
        .reverse()
        .map((item) => item.id),
    );
  });
});

describe("backup", () => {
  it("writes a consistent SQLite copy of the database to FILE, replacing what was there, leaving no temp file", async () => {
    const file = path.join(dir, "gateway-backup.db");
    fs.writeFileSync(file, "an older file");
    const result = await fngw(["backup", file]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^wrote .*gateway-backup\.db \(\d+(\.\d)? (B|KiB|MiB)\)\n$/);
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      expect(db.prepare("PRAGMA integrity_check").pluck().get()).toBe("ok");
      expect(db.prepare("SELECT name FROM functions").pluck().all()).toEqual(["echo"]);
    } finally {
      db.close();
    }
    expect(fs.readdirSync(dir).filter((name) => name.endsWith(".tmp"))).toEqual([]);
  });

  it("exits 4 without the right token and leaves FILE alone", async () => {
    const file = path.join(dir, "refused.db");
    const result = await runCli(["backup", file], { env: { GATEWAY_URL: server.url, GATEWAY_TOKEN: "wrong-token-wrong-token" } });
    expect(result.code).toBe(4);
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe("deploy --packages and --isolation", () => {
  it("sends them as packages and isolation, and show prints them", async () => {
    writeFile(dir, "isolated.py", "def handler(request):\n    return 'ok'\n");
    const result = await fngw(["deploy", `${dir}/isolated.py`, "--isolation", "function", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ isolation: "function" });
    expect((await fngw(["show", "isolated"])).stdout).toMatch(/^isolation\s+function$/m);
    const withPackages = await fngw(["deploy", `${dir}/isolated.py`, "--packages", "six==1.16.0", "--json"]);
    expect(withPackages.code, withPackages.stderr).toBe(0);
    // The new version becomes current once its packages are installed (it is pending until then).
    await waitFor(async () => (await api("/api/functions/isolated")).version === 2, "version 2 to become current", 300_000);
    expect(await api("/api/functions/isolated")).toMatchObject({ version: 2, packages: ["six==1.16.0"], isolation: "function" });
  });
});

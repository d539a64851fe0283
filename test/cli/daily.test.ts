// The `fngw` command for everyday work against a real gateway: deploys that wait for their
// packages, one invocation's output, quiet pipes, and mistakes named where they are.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { client, type Json, removeDataDir, type Server, startServer, uidBase, waitFor } from "../e2e/harness.js";
import { closedPort, runCli, workDir, writeFile } from "./harness.js";

vi.setConfig({ testTimeout: 240_000 });

const TOKEN = "cli-daily-token-5c1e0b7a9d";
const BIN = fileURLToPath(new URL("../../bin/fngw.js", import.meta.url));
let server: Server;
let dir: string;
const call = client(
  () => server.url,
  () => TOKEN,
);
const fngw = (args: string[], env: Record<string, string> = {}) =>
  runCli(args, { env: { GATEWAY_URL: server.url, GATEWAY_TOKEN: TOKEN, ...env } });
const api = async (pathname: string): Promise<Json> => (await (await call(pathname)).json()) as Json;

beforeAll(async () => {
  // The installers' uid sits in this server's uid block, above the sandbox slots.
  server = await startServer({ env: { GATEWAY_TOKEN: TOKEN, PACKAGES_UID: String(uidBase(0) + 99) } });
  dir = workDir();
});

afterAll(async () => {
  if (!server) return;
  await server.stop();
  removeDataDir(server.dataDir);
});

const USES_MISSING = "def handler(request):\n    return 1\n";

describe("deploy and packages", () => {
  it("waits for the packages, saying so, and exits 1 with the installer's error when they fail", async () => {
    const file = writeFile(dir, "needs.py", USES_MISSING);
    const result = await fngw(["deploy", file, "--packages", "fngw-no-such-package-4c1d"]);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toBe("created needs (python): version 1\n");
    expect(result.stderr).toMatch(/^installing the packages of needs version 1: (pending|building)$/m);
    const environment = (await api("/api/functions/needs")).environment as Json;
    expect(environment.state).toBe("failed");
    expect(result.stderr).toContain(`error: the packages of needs version 1 failed to install: ${environment.error}\n`);
    expect(result.stderr).toContain("the installer's output (its end):");
  });

  it("--no-wait returns once the version is stored; show prints the packages' state, then the failure", async () => {
    const file = writeFile(dir, "later.py", USES_MISSING);
    const result = await fngw(["deploy", file, "--no-wait", "--packages", "fngw-no-such-package-77aa"]);
    expect(result).toMatchObject({ code: 0, stdout: "created later (python): version 1\n" });
    const shown = await fngw(["show", "later"]);
    expect(shown.stdout).toMatch(/^packages\s+fngw-no-such-package-77aa \((pending|building|failed: .+)\)$/m);
    await waitFor(async () => ((await api("/api/functions/later")).environment as Json).state === "failed", "the install to fail", 180_000);
    const failed = await fngw(["show", "later"]);
    expect(failed.stdout).toMatch(/^packages\s+fngw-no-such-package-77aa \(failed: .+\)$/m);
  });

  it("an identical redeploy stores no version and says so", async () => {
    const file = writeFile(dir, "same.py", "def handler(request):\n    return 'same'\n");
    expect((await fngw(["deploy", file, "--timeout", "3000"])).stdout).toBe("created same (python): version 1\n");
    const again = await fngw(["deploy", file, "--timeout", "3000"]);
    expect(again).toMatchObject({ code: 0, stdout: "unchanged same (python): version 1 (the same code and settings are deployed)\n" });
    expect(((await api("/api/functions/same/versions")).items as Json[]).length).toBe(1);
  });

  it("names the file, line and column of a syntax error", async () => {
    const file = writeFile(dir, "typo.py", "def handler(request):\n    return {'a': 1\n");
    const result = await fngw(["deploy", file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`^error: ${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}:2:\\d+: .+\\n$`));
    expect(result.stderr).not.toContain(" at line ");
  });
});

describe("one invocation's output", () => {
  const TALKER =
    "import sys\n\ndef handler(request):\n    print('to stdout')\n    print('to stderr', file=sys.stderr)\n    return 'answer'\n";

  it("logs <id> and inspect <id> print the row, then its stdout and stderr", async () => {
    writeFile(dir, "talker.py", TALKER);
    expect((await fngw(["deploy", `${dir}/talker.py`])).code).toBe(0);
    const invoked = await fngw(["invoke", "talker"]);
    const id = /^invocation (\S+)$/m.exec(invoked.stderr)?.[1];
    expect(id).toBeDefined();
    for (const args of [
      ["logs", id!],
      ["inspect", id!],
    ]) {
      const result = await fngw(args);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^id\\s+${id}$`, "m"));
      expect(result.stdout).toMatch(/^status\s+ok$/m);
      expect(result.stdout).toContain("--- stdout ---\nto stdout\n--- stderr ---\nto stderr\n");
    }
    expect(JSON.parse((await fngw(["inspect", id!, "--json"])).stdout)).toEqual(await api(`/api/invocations/${id}`));
  });

  it("invoke -v prints the answer, then the log row with the output on stderr", async () => {
    const result = await fngw(["invoke", "talker", "-v"]);
    expect(result).toMatchObject({ code: 0, stdout: "answer" });
    expect(result.stderr).toMatch(/^200 OK\ninvocation \S+\nid\s+\S+\n/);
    expect(result.stderr).toContain("--- stdout ---\nto stdout\n--- stderr ---\nto stderr\n");
  });

  it("an unknown invocation id exits 1 with the gateway's message", async () => {
    const result = await fngw(["logs", "0193b6c4-2f1e-7c3a-9d7e-5a1b2c3d4e5f"]);
    expect(result).toMatchObject({ code: 1, stderr: "error: no invocation with id '0193b6c4-2f1e-7c3a-9d7e-5a1b2c3d4e5f'\n" });
  });
});

describe("pipes and usage", () => {
  it("show | head exits quietly when head stops reading", async () => {
    const code = `# ${"x".repeat(200)}\n`.repeat(2000);
    writeFile(dir, "big.py", `${code}def handler(request):\n    return 1\n`);
    expect((await fngw(["deploy", `${dir}/big.py`])).code).toBe(0);
    // What `| head -1` does: read the first line, then close the pipe while the command still writes.
    const child = spawn(process.execPath, [BIN, "show", "big"], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", GATEWAY_URL: server.url, GATEWAY_TOKEN: TOKEN },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    const first = await new Promise<string>((resolve) => {
      let seen = "";
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        seen += chunk;
        if (seen.includes("\n")) {
          child.stdout.destroy();
          resolve(seen.slice(0, seen.indexOf("\n")));
        }
      });
    });
    expect(first).toMatch(/^name\s+big$/);
    expect(await exited).toBe(0);
    expect(stderr).toBe("");
  });

  it("a bad --status exits 2 before anything is sent", async () => {
    const unreachable = { GATEWAY_URL: `http://127.0.0.1:${await closedPort()}` };
    const result = await fngw(["logs", "--status", "failed"], unreachable);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/Allowed choices are running, ok, error, timeout, oom, forbidden, interrupted, client_closed, rejected/);
  });
});

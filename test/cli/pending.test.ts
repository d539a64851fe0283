import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { client, type Json, removeDataDir, type Server, startServer, waitFor } from "../e2e/harness.js";
import { runCli, workDir, writeFile } from "./harness.js";

// Each command is a Node process of its own: generous on a busy machine.
vi.setConfig({ testTimeout: 120_000 });

const TOKEN = "cli-pending-token-5b8e0f2a6c19";

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

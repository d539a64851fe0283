// End to end: tokens, secrets and registration checks against the real gateway and real sandbox:
// the first-start token is admin and hands out scoped tokens; a secret reaches the function
// through a masked PUT, a rollback and a key rotation, and never sits in the database in clear.
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, generatedToken, type Json, register, removeDataDir, type Server, startServer, tempDataDir } from "./harness.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SECRET = "e2e-secret-value-4b1d9a7ce3";
const READ_ENV = "import os\ndef handler(request):\n    return {'key': os.environ.get('API_KEY'), 'version': os.environ.get('V')}\n";

describe("a gateway's tokens and secrets over restarts", () => {
  const dataDir = tempDataDir();
  let server: Server | undefined;
  let admin = "";
  const tokens: Record<string, string> = {};
  const call = client(
    () => server!.url,
    () => admin,
  );

  beforeAll(async () => {
    server = await startServer({ dataDir, uidIndex: 7 });
    admin = generatedToken(server.stdout()) ?? "";
    expect(admin).not.toBe("");
    expect(server.stdout()).toMatch(/created the secrets key .*secrets\.key \(0600\)/);
  });
  afterAll(async () => {
    await server?.stop();
    removeDataDir(dataDir);
  });

  const invokeJson = async (name: string, token = admin) => {
    const res = await call(`/fn/${name}`, { token });
    expect(res.status, await res.clone().text()).toBe(200);
    return (await res.json()) as Json;
  };

  it("the first-start token is admin: it creates scoped tokens", async () => {
    for (const [key, scopes] of Object.entries({ deploy: ["deploy"], logs: ["logs:read"], invoke: ["invoke:sec-*"] })) {
      const res = await call("/api/tokens", { method: "POST", json: { name: key, scopes } });
      expect(res.status).toBe(201);
      tokens[key] = ((await res.json()) as Json).token;
    }
  });

  it("a deploy token registers a function with a secret; an invoke token runs it and the secret arrives", async () => {
    await register(
      client(
        () => server!.url,
        () => tokens.deploy!,
      ),
      { name: "sec-fn", runtime: "python", code: READ_ENV, env: { API_KEY: SECRET, V: "1" } },
    );
    expect(await invokeJson("sec-fn", tokens.invoke)).toEqual({ key: SECRET, version: "1" });
    const refused = await call("/fn/sec-fn", { token: tokens.logs });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as Json).error.message).toMatch(/'invoke:sec-fn' scope/);
    expect((await call("/api/tokens", { token: tokens.deploy })).status).toBe(403);
  });

  it("PUTting back what GET shows keeps the secret; a rollback keeps the current env", async () => {
    const { name, version, created_at, updated_at, environment, pending_version, ...shown } = (await (
      await call("/api/functions/sec-fn")
    ).json()) as Json;
    expect(shown.env).toEqual({ API_KEY: "***", V: "***" });
    expect((await call("/api/functions/sec-fn", { method: "PUT", json: { ...shown, env: { ...shown.env, V: "2" } } })).status).toBe(200);
    expect(await invokeJson("sec-fn")).toEqual({ key: SECRET, version: "2" });
    const changed = "def handler(request):\n    return 'v3'\n";
    expect((await call("/api/functions/sec-fn", { method: "PUT", json: { code: changed } })).status).toBe(200);
    const rolledBack = await call("/api/functions/sec-fn/rollback", { method: "POST", json: { version: 1 } });
    expect(rolledBack.status).toBe(201);
    expect(((await rolledBack.json()) as Json).version).toBe(4);
    expect(await invokeJson("sec-fn")).toEqual({ key: SECRET, version: "2" });
  });

  it("refuses code that does not parse, and a result JSON cannot carry, with clear errors", async () => {
    const bad = await call("/api/functions", {
      method: "POST",
      json: { name: "sec-bad", runtime: "node", code: "export default () => {\n  return [1,;\n}\n" },
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as Json).error).toMatchObject({ code: "syntax_error", line: 2, column: 13 });
    await register(call, { name: "sec-nan", runtime: "python", code: "def handler(request):\n    return {'ratio': float('nan')}\n" });
    const nan = await call("/fn/sec-nan");
    expect(nan.status).toBe(500);
    expect(((await nan.json()) as Json).error).toMatchObject({ code: "error", message: expect.stringMatching(/NaN or Infinity/) });
  });

  it("keeps no secret in clear in the database's files, and the key file 0600 beside it", async () => {
    expect(await server!.stop()).toBe(0);
    server = undefined;
    for (const file of fs.readdirSync(dataDir).filter((f) => f.startsWith("gateway.db"))) {
      expect(fs.readFileSync(path.join(dataDir, file)).includes(Buffer.from(SECRET)), file).toBe(false);
    }
    expect(fs.statSync(path.join(dataDir, "secrets.key")).mode & 0o777).toBe(0o600);
  });

  it("npm run rotate-secrets changes the key; the restarted gateway still hands the secret over", async () => {
    const keyBefore = fs.readFileSync(path.join(dataDir, "secrets.key"), "utf8");
    const { stdout } = await promisify(execFile)("npm", ["run", "--silent", "rotate-secrets"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", DATA_DIR: dataDir },
    });
    expect(stdout).toMatch(/re-sealed the env values of 4 version\(s\)/); // sec-fn's four; sec-nan has no env
    expect(fs.readFileSync(path.join(dataDir, "secrets.key"), "utf8")).not.toBe(keyBefore);
    server = await startServer({ dataDir, uidIndex: 8 });
    expect(generatedToken(server.stdout())).toBeNull();
    expect(await invokeJson("sec-fn", tokens.invoke)).toEqual({ key: SECRET, version: "2" });
  });
});

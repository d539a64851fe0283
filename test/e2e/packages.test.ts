import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  client,
  invocation,
  invocationId,
  type Json,
  register,
  removeDataDir,
  type Server,
  startServer,
  tempDataDir,
  uidBase,
  waitFor,
} from "./harness.js";

// Function packages through the real gateway: real pip and npm against the registries, the
// installers' own uid, the environments mounted at /packages under the full lock-down.

const TOKEN = "e2e-packages-token-0123456789";
const INSTALL_MS = 8 * 60_000;

let server: Server;
const dataDir = tempDataDir();
// The installers' uid sits in this server's uid block, above the sandbox slots, so checkouts running at once never share it.
const env = { GATEWAY_TOKEN: TOKEN, PACKAGES_UID: String(uidBase(0) + 99), PACKAGES_PARALLEL: "1" };
const call = client(
  () => server.url,
  () => TOKEN,
);

beforeAll(async () => {
  server = await startServer({ dataDir, env });
});
afterAll(async () => {
  if (server) await server.stop();
  removeDataDir(dataDir);
});

const PANDAS_CODE = `import numpy as np
import pandas as pd

def handler(request):
    frame = pd.DataFrame({"team": ["a", "b", "a"], "points": [1, 2, 3]})
    sums = frame.groupby("team")["points"].sum().to_dict()
    product = (np.array([[1, 2], [3, 4]]) @ np.array([[1], [1]])).ravel().tolist()
    return {"sums": {k: int(v) for k, v in sums.items()}, "product": product}
`;
const PANDAS_ANSWER = { sums: { a: 4, b: 2 }, product: [3, 7] };

const NODE_CODE = `import _ from "lodash";
import { z } from "zod";

export default async function () {
  const parsed = z.object({ n: z.number() }).parse({ n: 3 });
  return Response.json({ chunks: _.chunk([1, 2, 3, 4, 5], 2), n: parsed.n });
}
`;

async function getFunction(name: string): Promise<Json> {
  const res = await call(`/api/functions/${name}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Json;
}

/** Waits until `pick(function)` is a settled environment; returns the function. */
async function settled(name: string, pick: (fn: Json) => Json | null | undefined): Promise<Json> {
  let last: Json = {};
  await waitFor(
    async () => {
      last = await getFunction(name);
      const state = pick(last)?.state;
      return state === "ready" || state === "failed";
    },
    () => `the packages of ${name} to settle (last seen: ${JSON.stringify(pick(last))?.slice(0, 400)})`,
    INSTALL_MS,
  );
  return last;
}

async function invokeJson(name: string): Promise<{ status: number; body: Json; id: string }> {
  const res = await call(`/fn/${name}`);
  const id = invocationId(res);
  return { status: res.status, body: (await res.json()) as Json, id };
}

describe("a Python function with numpy and pandas", () => {
  it("answers 503 with Retry-After, logged as rejected, while its first version's packages install", async () => {
    const fn = await register(call, {
      name: "frames",
      runtime: "python",
      code: PANDAS_CODE,
      packages: ["pandas", "numpy>=1.26"],
      memory_mb: 512,
      timeout_ms: 30000,
    });
    expect(fn.packages).toEqual(["pandas", "numpy>=1.26"]);
    expect(fn.environment.key).toMatch(/^[0-9a-f]{64}$/);
    expect(["pending", "building"]).toContain(fn.environment.state);
    const res = await call("/fn/frames");
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(((await res.json()) as Json).error.code).toBe("packages_not_ready");
    expect((await invocation(call, invocationId(res))).status).toBe("rejected");
  });

  it("becomes ready with a lock of the exact versions and answers right under the lock-down", {
    timeout: INSTALL_MS + 60_000,
  }, async () => {
    const fn = await settled("frames", (f) => f.environment);
    expect(fn.environment, fn.environment.output).toMatchObject({ state: "ready", error: null });
    expect(fn.environment.lock.numpy).toMatch(/^\d+\.\d+/);
    expect(fn.environment.lock.pandas).toMatch(/^\d+\.\d+/);
    expect(fn.environment.size_bytes).toBeGreaterThan(10 * 2 ** 20);
    const answer = await invokeJson("frames");
    expect(answer.status, JSON.stringify(await invocation(call, answer.id))).toBe(200);
    expect(answer.body).toEqual(PANDAS_ANSWER);
  });

  it("shares the environment with a second function listing the same packages: nothing is installed again", async () => {
    const fn = await register(call, {
      name: "frames-2",
      runtime: "python",
      code: PANDAS_CODE,
      packages: ["numpy >= 1.26", "Pandas"],
      memory_mb: 512,
      timeout_ms: 30000,
    });
    const first = await getFunction("frames");
    expect(fn.environment.key).toBe(first.environment.key);
    expect(fn.environment.state).toBe("ready"); // at registration: no install was queued
    expect(fs.readdirSync(path.join(dataDir, "packages", "python"))).toEqual([first.environment.key]);
    expect((await invokeJson("frames-2")).body).toEqual(PANDAS_ANSWER);
  });
});

describe("a Node function with lodash and zod", () => {
  it("installs, becomes ready and answers", { timeout: INSTALL_MS + 60_000 }, async () => {
    await register(call, { name: "chunks", runtime: "node", code: NODE_CODE, packages: ["lodash@^4.17.0", "zod"] });
    const fn = await settled("chunks", (f) => f.environment);
    expect(fn.environment, fn.environment.output).toMatchObject({ state: "ready" });
    expect(fn.environment.lock.lodash).toMatch(/^4\.\d+\.\d+$/);
    expect(Object.keys(fn.environment.lock)).toContain("zod");
    const answer = await invokeJson("chunks");
    expect(answer.status, JSON.stringify(await invocation(call, answer.id))).toBe(200);
    expect(answer.body).toEqual({ chunks: [[1, 2], [3, 4], [5]], n: 3 });
  });
});

describe("a new version whose packages fail", () => {
  it.each([
    ["a package that does not exist", "fngw-no-such-package-a8d1c2", /no such package/],
    ["a package with only a source distribution", "docopt==0.6.2", /no wheel|source distribution/],
  ])(
    "%s: stored, never current; the previous version keeps serving and the failure is shown",
    { timeout: INSTALL_MS + 60_000 },
    async (_what, spec, reason) => {
      const res = await call("/api/functions/frames", { method: "PUT", json: { packages: ["numpy>=1.26", "pandas", spec] } });
      expect(res.status).toBe(200);
      const put = (await res.json()) as Json;
      expect(put.version).toBe(1);
      const pendingVersion = put.pending_version.version as number;
      expect(pendingVersion).toBeGreaterThan(1);
      const fn = await settled("frames", (f) => f.pending_version?.environment);
      expect(fn.version).toBe(1);
      expect(fn.pending_version).toMatchObject({ version: pendingVersion, environment: { state: "failed" } });
      expect(fn.pending_version.environment.error).toMatch(reason);
      const version = (await (await call(`/api/functions/frames/versions/${pendingVersion}`)).json()) as Json;
      expect(version.environment.state).toBe("failed");
      expect((await invokeJson("frames")).body).toEqual(PANDAS_ANSWER);
      const pinned = await call(`/fn/frames@${pendingVersion}`);
      expect(pinned.status).toBe(503);
      expect(((await pinned.json()) as Json).error.code).toBe("packages_failed");
    },
  );

  it("refuses a spec that is not a registry package with a 400 naming it, storing nothing", async () => {
    const res = await call("/api/functions/frames", { method: "PUT", json: { packages: ["numpy", "git+https://example.com/x.git"] } });
    expect(res.status).toBe(400);
    const body = (await res.json()) as Json;
    expect(body.error.code).toBe("invalid_packages");
    expect(body.error.message).toContain("packages[1]");
  });
});

describe("what a function sees of environments", () => {
  it("cannot write to its own environment nor see another function's", async () => {
    const code = `import os

def handler(request):
    seen = sorted(os.listdir("/packages"))
    try:
        open("/packages/planted.py", "w").write("x")
        wrote = True
    except OSError as error:
        wrote = error.strerror
    try:
        os.mkdir("/packages/numpy/planted")
        made = True
    except OSError as error:
        made = error.strerror
    elsewhere = [p for p in ("/packages/node_modules", "${dataDir}", "/data/packages") if os.path.exists(p)]
    return {"numpy": "numpy" in seen, "lodash": any("lodash" in name for name in seen), "wrote": wrote, "made": made, "elsewhere": elsewhere}
`;
    await call("/api/functions/frames-2", { method: "PUT", json: { code } });
    const answer = await invokeJson("frames-2");
    expect(answer.status, JSON.stringify(await invocation(call, answer.id))).toBe(200);
    expect(answer.body).toMatchObject({ numpy: true, lodash: false, elsewhere: [] });
    expect(answer.body.wrote).toMatch(/Read-only file system|Permission denied/);
    expect(answer.body.made).toMatch(/Read-only file system|Permission denied/);
  });

  it("a function without packages sees none, and a missing module gets a hint in its stored stderr", async () => {
    const code = `import os

def handler(request):
    print("packages:", os.listdir("/packages"))
    import requests
`;
    await register(call, { name: "bare", runtime: "python", code });
    const res = await call("/fn/bare");
    expect(res.status).toBe(500);
    const row = await invocation(call, invocationId(res));
    expect(row.stdout).toContain("packages: []");
    expect(row.stderr).toContain("ModuleNotFoundError: No module named 'requests'");
    expect(row.stderr).toContain("fngw: hint: 'requests' is not installed; add it to the function's packages");
  });

  it.each([
    ["an ES import", 'import _ from "lodash/fp";\nexport default () => Response.json(_.chunk(2)([1, 2, 3]));\n'],
    ["a require", 'module.exports = () => { require("@scope/missing/sub"); };\n'],
  ])("a Node function without packages gets the hint too, for %s", async (_what, code) => {
    const name = `bare-node-${code.length}`;
    await register(call, { name, runtime: "node", code });
    const res = await call(`/fn/${name}`);
    expect(res.status).toBe(500);
    const row = await invocation(call, invocationId(res));
    const missing = code.includes("lodash") ? "lodash" : "@scope/missing";
    expect(row.stderr, row.stderr).toContain(`fngw: hint: '${missing}' is not installed; add it to the function's packages`);
  });

  it("shows the environments' count and size in /healthz", async () => {
    const health = (await (await fetch(`${server.url}/healthz`)).json()) as Json;
    expect(health.packages.ready).toBe(true);
    expect(health.packages.environments).toBeGreaterThanOrEqual(2);
    expect(health.packages.bytes).toBeGreaterThan(10 * 2 ** 20);
    expect(health.packages.budget_bytes).toBe(4096 * 2 ** 20);
  });
});

describe("a restart", () => {
  it("keeps the environments and their locks: the functions answer at once, nothing is reinstalled", { timeout: 120_000 }, async () => {
    const before = await getFunction("frames");
    const record = path.join(dataDir, "packages", "python", before.environment.key, "environment.json");
    const recordBefore = fs.readFileSync(record, "utf8");
    expect(await server.stop()).toBe(0);
    server = await startServer({ dataDir, env });
    const after = await getFunction("frames");
    expect(after.environment).toEqual(before.environment);
    expect(after.pending_version.environment.state).toBe("failed");
    expect((await invokeJson("frames")).body).toEqual(PANDAS_ANSWER);
    expect((await invokeJson("chunks")).body).toEqual({ chunks: [[1, 2], [3, 4], [5]], n: 3 });
    expect(fs.readFileSync(record, "utf8")).toBe(recordBefore);
  });
});

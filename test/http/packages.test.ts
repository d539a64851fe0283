import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Runtime } from "../../src/core/runtimes.js";
import { type EnvironmentRecord, type EnvironmentState, environmentKey, PackageStore } from "../../src/packages/environments.js";
import { FunctionEnvironments } from "../../src/packages/function-environments.js";
import { missingPackageHint } from "../../src/packages/hints.js";
import { normalisePackages } from "../../src/packages/spec.js";
import { expectError, type Gateway, type Json, makeGateway, PY_HELLO, register, result, runScenarios } from "./harness.js";

// The `packages` setting over the API: validation (table), and how versions, invocations and
// /healthz follow the state of a real package store whose environments were left by an earlier run.

const python = (packages: unknown) => ({
  method: "POST",
  url: "/api/functions",
  json: { name: "p", runtime: "python", code: PY_HELLO, packages },
});
const node = (packages: unknown) => ({
  method: "POST",
  url: "/api/functions",
  json: { name: "n", runtime: "node", code: "export default () => 1", packages },
});

describe("packages validation", () => {
  let gw: Gateway;
  beforeAll(() => {
    gw = makeGateway();
  });
  afterAll(() => gw.close());

  const refused = (name: string, request: ReturnType<typeof python>, message: RegExp) => ({
    name,
    ...request,
    expectedStatus: 400,
    expectedError: "invalid_packages",
    expectedMessage: message,
    after: (g: Gateway) => expect(g.stores.functions.get(request.json.name)).toBeUndefined(),
  });
  runScenarios(
    () => gw,
    [
      refused("a pip option", python(["-e", "git+https://example.com/x.git"]), /packages\[0\].*pip options/),
      refused("a direct reference", python(["requests @ https://example.com/r.whl"]), /packages\[0\].*no URLs/),
      refused("a VCS URL", python(["numpy", "git+https://example.com/x.git"]), /packages\[1\]/),
      refused("an environment marker", python(["numpy; python_version > '3'"]), /environment markers/),
      refused("a path", python(["./wheels/numpy"]), /packages\[0\]/),
      refused("arbitrary equality", python(["numpy===1.0"]), /===/),
      refused("an invalid PEP 440 version", python(["numpy==1.0.0.dev.x"]), /PEP 440|not a requirement/),
      refused("one name with two constraints", python(["numpy==1.26.0", "NumPy==2.0.0"]), /listed twice/),
      refused("more than 32 entries", python(Array.from({ length: 33 }, (_, i) => `pkg${i}`)), /at most 32/),
      refused("a newline in a spec", python(["numpy\n--index-url=http://evil"]), /printable ASCII/),
      refused("an npm alias", node(["lodash-alias@npm:lodash@4"]), /aliases/),
      refused("a GitHub reference", node(["user/repo"]), /only registry packages/),
      refused("a file: spec", node(["file:../x"]), /packages\[0\]/),
      refused("a tarball URL", node(["https://example.com/x.tgz"]), /packages\[0\]/),
      refused("an npm option", node(["--registry=http://evil"]), /npm options/),
      refused("an invalid npm name", node(["_private"]), /invalid package name/),
      {
        name: "a list that is not an array",
        ...python("numpy"),
        expectedStatus: 400,
        expectedError: "invalid_request",
        expectedMessage: /packages/,
      },
      {
        name: "an entry that is not a string",
        ...python([1]),
        expectedStatus: 400,
        expectedError: "invalid_request",
        expectedMessage: /packages/,
      },
      {
        name: "a new version with a bad spec stores nothing",
        method: "PUT",
        url: "/api/functions/kept",
        json: { packages: ["numpy", "file:/etc"] },
        before: (g: Gateway) => register(g, { name: "kept" }),
        expectedStatus: 400,
        expectedError: "invalid_packages",
        expectedMessage: /packages\[1\]/,
        after: (g: Gateway) => expect(g.stores.functions.versions("kept")?.length).toBe(1),
      },
      {
        name: "valid packages on a gateway without a package store",
        ...python(["numpy>=2"]),
        expectedStatus: 503,
        expectedError: "packages_unavailable",
      },
      {
        name: "an empty list is no packages",
        ...python([]),
        expectedStatus: 201,
        after: async (_g: Gateway, _res: Response, text: string) =>
          expect(JSON.parse(text)).toMatchObject({ packages: [], environment: null, pending_version: null }),
      },
    ],
  );
});

// --- a real store with environments an earlier run left ------------------------------------

const VERSIONS: Record<Runtime, string> = { python: "3.12.0", node: "v20.0.0" };
const MiB = 2 ** 20;

/** Writes an environment as the store writes it, so that the store loads it at start. */
function leaveEnvironment(
  dataDir: string,
  runtime: Runtime,
  packages: string[],
  state: EnvironmentState,
  sizeBytes: number,
  lock = "",
): string {
  const key = environmentKey(runtime, VERSIONS[runtime], normalisePackages(runtime, packages));
  const dir = path.join(dataDir, "packages", runtime, key);
  fs.mkdirSync(path.join(dir, "tree"), { recursive: true });
  const now = new Date().toISOString();
  const record: EnvironmentRecord = {
    key,
    runtime,
    interpreterVersion: VERSIONS[runtime],
    packages: normalisePackages(runtime, packages).map((p) => p.spec),
    state,
    error: state === "failed" ? "fngw-missing: no such package on the package index" : null,
    output: "pip said things",
    sizeBytes,
    createdAt: now,
    updatedAt: now,
  };
  fs.writeFileSync(path.join(dir, "environment.json"), JSON.stringify(record));
  fs.writeFileSync(path.join(dir, "lock"), lock);
  return key;
}

describe("versions, invocations and /healthz over a package store", () => {
  let gw: Gateway;
  const storeDir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-http-packages-"));
  const six = leaveEnvironment(storeDir, "python", ["six"], "ready", 3 * MiB, "six==1.16.0\n");
  const broken = leaveEnvironment(storeDir, "python", ["fngw-missing"], "failed", 0);
  beforeAll(() => {
    // No install can start: every list these tests use is already in the store, and a new one does not fit (PACKAGES_MAX_MB).
    const store = new PackageStore({
      dataDir: storeDir,
      stagingDir: path.join(storeDir, "staging"),
      maxBytes: 3 * MiB,
      parallel: 1,
      graceMs: 0,
      limits: { uid: 299_990, timeoutMs: 1000, memoryMb: 64, outputCapBytes: 1024 },
      tools: {
        pythonBinary: "/nonexistent",
        nodeBinary: "/nonexistent",
        npmCli: "/nonexistent",
        confinement: { wrap: () => ["/bin/false"] } as never,
      },
      versions: VERSIONS,
      cgroups: [],
    });
    gw = makeGateway({}, { packages: (functions) => new FunctionEnvironments(store, functions, 3 * MiB, () => {}) });
  });
  afterAll(() => {
    gw.close();
    fs.rmSync(storeDir, { recursive: true, force: true });
  });

  it("shows a ready environment with its lock at registration, and mounts it for the function's invocations only", async () => {
    const fn = (await register(gw, { name: "with-six", packages: ["Six"] })) as Json;
    expect(fn.packages).toEqual(["Six"]);
    expect(fn.environment).toEqual({
      key: six,
      state: "ready",
      error: null,
      output: "pip said things",
      lock: { six: "1.16.0" },
      size_bytes: 3 * MiB,
    });
    expect((await gw.call("/fn/with-six")).status).toBe(200);
    expect(gw.runner.last.packagesDir).toBe(path.join(storeDir, "packages", "python", six, "tree"));
    await register(gw, { name: "without" });
    expect((await gw.call("/fn/without")).status).toBe(200);
    expect(gw.runner.last.packagesDir).toBeUndefined();
  });

  it("answers 503 for a first version whose packages failed, logged as rejected", async () => {
    await register(gw, { name: "first-broken", packages: ["fngw-missing"] });
    const calls = gw.runner.calls.length;
    const res = await gw.call("/fn/first-broken");
    const body = await expectError(res, 503, "packages_failed", /no such package/);
    expect(gw.runner.calls.length).toBe(calls);
    const row = (await (await gw.call(`/api/invocations/${body.error.invocation_id as string}`)).json()) as Json;
    expect(row).toMatchObject({ status: "rejected", http_status: 503 });
  });

  it("keeps the current version when a new one's packages failed, and shows the failure", async () => {
    await register(gw, { name: "keeps", packages: ["six"] });
    const res = await gw.call("/api/functions/keeps", { method: "PUT", json: { packages: ["fngw-missing"] } });
    expect(res.status).toBe(200);
    const fn = (await res.json()) as Json;
    expect(fn).toMatchObject({
      version: 1,
      packages: ["six"],
      pending_version: { version: 2, packages: ["fngw-missing"], environment: { key: broken, state: "failed" } },
    });
    expect((await gw.call("/fn/keeps")).status).toBe(200);
    await expectError(await gw.call("/fn/keeps@2"), 503, "packages_failed");
    // A fixed list that is ready replaces the pending version and becomes current.
    const fixed = (await (await gw.call("/api/functions/keeps", { method: "PUT", json: { packages: [] } })).json()) as Json;
    expect(fixed).toMatchObject({ version: 3, packages: [], environment: null, pending_version: null });
  });

  it("answers 507 for a new list when the store is full", async () => {
    await expectError(
      await gw.call("/api/functions", {
        method: "POST",
        json: { name: "full", runtime: "node", code: "export default () => 1", packages: ["lodash"] },
      }),
      507,
      "packages_storage_full",
      /PACKAGES_MAX_MB/,
    );
    expect(gw.stores.functions.get("full")).toBeUndefined();
  });

  it("appends a hint to the stored stderr when a module the packages do not list is missing", async () => {
    await register(gw, { name: "hinted", packages: ["six"] });
    gw.runner.script = () =>
      result({
        status: "error",
        exitCode: 1,
        errorMessage: "the function raised",
        stderr: { data: Buffer.from("ModuleNotFoundError: No module named 'requests.adapters'\n"), truncated: false },
      });
    const body = await expectError(await gw.call("/fn/hinted"), 500, "error");
    const row = (await (await gw.call(`/api/invocations/${body.error.invocation_id as string}`)).json()) as Json;
    expect(row.stderr).toBe(
      "ModuleNotFoundError: No module named 'requests.adapters'\nfngw: hint: 'requests' is not installed; add it to the function's packages\n",
    );
    gw.runner.script = () =>
      result({
        status: "error",
        exitCode: 1,
        errorMessage: "x",
        stderr: { data: Buffer.from("ModuleNotFoundError: No module named 'six'\n"), truncated: false },
      });
    const listed = await expectError(await gw.call("/fn/hinted"), 500, "error");
    const listedRow = (await (await gw.call(`/api/invocations/${listed.error.invocation_id as string}`)).json()) as Json;
    expect(listedRow.stderr).not.toContain("hint");
  });

  it("shows the store in /healthz", async () => {
    const health = (await (await gw.call("/healthz")).json()) as Json;
    expect(health.packages).toEqual({ ready: true, environments: 2, bytes: 3 * MiB, budget_bytes: 3 * MiB });
  });
});

describe("the missing-package hint", () => {
  it.each([
    ["python", "ModuleNotFoundError: No module named 'yaml'\n", [], "yaml"],
    ["python", "ModuleNotFoundError: No module named 'requests.adapters'\n", ["numpy"], "requests"],
    ["python", "ModuleNotFoundError: No module named 'Foo_Bar'\n", ["foo-bar"], null],
    ["python", "ImportError: attempted relative import with no known parent package\n", [], null],
    ["node", "Error: Cannot find module 'lodash/fp'\nRequire stack:\n- /function.js\n", [], "lodash"],
    ["node", "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'zod' imported from /tmp/function.mjs\n", ["lodash@^4"], "zod"],
    [
      "node",
      'TypeError [ERR_UNSUPPORTED_RESOLVE_REQUEST]: Failed to resolve module specifier "@scope/pkg/sub" from "data:..."\n',
      [],
      "@scope/pkg",
    ],
    ["node", "Error: Cannot find module 'lodash'\n", ["lodash@4.17.21"], null],
    ["node", "Error: Cannot find module './local.js'\n", [], null],
    ["node", "Error: Cannot find module 'node:nothing'\n", [], null],
  ] as const)("%s: %j with packages %j → %s", (runtime, stderr, packages, missing) => {
    const hint = missingPackageHint(runtime, stderr, packages);
    expect(hint).toBe(missing === null ? null : `fngw: hint: '${missing}' is not installed; add it to the function's packages`);
  });
});

// A gateway over a real package store left with ready, failed and pending environments: what a
// version whose packages are (not) ready answers, what it shows, and what /healthz says. The
// store must be root's (its staging directory is refused otherwise), hence the privileged project.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InterpreterKind } from "../../src/core/runtimes.js";
import { type EnvironmentRecord, type EnvironmentState, environmentKey, PackageStore } from "../../src/packages/environments.js";
import { FunctionEnvironments } from "../../src/packages/function-environments.js";
import { normalisePackages } from "../../src/packages/spec.js";
import { expectError, type Gateway, type Json, makeGateway, register, result } from "../http/harness.js";

const VERSIONS: Record<InterpreterKind, string> = { python: "3.12.0", node: "v20.0.0" };
const MiB = 2 ** 20;

/** Writes an environment as the store writes it, so that the store loads it at start. */
function leaveEnvironment(
  dataDir: string,
  runtime: InterpreterKind,
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
  beforeAll(async () => {
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
    gw = await makeGateway(
      {},
      {
        packages: ({ store: shared, cluster }) =>
          FunctionEnvironments.start({
            store,
            shared,
            functions: cluster.functions,
            node: cluster.node,
            budgetBytes: 3 * MiB,
            graceMs: 0,
          }),
      },
    );
  });
  afterAll(async () => {
    await gw.close();
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
      // Built here before environments were shared: this node's lock is now the stored one.
      resolved_by: gw.cluster.node,
      node: gw.cluster.node,
    });
    expect((await gw.call("/fn/with-six")).status).toBe(200);
    expect(gw.runner.last.packagesDir).toBe(path.join(storeDir, "packages", "python", six, "tree"));
    await register(gw, { name: "without" });
    expect((await gw.call("/fn/without")).status).toBe(200);
    expect(gw.runner.last.packagesDir).toBeUndefined();
  });

  it("mounts a ready environment without reading the database: its state is kept in memory", async () => {
    const queries = await gw.queriesDuring(() => gw.call("/fn/with-six"));
    expect(gw.runner.last.packagesDir).toBe(path.join(storeDir, "packages", "python", six, "tree"));
    expect(queries.length).toBeGreaterThan(0); // its log row was written: the observation works
    expect(queries.filter((sql) => /^\s*select/i.test(sql) && /"(environments|functions|function_versions)"/.test(sql))).toEqual([]);
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
    expect(gw.cluster.functions.get("full")).toBeUndefined();
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

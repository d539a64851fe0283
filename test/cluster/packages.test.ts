import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { invocation, register, waitFor } from "../e2e/harness.js";
import { answersUntilReady, type Cluster, environmentOnDisk, installerEnded, type Json, logLines, startCluster } from "./harness.js";

// Function packages on two gateways sharing one PostgreSQL database: real pip and npm against the
// registries. The first node to need a list resolves it and stores its lock; every other node
// builds its own environment from that lock, and serves the version only once it has.

const INSTALL_MS = 4 * 60_000;
const LEASE_MS = 3000;
let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster(2, { NODE_LEASE_MS: String(LEASE_MS), PACKAGES_PARALLEL: "1" });
}, 120_000);
afterAll(async () => {
  await cluster?.stop();
}, 120_000);

const node = (k: number) => cluster.nodes[k]!;
const SIX_CODE = 'import six\n\ndef handler(request):\n    return {"six": six.__version__}\n';
const IS_NUMBER_CODE = 'import isNumber from "is-number";\nexport default () => Response.json({ n: isNumber("42") });\n';

async function functionOn(k: number, name: string): Promise<Json> {
  const res = await node(k).call(`/api/functions/${name}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Json;
}

describe("a function with packages deployed on A", () => {
  it(
    "answers 503 packages_not_ready with Retry-After on B until B built its own environment from A's lock, then 200",
    async () => {
      const fn = await register(node(0).call, { name: "sixed", runtime: "python", code: SIX_CODE, packages: ["six"] });
      const key = fn.environment.key as string;
      const before = await answersUntilReady(node(1), "sixed", INSTALL_MS);
      // B knew the function before any node had its packages: it refused, never ran without them.
      expect(before.length).toBeGreaterThan(0);
      for (const answer of before)
        expect(answer).toMatchObject({ status: 503, code: "packages_not_ready", retryAfter: expect.stringMatching(/^\d+$/) });
      const refused = await invocation(node(1).call, before[0]!.id);
      expect(refused).toMatchObject({ status: "rejected", http_status: 503, node: node(1).id });

      const onA = await (await node(0).call("/fn/sixed")).json();
      const onB = await (await node(1).call("/fn/sixed")).json();
      expect(onB).toEqual(onA);

      // The same lock everywhere: the one A resolved, installed on B exactly, under the same key.
      const [a, b] = [await functionOn(0, "sixed"), await functionOn(1, "sixed")];
      expect(a.environment).toMatchObject({ key, state: "ready", resolved_by: node(0).id, node: node(0).id });
      expect(b.environment).toMatchObject({ key, state: "ready", resolved_by: node(0).id, node: node(1).id });
      expect(b.environment.lock).toEqual(a.environment.lock);
      expect(a.environment.lock.six).toBe(onA.six);
      const [diskA, diskB] = [environmentOnDisk(node(0), "python", key)!, environmentOnDisk(node(1), "python", key)!];
      expect(diskB.lock).toBe(diskA.lock);
      expect(diskA.record).toMatchObject({ state: "ready", fromLock: false });
      expect(diskB.record).toMatchObject({ state: "ready", fromLock: true });
    },
    INSTALL_MS + 60_000,
  );

  it(
    "works the other way for npm: deployed on B, A installs B's package-lock.json with npm ci",
    async () => {
      const fn = await register(node(1).call, { name: "numbered", runtime: "node", code: IS_NUMBER_CODE, packages: ["is-number@^7"] });
      const key = fn.environment.key as string;
      const before = await answersUntilReady(node(0), "numbered", INSTALL_MS);
      for (const answer of before) expect(answer).toMatchObject({ status: 503, code: "packages_not_ready" });
      expect(await (await node(0).call("/fn/numbered")).json()).toEqual({ n: true });
      expect(await (await node(1).call("/fn/numbered")).json()).toEqual({ n: true });
      const [diskA, diskB] = [environmentOnDisk(node(0), "node", key)!, environmentOnDisk(node(1), "node", key)!];
      expect(diskA.lock).toBe(diskB.lock);
      expect(JSON.parse(diskA.lock).packages["node_modules/is-number"].version).toMatch(/^7\./);
      expect(diskA.record).toMatchObject({ state: "ready", fromLock: true });
      expect(diskB.record).toMatchObject({ state: "ready", fromLock: false });
      expect((await functionOn(0, "numbered")).environment).toMatchObject({
        resolved_by: node(1).id,
        lock: { "is-number": expect.any(String) },
      });
    },
    INSTALL_MS + 60_000,
  );
});

describe("a new version with other packages", () => {
  it(
    "becomes current once, made so by the node that built it first; the other builds it on notification",
    async () => {
      await register(node(0).call, { name: "staged", runtime: "python", code: 'def handler(request):\n    return {"v": 1}\n' });
      await waitFor(async () => (await node(1).call("/fn/staged")).status === 200, "B to serve version 1");
      const res = await node(0).call("/api/functions/staged", { method: "PUT", json: { code: SIX_CODE, packages: ["six<1.17"] } });
      expect(res.status).toBe(200);
      const stored = (await res.json()) as Json;
      expect(stored).toMatchObject({ version: 1, pending_version: { version: 2, packages: ["six<1.17"] } });
      const key = stored.pending_version.environment.key as string;
      // Version 1 keeps serving on both until version 2 is current.
      expect(await (await node(1).call("/fn/staged")).json()).toEqual({ v: 1 });

      await waitFor(
        async () => {
          const [a, b] = await Promise.all([functionOn(0, "staged"), functionOn(1, "staged")]);
          return a.version === 2 && b.version === 2 && b.environment.state === "ready";
        },
        "version 2 to be current with its packages ready on both",
        INSTALL_MS,
      );
      for (const k of [0, 1]) expect(((await (await node(k).call("/fn/staged")).json()) as Json).six).toMatch(/^1\.1[0-6]\./);
      const promoted = /^function staged: version 2 is current/;
      expect([logLines(node(0), promoted), logLines(node(1), promoted)]).toEqual([1, 0]);
      expect(environmentOnDisk(node(1), "python", key)!.record).toMatchObject({ state: "ready", fromLock: true });
    },
    2 * INSTALL_MS + 60_000,
  );

  it(
    "whose packages fail stays pending on every node with the failure shown; B installs nothing",
    async () => {
      const res = await node(0).call("/api/functions/staged", { method: "PUT", json: { packages: ["fngw-no-such-package-0a1b"] } });
      expect(res.status).toBe(200);
      const key = ((await res.json()) as Json).pending_version.environment.key as string;
      await waitFor(
        async () => (await functionOn(1, "staged")).pending_version?.environment?.state === "failed",
        "B to show the failure",
        INSTALL_MS,
      );
      for (const k of [0, 1]) {
        const fn = await functionOn(k, "staged");
        expect(fn).toMatchObject({
          version: 2,
          pending_version: {
            version: 3,
            environment: {
              key,
              state: "failed",
              error: "fngw-no-such-package-0a1b: no such package on the package index",
              resolved_by: node(0).id,
            },
          },
        });
        expect((await node(k).call("/fn/staged")).status).toBe(200);
      }
      expect(environmentOnDisk(node(1), "python", key)).toBeNull();
    },
    INSTALL_MS + 60_000,
  );
});

describe("a resolver that dies before storing its lock", () => {
  it(
    "is taken over by a live node once its lease ran out: that node resolves the list and serves it",
    async () => {
      const fn = await register(node(0).call, { name: "orphaned", runtime: "python", code: SIX_CODE, packages: ["six", "packaging"] });
      const key = fn.environment.key as string;
      await node(0).server.kill();
      const before = await answersUntilReady(node(1), "orphaned", INSTALL_MS);
      for (const answer of before) expect(answer).toMatchObject({ status: 503, code: "packages_not_ready" });
      expect(await functionOn(1, "orphaned")).toMatchObject({ environment: { key, state: "ready", resolved_by: node(1).id } });
      expect(logLines(node(1), new RegExp(`^package environment ${key}: node ${node(0).id} is gone`))).toBe(1);
      // The kill left A's installer running: it ends on its own, then its staging directory goes.
      await installerEnded(0, INSTALL_MS);
    },
    INSTALL_MS + 60_000,
  );
});

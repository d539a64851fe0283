import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type EnvironmentRecord,
  environmentKey,
  normalisePackages,
  PackageSpecError,
  PackagesFullError,
} from "../../src/packages/index.js";
import { closeStore, openStore, type StoreHandle } from "./harness.js";

// Real installs from PyPI and the npm registry, as the installers' uid.

const INSTALL_TIMEOUT = 240_000;
let handle: StoreHandle;
const settle = (record: EnvironmentRecord) => handle.store.settledRecord(record.key);
const envDir = (record: EnvironmentRecord) => path.join(handle.dataDir, "packages", record.runtime, record.key);

beforeAll(() => {
  handle = openStore();
});
afterAll(() => closeStore(handle));

describe("a Python environment (numpy + pandas)", () => {
  let record: EnvironmentRecord;
  beforeAll(async () => {
    const requested = handle.store.request("python", normalisePackages("python", ["pandas", "NumPy>=2"]));
    expect(["pending", "building"]).toContain(requested.state); // the caller is answered before the install
    record = await settle(requested);
  }, INSTALL_TIMEOUT);

  it("is built and records its lock beside it", () => {
    expect(record.error).toBeNull();
    expect(record.state).toBe("ready");
    expect(record.packages).toEqual(["numpy>=2", "pandas"]);
    const lock = handle.store.lock(record.key)!;
    expect(lock).toMatch(/^numpy==2\.\d+\.\d+$/m);
    expect(lock).toMatch(/^pandas==\d+\.\d+\.\d+$/m);
    expect(fs.readFileSync(path.join(envDir(record), "lock"), "utf8")).toBe(lock);
    expect(fs.existsSync(path.join(handle.store.treeDir(record.key)!, "numpy", "__init__.py"))).toBe(true);
    expect(record.sizeBytes).toBeGreaterThan(10 * 2 ** 20);
    expect(record.output).toMatch(/Successfully installed/);
  });

  it("is root-owned and read-only: directories 0755, files 0644, no sandbox uid can write it", () => {
    const tree = handle.store.treeDir(record.key)!;
    const modes = new Set<string>();
    const walk = (dir: string) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        const stat = fs.lstatSync(full);
        expect(stat.uid).toBe(0);
        if (!entry.isSymbolicLink()) modes.add(`${entry.isDirectory() ? "d" : "f"}${(stat.mode & 0o7777).toString(8)}`);
        if (entry.isDirectory()) walk(full);
      }
    };
    walk(tree);
    expect([...modes].sort()).toEqual(["d755", "f644"]);
    const sandboxUid = 300_000 + Number(process.env.TEST_UID_OFFSET ?? "0") + 1000;
    const attempt = spawnSync("/bin/sh", ["-c", `echo x > '${tree}/numpy/__init__.py' || exit 3; echo y > '${tree}/new.py' || exit 4`], {
      uid: sandboxUid,
      gid: sandboxUid,
    });
    expect(attempt.status).toBe(3);
    expect(fs.readFileSync(path.join(tree, "numpy", "__init__.py"), "utf8")).not.toBe("x\n");
    expect(fs.existsSync(path.join(tree, "new.py"))).toBe(false);
  });

  it("is shared by the same list written differently, and a second request installs nothing", () => {
    const before = fs.statSync(path.join(envDir(record), "environment.json")).mtimeMs;
    const again = handle.store.request("python", normalisePackages("python", ["numpy >= 2", "Pandas", "pandas"]));
    expect(again.key).toBe(record.key);
    expect(again.state).toBe("ready");
    expect(fs.statSync(path.join(envDir(record), "environment.json")).mtimeMs).toBe(before);
  });

  it("leaves nothing in the staging directory", () => {
    expect(fs.readdirSync(handle.stagingDir).filter((name) => !name.startsWith("."))).toEqual([]);
  });
});

describe("a Node environment (lodash + zod)", () => {
  it(
    "is built with its package-lock.json",
    async () => {
      const record = await settle(handle.store.request("node", normalisePackages("node", ["zod", "lodash@4"])));
      expect(record.error).toBeNull();
      expect(record.state).toBe("ready");
      const lock = JSON.parse(handle.store.lock(record.key)!) as { packages: Record<string, { version?: string }> };
      expect(lock.packages["node_modules/lodash"]?.version).toMatch(/^4\./);
      expect(lock.packages["node_modules/zod"]?.version).toMatch(/^\d+\./);
      const tree = handle.store.treeDir(record.key)!;
      expect(JSON.parse(fs.readFileSync(path.join(tree, "package.json"), "utf8"))).toMatchObject({
        private: true,
        dependencies: { lodash: "4", zod: "*" },
      });
      expect(fs.existsSync(path.join(tree, "node_modules", "lodash", "lodash.js"))).toBe(true);
    },
    INSTALL_TIMEOUT,
  );
});

describe("an environment installed from a stored lock (another node resolved it)", () => {
  /** Another node's store: its own data directory, the same interpreters. */
  let other: StoreHandle;
  beforeAll(() => {
    other = openStore();
  });
  afterAll(() => closeStore(other));
  /** A list as the database holds it: normalised, under the key every node computes. */
  const shared = (runtime: "python" | "node", packages: string[], interpreterVersion = other.interpreters[runtime].version) => {
    const normalised = normalisePackages(runtime, packages);
    return {
      key: environmentKey(runtime, interpreterVersion, normalised),
      runtime,
      interpreterVersion,
      packages: normalised.map((p) => p.spec),
    };
  };

  it(
    "gets exactly the lock's pins, not what resolving the list would pick (pip --no-deps)",
    async () => {
      const installed = await other.store.settledRecord(other.store.install(shared("python", ["six"]), "six==1.15.0\n").key);
      expect(installed, installed.output).toMatchObject({ state: "ready", fromLock: true, error: null });
      expect(other.store.lock(installed.key)).toBe("six==1.15.0\n");
      expect(fs.readFileSync(path.join(other.store.treeDir(installed.key)!, "six.py"), "utf8")).toMatch(/__version__ = "1\.15\.0"/);
    },
    INSTALL_TIMEOUT,
  );

  it(
    "gets the same package-lock.json as the node that resolved it (npm ci)",
    async () => {
      const resolved = await settle(handle.store.request("node", normalisePackages("node", ["is-number@^6"])));
      const lock = handle.store.lock(resolved.key)!;
      const installed = await other.store.settledRecord(other.store.install(resolved, lock).key);
      expect(installed, installed.output).toMatchObject({ key: resolved.key, state: "ready", fromLock: true, error: null });
      expect(other.store.lock(installed.key)).toBe(lock);
      expect(JSON.parse(lock).packages["node_modules/is-number"].version).toMatch(/^6\./);
      expect(fs.existsSync(path.join(other.store.treeDir(installed.key)!, "node_modules", "is-number", "index.js"))).toBe(true);
    },
    INSTALL_TIMEOUT,
  );

  it.each([
    ["python", "six==1.16.0\n--index-url=https://example.com/simple\n", /no exact pin/],
    [
      "node",
      JSON.stringify({
        lockfileVersion: 3,
        packages: { "node_modules/x": { version: "1.0.0", resolved: "git+https://example.com/x.git" } },
      }),
      /not a registry package/,
    ],
  ] as const)("refuses a %s lock with anything but registry packages, and runs no installer", async (runtime, lock, message) => {
    const failed = await other.store.settledRecord(other.store.install(shared(runtime, ["fngw-refused-lock"]), lock).key);
    expect(failed).toMatchObject({ state: "failed", fromLock: true, output: "" });
    expect(failed.error).toMatch(message);
  });

  it("refuses a list that is not the one its key was computed from, and installs nothing", () => {
    const forged = { ...shared("python", ["idna"]), packages: ["idna", "git+https://example.com/x.git"] };
    const failed = other.store.install(forged, null);
    expect(failed).toMatchObject({ state: "failed", error: "the environment's list does not match its key (refused)" });
    expect(() => other.store.install({ ...forged, key: "../../etc" }, null)).toThrow(/not an environment key/);
  });

  it("fails at once for another interpreter version, saying so", () => {
    const failed = other.store.install(shared("python", ["six"], "3.0.1"), "six==1.16.0\n");
    expect(failed).toMatchObject({ state: "failed", fromLock: true });
    expect(failed.error).toBe(`this environment is for python 3.0.1 and this node runs ${other.interpreters.python.version}`);
  });
});

describe("failures say why", () => {
  it("refuses a bad spec before anything is queued", () => {
    expect(() => normalisePackages("python", ["requests @ https://example.com/r.whl"])).toThrow(PackageSpecError);
    expect(() => normalisePackages("node", ["lodash@npm:underscore"])).toThrow(/aliases/);
  });

  it.each([
    ["python", "this-package-does-not-exist-fngw", /this-package-does-not-exist-fngw: no such package on the package index/],
    ["node", "this-package-does-not-exist-fngw", /this-package-does-not-exist-fngw: no such package in the npm registry/],
    ["python", "docopt==0.6.2", /docopt has no wheel .* only a source distribution, which needs a build step/],
    ["python", "numpy>=999", /numpy: no release matches >=999/],
  ] as const)(
    "%s %s",
    async (runtime, spec, message) => {
      const record = await settle(handle.store.request(runtime, normalisePackages(runtime, [spec])));
      expect(record.state).toBe("failed");
      expect(record.error).toMatch(message);
      expect(handle.store.treeDir(record.key)).toBeNull();
      expect(fs.existsSync(path.join(envDir(record), "tree"))).toBe(false);
    },
    INSTALL_TIMEOUT,
  );
});

describe("the store", () => {
  it(
    "keeps environments across a restart",
    async () => {
      const record = await settle(handle.store.request("node", normalisePackages("node", ["lodash@4", "zod"])));
      const reopened = openStore({ PACKAGES_STAGING_DIR: path.join(handle.dataDir, "staging-2") }, handle.dataDir);
      try {
        expect(reopened.store.get(record.key)).toMatchObject({ state: "ready", packages: ["lodash@4", "zod@*"] });
        expect(reopened.store.lock(record.key)).toBe(handle.store.lock(record.key));
      } finally {
        await reopened.close();
      }
    },
    INSTALL_TIMEOUT,
  );

  it("refuses new environments past PACKAGES_MAX_MB, with a clear error", async () => {
    const full = openStore({ PACKAGES_MAX_MB: "1", PACKAGES_STAGING_DIR: path.join(handle.dataDir, "staging-3") }, handle.dataDir);
    try {
      expect(full.store.usageBytes()).toBeGreaterThan(2 ** 20);
      expect(() => full.store.request("node", normalisePackages("node", ["date-fns"]))).toThrow(PackagesFullError);
      expect(() => full.store.request("node", normalisePackages("node", ["date-fns"]))).toThrow(/of the 1 MB allowed \(PACKAGES_MAX_MB\)/);
    } finally {
      await full.close();
    }
  });

  it(
    "fails an environment that would not fit in what is left",
    async () => {
      const small = openStore({ PACKAGES_MAX_MB: "1" });
      try {
        const record = await small.store.settledRecord(small.store.request("node", normalisePackages("node", ["lodash@4"])).key);
        expect(record.state).toBe("failed");
        expect(record.error).toMatch(/the environment is larger than 1 MB/);
        expect(small.store.usageBytes()).toBe(0);
      } finally {
        await closeStore(small);
      }
    },
    INSTALL_TIMEOUT,
  );

  it(
    "stops an install that outlives PACKAGES_TIMEOUT_MS",
    async () => {
      const slow = openStore({ PACKAGES_TIMEOUT_MS: "1000" });
      try {
        const record = await slow.store.settledRecord(slow.store.request("python", normalisePackages("python", ["numpy"])).key);
        expect(record.state).toBe("failed");
        expect(record.error).toMatch(/took longer than 1000 ms and was stopped/);
      } finally {
        await closeStore(slow);
      }
    },
    INSTALL_TIMEOUT,
  );

  it("refuses a staging directory that is a link or someone else's, and leaves it untouched", () => {
    const elsewhere = fs.mkdtempSync(path.join(handle.dataDir, "elsewhere-"));
    const link = path.join(handle.dataDir, "staging-link");
    fs.symlinkSync(elsewhere, link);
    expect(() => openStore({ PACKAGES_STAGING_DIR: link }, handle.dataDir)).toThrow(/must be a directory owned by root/);
    const theirs = path.join(handle.dataDir, "staging-theirs");
    fs.mkdirSync(theirs, { mode: 0o700 });
    fs.chownSync(theirs, handle.uid + 1, handle.uid + 1);
    expect(() => openStore({ PACKAGES_STAGING_DIR: theirs }, handle.dataDir)).toThrow(/must be a directory owned by root/);
    expect(fs.statSync(elsewhere).mode & 0o777).toBe(0o700);
    expect(fs.statSync(theirs).uid).toBe(handle.uid + 1);
  });

  it("removes environments nobody references once the grace period is over", async () => {
    const kept = await settle(handle.store.request("node", normalisePackages("node", ["lodash@4", "zod"])));
    const unused = handle.store.request("node", normalisePackages("node", ["this-package-does-not-exist-fngw"]));
    handle.store.markReferenced([kept.key]);
    expect(handle.store.sweep()).toEqual([]); // within the grace period
    const removed = handle.store.sweep(Date.now() + 25 * 3600_000);
    expect(removed).toContain(unused.key);
    expect(removed).not.toContain(kept.key);
    expect(handle.store.get(unused.key)).toBeNull();
    expect(fs.existsSync(envDir(unused))).toBe(false);
    expect(handle.store.get(kept.key)?.state).toBe("ready");
  });
});

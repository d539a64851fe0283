import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDatabase } from "../../scripts/postgres.js";
import { loadConfig } from "../../src/core/config.js";
import { settingsOfCreate } from "../../src/core/settings.js";
import type { Change, Store } from "../../src/store/contract.js";
import { openStore } from "../../src/store/index.js";
import { loadSecretBox } from "../../src/store/secrets.js";
import { waitFor } from "../e2e/harness.js";

// The shared package environments (EnvironmentRecords) on the engine TEST_STORE names: each list
// is resolved once, its first lock or failure stored for every gateway, and the rows no version
// refers to pruned. On PostgreSQL a second store on the same database stands for a second gateway.

const ENGINE = process.env.TEST_STORE === "postgres" ? "postgres" : "sqlite";
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "fngw-environments-"));
let store: Store;
/** Another gateway's view of the database (the same store on SQLite, which has one gateway). */
let other: Store;
const heard: Change[] = [];

beforeAll(async () => {
  const databaseUrl = ENGINE === "postgres" ? await createDatabase(inject("postgresUrl")) : undefined;
  const config = loadConfig({ DATA_DIR: dataDir, ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}) });
  const sealer = loadSecretBox(config).box;
  store = await openStore(config, sealer);
  other = databaseUrl ? await openStore(config, sealer) : store;
  let listening = false;
  other.changes.subscribe(
    (change) => heard.push(change),
    () => {
      listening = true;
    },
  );
  if (databaseUrl) await waitFor(() => listening, "the second store to listen");
});
afterAll(async () => {
  if (other !== store) await other?.close();
  await store?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

let keys = 0;
const identity = () => ({
  key: `${++keys}`.padStart(64, "0"),
  runtime: "python" as const,
  interpreterVersion: "3.11.7",
  packages: ["six"],
});
const heardOf = (key: string) => waitFor(() => heard.some((c) => c.kind === "environment" && c.key === key), `a change to ${key}`, 5000);

describe("shared package environments", () => {
  it("are registered once: a second node asking for the same list gets the first one's row, resolver included", async () => {
    const env = identity();
    const first = await store.environments.register(env, "node-a");
    expect(first).toMatchObject({ ...env, resolver: "node-a", lock: null, error: null, output: "" });
    const second = await other.environments.register(env, "node-b");
    expect(second).toMatchObject({ key: env.key, resolver: "node-a", createdAt: first.createdAt });
    expect(second.usedAt).toBeGreaterThanOrEqual(first.usedAt);
    expect(await other.environments.all()).toContainEqual(second);
  });

  it("keep the first lock stored, and every gateway hears of it", async () => {
    const env = identity();
    await store.environments.register(env, "node-a");
    const resolved = await store.environments.resolve(env.key, "six==1.16.0\n", "node-a");
    expect(resolved).toMatchObject({ lock: "six==1.16.0\n", resolver: "node-a" });
    await heardOf(env.key);
    // A second resolver (one that took over, or raced) stores nothing: every node installs the first lock.
    expect(await other.environments.resolve(env.key, "six==1.17.0\n", "node-b")).toMatchObject({
      lock: "six==1.16.0\n",
      resolver: "node-a",
    });
    expect(await other.environments.fail(env.key, { error: "late", output: "" }, "node-b")).toMatchObject({
      lock: "six==1.16.0\n",
      error: null,
    });
  });

  it("keep a failure for every node, storable on both engines (NUL as U+FFFD)", async () => {
    const env = identity();
    await store.environments.register(env, "node-a");
    const failed = await store.environments.fail(env.key, { error: "six: no such package\0", output: "pip\0said" }, "node-a");
    expect(failed).toMatchObject({ lock: null, error: "six: no such package\uFFFD", output: "pip\uFFFDsaid", resolver: "node-a" });
    expect(await other.environments.resolve(env.key, "six==1.16.0\n", "node-b")).toMatchObject({ lock: null, error: failed!.error });
  });

  it("are taken over only from the resolver named, and only before anything is stored", async () => {
    const env = identity();
    await store.environments.register(env, "node-a");
    expect(await other.environments.takeOver(env.key, "node-x", "node-b")).toBe(false);
    expect(await other.environments.takeOver(env.key, "node-a", "node-b")).toBe(true);
    expect(await store.environments.takeOver(env.key, "node-a", "node-c")).toBe(false);
    expect((await store.environments.get(env.key))?.resolver).toBe("node-b");
    await other.environments.resolve(env.key, "six==1.16.0\n", "node-b");
    expect(await store.environments.takeOver(env.key, "node-b", "node-c")).toBe(false);
  });

  it("are pruned when no version refers to them and they were last used before the limit", async () => {
    const [referred, unused, recent] = [identity(), identity(), identity()];
    for (const env of [referred, unused, recent]) await store.environments.register(env, "node-a");
    await store.functions.create(
      `uses-${referred.key.slice(-4)}`,
      settingsOfCreate(loadConfig({}), { runtime: "python", code: "x = 1\n" }),
      referred.key,
    );
    await delay(5);
    const limit = Date.now();
    await delay(5);
    await other.environments.register(recent, "node-b"); // the same list asked for again: its use moves on
    expect(await store.environments.prune(limit)).toBeGreaterThanOrEqual(1);
    const left = new Set((await other.environments.all()).map((row) => row.key));
    expect([left.has(referred.key), left.has(unused.key), left.has(recent.key)]).toEqual([true, false, true]);
  });
});

import { describe, expect, it } from "vitest";
import { runOne, settingsOf, useTestStore } from "./harness.js";

// Functions and their versions.

const db = useTestStore();
const functions = () => db.store.functions;

describe("create", () => {
  it("registers version 1, current at once, and reads back every setting", async () => {
    const settings = settingsOf({
      runtime: "node",
      code: "export default () => 'ü'\n",
      timeoutMs: 2500,
      memoryMb: 128,
      network: true,
      env: { API_KEY: "sëcret", EMPTY: "" },
      public: true,
      maxConcurrency: 3,
      packages: ["left-pad@1.3.0"],
      isolation: "function",
    });
    const created = await functions().create("f", settings, "env-key-1");
    expect(created).toMatchObject({ name: "f", version: 1, ...settings, environmentKey: "env-key-1", pendingVersion: null, revision: 1 });
    const current = await functions().current("f");
    expect(current).toEqual(created);
    expect(await functions().version("f", 1)).toEqual({
      name: "f",
      version: 1,
      ...settings,
      environmentKey: "env-key-1",
      createdAt: created!.createdAt,
    });
  });

  it("answers null when the name is taken, and leaves the function as it was", async () => {
    await functions().create("f", settingsOf({ code: "first = 1\n" }), null);
    expect(await functions().create("f", settingsOf({ code: "second = 1\n" }), null)).toBeNull();
    expect(await functions().current("f")).toMatchObject({ version: 1, code: "first = 1\n" });
    expect(await db.number("select count(*) from function_versions where function_name = ?", "f")).toBe(1);
  });

  it("answers undefined for an unknown function", async () => {
    expect(await functions().current("nope")).toBeUndefined();
    expect(await functions().version("nope", 1)).toBeUndefined();
    expect(await functions().versions("nope")).toBeUndefined();
    expect(await functions().addVersion("nope", settingsOf(), null, true)).toBeNull();
    expect(await functions().promote("nope", 2)).toBe(false);
  });
});

describe("addVersion", () => {
  it("numbers versions after the newest and makes each current; versions lists them newest first", async () => {
    await functions().create("f", settingsOf({ code: "v = 1\n" }), null);
    const second = await functions().addVersion("f", settingsOf({ code: "v = 2\n" }), null, true);
    expect(second?.stored).toMatchObject({ name: "f", version: 2, code: "v = 2\n" });
    expect(second?.current).toMatchObject({ version: 2, code: "v = 2\n", pendingVersion: null });
    const third = await functions().addVersion("f", settingsOf({ code: "v = 3\n" }), "env-3", true);
    expect(third?.stored.version).toBe(3);
    expect((await functions().versions("f"))?.map((v) => [v.version, v.code, v.environmentKey])).toEqual([
      [3, "v = 3\n", "env-3"],
      [2, "v = 2\n", null],
      [1, "v = 1\n", null],
    ]);
    expect((await functions().version("f", 2))?.code).toBe("v = 2\n");
  });

  it("records a version stored without makeCurrent as pending, and promote makes it current once", async () => {
    await functions().create("f", settingsOf(), null);
    const pending = await functions().addVersion("f", settingsOf({ code: "pending = 1\n" }), "env-p", false);
    expect(pending?.stored.version).toBe(2);
    expect(pending?.current).toMatchObject({ version: 1, pendingVersion: 2 });
    expect(await functions().pendingVersions()).toEqual([{ name: "f", version: 2, environmentKey: "env-p" }]);

    expect(await functions().promote("f", 1)).toBe(false); // not the pending one
    expect(await functions().promote("f", 2)).toBe(true);
    expect(await functions().current("f")).toMatchObject({ version: 2, code: "pending = 1\n", pendingVersion: null });
    expect(await functions().promote("f", 2)).toBe(false);
    expect(await functions().pendingVersions()).toEqual([]);
  });

  it("numbers after a pending version; a newer pending one replaces it, and a current one clears it", async () => {
    await functions().create("f", settingsOf(), null);
    await functions().addVersion("f", settingsOf(), null, false);
    const newer = await functions().addVersion("f", settingsOf(), null, false);
    expect(newer?.stored.version).toBe(3);
    expect(newer?.current).toMatchObject({ version: 1, pendingVersion: 3 });
    expect(await functions().promote("f", 2)).toBe(false);
    const current = await functions().addVersion("f", settingsOf(), null, true);
    expect(current?.current).toMatchObject({ version: 4, pendingVersion: null });
    expect(await functions().promote("f", 3)).toBe(false);
    expect((await functions().current("f"))?.version).toBe(4);
  });

  it("grows the function's revision with every change", async () => {
    await functions().create("f", settingsOf(), null);
    await functions().create("g", settingsOf(), null);
    expect(await functions().revisions()).toEqual(
      new Map([
        ["f", 1],
        ["g", 1],
      ]),
    );
    const revisions: number[] = [];
    await functions().addVersion("f", settingsOf(), null, true);
    revisions.push((await functions().current("f"))!.revision);
    await functions().addVersion("f", settingsOf(), null, false);
    revisions.push((await functions().current("f"))!.revision);
    await functions().promote("f", 3);
    revisions.push((await functions().current("f"))!.revision);
    expect(revisions).toEqual([2, 3, 4]);
    expect((await functions().revisions()).get("f")).toBe(4);
    expect((await functions().revisions()).get("g")).toBe(1);
  });
});

describe("reading", () => {
  it("lists every function's current version", async () => {
    await functions().create("a", settingsOf({ code: "a = 1\n" }), null);
    await functions().create("b", settingsOf(), null);
    await functions().addVersion("b", settingsOf({ code: "b = 2\n" }), null, true);
    await functions().addVersion("b", settingsOf({ code: "b = 3\n" }), null, false);
    const all = (await functions().allCurrent()).map((f) => [f.name, f.version, f.code, f.pendingVersion]).sort();
    expect(all).toEqual([
      ["a", 1, "a = 1\n", null],
      ["b", 2, "b = 2\n", 3],
    ]);
  });

  it("knows every package environment a stored version refers to, current or not", async () => {
    await functions().create("a", settingsOf(), "env-a1");
    await functions().addVersion("a", settingsOf(), "env-a2", true);
    await functions().create("b", settingsOf(), null);
    await functions().addVersion("b", settingsOf(), "env-b2", false);
    expect(await functions().referencedEnvironments()).toEqual(new Set(["env-a1", "env-a2", "env-b2"]));
  });
});

describe("delete", () => {
  it("removes the function and every version; the log keeps its rows; the name is free again", async () => {
    await functions().create("f", settingsOf(), null);
    await functions().addVersion("f", settingsOf(), null, true);
    await functions().addVersion("f", settingsOf(), null, false);
    const { id } = await runOne(db.store, { functionName: "f" });
    expect(await functions().delete("f")).toBe(true);
    expect(await functions().current("f")).toBeUndefined();
    expect(await functions().versions("f")).toBeUndefined();
    expect(await db.number("select count(*) from function_versions where function_name = ?", "f")).toBe(0);
    expect(await functions().pendingVersions()).toEqual([]);
    expect((await db.store.invocations.get(id))?.functionName).toBe("f");
    expect(await db.store.invocations.hasFunction("f")).toBe(true);
    expect(await functions().delete("f")).toBe(false);
    expect((await functions().create("f", settingsOf(), null))?.version).toBe(1);
  });
});

describe("rewriteEnvs", () => {
  it("hands over every version's stored env and stores what comes back, leaving rows given null alone", async () => {
    await functions().create("f", settingsOf({ env: { A: "1" } }), null);
    await functions().addVersion("f", settingsOf({ env: { A: "2" } }), null, true);
    await functions().create("g", settingsOf({ env: {} }), null);
    const seen: [string, number, boolean][] = [];
    const changed = await functions().rewriteEnvs(({ name, version, env, sealed }) => {
      seen.push([name, version, sealed]);
      if (name !== "f") return null;
      // What is handed over is the env as stored: sealed.
      expect(env.A).toMatch(/^fngw1:/);
      return db.box.sealEnv({ A: `${version}`, B: "new" }, name, version);
    });
    expect(changed).toBe(2);
    expect(seen.sort()).toEqual([
      ["f", 1, true],
      ["f", 2, true],
      ["g", 1, true],
    ]);
    expect((await functions().version("f", 1))?.env).toEqual({ A: "1", B: "new" });
    expect((await functions().current("f"))?.env).toEqual({ A: "2", B: "new" });
    expect((await functions().current("g"))?.env).toEqual({});
  });

  it("changes all or nothing: a rewrite that fails part-way leaves every row as it was", async () => {
    await functions().create("f", settingsOf({ env: { A: "1" } }), null);
    await functions().addVersion("f", settingsOf({ env: { A: "2" } }), null, true);
    const before = await db.column("select env from function_versions order by version");
    let calls = 0;
    await expect(
      functions().rewriteEnvs(({ name, version }) => {
        calls++;
        if (calls === 2) throw new Error("cannot rewrite");
        return db.box.sealEnv({ A: "changed" }, name, version);
      }),
    ).rejects.toThrow("cannot rewrite");
    expect(calls).toBe(2);
    expect(await db.column("select env from function_versions order by version")).toEqual(before);
    expect((await functions().version("f", 1))?.env).toEqual({ A: "1" });
  });
});

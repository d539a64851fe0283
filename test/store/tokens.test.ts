import { describe, expect, it } from "vitest";
import type { TokenRecord } from "../../src/store/contract.js";
import { T0, useTestStore } from "./harness.js";

// API tokens, console sessions and the gateway's settings.

const db = useTestStore();

const token = (overrides: Partial<TokenRecord> = {}): TokenRecord => ({
  id: "tok_1",
  name: "ci",
  tokenHash: "a".repeat(64),
  scopes: ["functions:read", "invoke:f"],
  createdAt: T0,
  expiresAt: null,
  lastUsedAt: null,
  ...overrides,
});

describe("tokens", () => {
  it("stores a token's record as given and lists them oldest first", async () => {
    const tokens = db.store.tokens;
    await tokens.insert(token({ id: "tok_b", tokenHash: "b".repeat(64), createdAt: T0 + 1, expiresAt: T0 + 5000 }));
    await tokens.insert(token({ id: "tok_a", tokenHash: "c".repeat(64), createdAt: T0 + 1, scopes: [] }));
    await tokens.insert(token({ id: "tok_z", tokenHash: "d".repeat(64), createdAt: T0, lastUsedAt: T0 + 7 }));
    expect(await tokens.all()).toEqual([
      token({ id: "tok_z", tokenHash: "d".repeat(64), createdAt: T0, lastUsedAt: T0 + 7 }),
      token({ id: "tok_a", tokenHash: "c".repeat(64), createdAt: T0 + 1, scopes: [] }),
      token({ id: "tok_b", tokenHash: "b".repeat(64), createdAt: T0 + 1, expiresAt: T0 + 5000 }),
    ]);
  });

  it("refuses a second token with the same hash", async () => {
    await db.store.tokens.insert(token());
    await expect(db.store.tokens.insert(token({ id: "tok_2" }))).rejects.toThrow();
    expect((await db.store.tokens.all()).map((t) => t.id)).toEqual(["tok_1"]);
  });

  it("replaces the token with a record's id, or adds it", async () => {
    await db.store.tokens.replace(token({ id: "root", tokenHash: "1".repeat(64) }));
    await db.store.tokens.replace(token({ id: "root", tokenHash: "2".repeat(64), name: "GATEWAY_TOKEN" }));
    expect(await db.store.tokens.all()).toEqual([token({ id: "root", tokenHash: "2".repeat(64), name: "GATEWAY_TOKEN" })]);
  });

  it("deletes a token once", async () => {
    await db.store.tokens.insert(token());
    expect(await db.store.tokens.delete("tok_1")).toBe(true);
    expect(await db.store.tokens.delete("tok_1")).toBe(false);
    expect(await db.store.tokens.all()).toEqual([]);
  });

  it("records last uses, never moving one back: a late write of an older use changes nothing", async () => {
    await db.store.tokens.insert(token());
    await db.store.tokens.insert(token({ id: "tok_2", tokenHash: "e".repeat(64) }));
    await db.store.tokens.touch([
      { id: "tok_1", lastUsedAt: T0 + 100 },
      { id: "tok_2", lastUsedAt: T0 + 50 },
      { id: "tok_unknown", lastUsedAt: T0 },
    ]);
    await db.store.tokens.touch([{ id: "tok_1", lastUsedAt: T0 + 60 }]);
    await db.store.tokens.touch([{ id: "tok_2", lastUsedAt: T0 + 70 }]);
    expect((await db.store.tokens.all()).map((t) => [t.id, t.lastUsedAt])).toEqual([
      ["tok_1", T0 + 100],
      ["tok_2", T0 + 70],
    ]);
  });
});

describe("sessions", () => {
  it("names the token a live session signed in with, until it expires", async () => {
    await db.store.sessions.create("key-1", "tok_1", T0 + 1000);
    expect(await db.store.sessions.tokenOf("key-1", T0)).toBe("tok_1");
    expect(await db.store.sessions.tokenOf("key-1", T0 + 999)).toBe("tok_1");
    expect(await db.store.sessions.tokenOf("key-1", T0 + 1000)).toBeNull();
    expect(await db.store.sessions.tokenOf("unknown", T0)).toBeNull();
  });

  it("ends a session on delete", async () => {
    await db.store.sessions.create("key-1", "tok_1", T0 + 1000);
    await db.store.sessions.delete("key-1");
    expect(await db.store.sessions.tokenOf("key-1", T0)).toBeNull();
    await db.store.sessions.delete("key-1"); // again: nothing to do, no error
  });

  it("prunes expired sessions, then the oldest beyond the number kept", async () => {
    for (let i = 0; i < 6; i++) await db.store.sessions.create(`key-${i}`, "tok_1", T0 + i * 1000);
    // At T0 + 1500, key-0 and key-1 have expired; of the other four, the newest two are kept.
    expect(await db.store.sessions.prune(T0 + 1500, 2)).toBe(4);
    const live = [];
    for (let i = 0; i < 6; i++) if ((await db.store.sessions.tokenOf(`key-${i}`, T0)) !== null) live.push(`key-${i}`);
    expect(live).toEqual(["key-4", "key-5"]);
    expect(await db.store.sessions.prune(T0 + 1500, 2)).toBe(0);
  });
});

describe("settings", () => {
  it("gets, sets and overwrites a value", async () => {
    expect(await db.store.settings.get("k")).toBeUndefined();
    await db.store.settings.set("k", "one");
    await db.store.settings.set("k", "two");
    expect(await db.store.settings.get("k")).toBe("two");
  });

  it("setIfAbsent stores a value only where there is none, and answers what the key holds", async () => {
    expect(await db.store.settings.setIfAbsent("k", "first")).toBe("first");
    expect(await db.store.settings.setIfAbsent("k", "second")).toBe("first");
    expect(await db.store.settings.get("k")).toBe("first");
  });

  it("setIfAbsent from gateways at once: one value wins, and every gateway is told the same", async () => {
    const gateways = await db.gateways(4);
    const answers = await Promise.all(gateways.map((store, i) => store.settings.setIfAbsent("k", `value-${i}`)));
    expect(new Set(answers).size).toBe(1);
    expect(await db.store.settings.get("k")).toBe(answers[0]);
  });
});

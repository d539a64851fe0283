import { describe, expect, it } from "vitest";
import type { Change } from "../../src/store/contract.js";
import { eventually, listenTo, settingsOf, T0, useTestStore } from "./harness.js";

// The change channel: how a gateway hears of another's writes (on SQLite, one gateway hears its
// own; on PostgreSQL, another store on the same database hears them through NOTIFY).

const db = useTestStore();

const token = (id: string, hash: string) => ({
  id,
  name: id,
  tokenHash: hash.repeat(64),
  scopes: ["admin"],
  createdAt: T0,
  expiresAt: null,
  lastUsedAt: null,
});

describe("the change channel", () => {
  it("tells another gateway of every change to functions, tokens and sessions, in the order written", async () => {
    const [writer, reader] = await db.gateways(2);
    const heard = await listenTo(reader!, writer);
    await writer!.functions.create("f", settingsOf(), null);
    await writer!.functions.addVersion("f", settingsOf(), null, false);
    await writer!.functions.promote("f", 2);
    await writer!.functions.delete("f");
    await writer!.tokens.insert(token("tok_1", "a"));
    await writer!.tokens.replace(token("tok_1", "b"));
    await writer!.tokens.delete("tok_1");
    await writer!.sessions.delete("session-key");
    const expected: Change[] = [
      { kind: "function", name: "f" },
      { kind: "function", name: "f" },
      { kind: "function", name: "f" },
      { kind: "function", name: "f" },
      { kind: "token", id: "tok_1" },
      { kind: "token", id: "tok_1" },
      { kind: "token", id: "tok_1" },
      { kind: "session", key: "session-key" },
    ];
    await eventually(() => heard.changes.length >= expected.length, "every change");
    expect(heard.changes).toEqual(expected);
    expect(heard.gaps).toBe(0);
    heard.stop();
  });

  it("tells of a change once it is committed: what the listener reads then shows it", async () => {
    const [writer, reader] = await db.gateways(2);
    const seen: (number | undefined)[] = [];
    const heard = await listenTo(reader!, writer);
    const stop = reader!.changes.subscribe(
      (change) => {
        if (change.kind === "function") void reader!.functions.current(change.name).then((f) => seen.push(f?.version));
      },
      () => {},
    );
    await writer!.functions.create("f", settingsOf(), null);
    await eventually(() => seen.length === 1, "the listener's read");
    await writer!.functions.addVersion("f", settingsOf(), null, true);
    await eventually(() => seen.length === 2, "the listener's second read");
    expect(seen).toEqual([1, 2]);
    stop();
    heard.stop();
  });

  it("says nothing of writes that changed nothing", async () => {
    const [writer, reader] = await db.gateways(2);
    await writer!.functions.create("f", settingsOf(), null);
    const heard = await listenTo(reader!, writer);
    expect(await writer!.functions.create("f", settingsOf(), null)).toBeNull();
    expect(await writer!.functions.promote("f", 5)).toBe(false);
    expect(await writer!.functions.delete("unknown")).toBe(false);
    expect(await writer!.tokens.delete("unknown")).toBe(false);
    await writer!.settings.set("k", "v");
    await writer!.tokens.insert(token("tok_marker", "m")); // the last write: once it is heard, the others would have been
    await eventually(() => heard.changes.length > 0, "the marker");
    expect(heard.changes).toEqual([{ kind: "token", id: "tok_marker" }]);
    heard.stop();
  });

  it("stops telling a subscriber that unsubscribed, and goes on telling the others", async () => {
    const [writer, reader] = await db.gateways(2);
    const leaving = await listenTo(reader!, writer);
    const staying = await listenTo(reader!, writer);
    leaving.changes.length = 0; // the second subscriber's markers
    leaving.stop();
    await writer!.functions.create("f", settingsOf(), null);
    await eventually(() => staying.changes.length > 0, "the change");
    expect(staying.changes).toEqual([{ kind: "function", name: "f" }]);
    expect(leaving.changes).toEqual([]);
    staying.stop();
  });
});

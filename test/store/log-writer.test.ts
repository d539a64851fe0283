import { describe, expect, it, vi } from "vitest";
import type { InvocationEnd, InvocationStart } from "../../src/core/invocations.js";
import { InvocationLogWriter } from "../../src/store/log-writer.js";
import { endOf, startRow, useTestStore } from "./harness.js";

// The log writer over the engine under test, with the database there (its spool is in outage.test.ts).

const db = useTestStore();

const writer = () => new InvocationLogWriter(db.store, { node: "node-a", maxOutputBytes: 1024, spool: null });
const start = (): InvocationStart => {
  const { node: _node, startedAt: _startedAt, ...row } = startRow();
  return row;
};
const end = (overrides: Partial<InvocationEnd> = {}): InvocationEnd => {
  const { stdoutDroppedBytes: _o, stderrDroppedBytes: _e, ...rest } = endOf(overrides);
  return rest;
};

describe("the log writer", () => {
  it("writes the starts of one event-loop turn in one call to the store, and the ends likewise", async () => {
    const log = writer();
    const starts = vi.spyOn(db.store.invocations, "start");
    const finishes = vi.spyOn(db.store.invocations, "finish");
    const rows = Array.from({ length: 10 }, start);
    await Promise.all(rows.map((row) => log.start(row)));
    await Promise.all(rows.map((row) => log.finish(row.id, end())));
    expect(starts).toHaveBeenCalledTimes(1);
    expect(finishes).toHaveBeenCalledTimes(1);
    expect(await db.number("select count(*) from invocations where status = 'ok' and node = 'node-a'")).toBe(10);
  });

  it("fails only the row the database refuses: the others of its batch are written", async () => {
    const log = writer();
    const good = [start(), start()];
    const bad = { ...start(), id: null as unknown as string }; // NOT NULL
    const outcomes = await Promise.allSettled([log.start(good[0]!), log.start(bad), log.start(good[1]!)]);
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    for (const row of good) expect((await db.store.invocations.get(row.id))?.status).toBe("running");
  });

  it("stores text with U+0000 in it, as U+FFFD, on every engine", async () => {
    const log = writer();
    const row = start();
    await log.start(row);
    const stored = await log.finish(row.id, end({ stdout: "a\0b", stderr: "\0", error: "bad\0name" }));
    expect(stored).toMatchObject({ stdout: "a\uFFFDb", stderr: "\uFFFD", error: "bad\uFFFDname" });
    expect(await db.store.invocations.get(row.id)).toMatchObject({
      status: "ok",
      stdout: "a\uFFFDb",
      stderr: "\uFFFD",
      error: "bad\uFFFDname",
    });
  });

  it("keeps the head and the tail of output past its cap, and records how much was dropped between", async () => {
    const log = writer();
    const row = start();
    await log.start(row);
    const stdout = `${"h".repeat(1500)}${"t".repeat(1500)}`;
    await log.finish(row.id, end({ stdout, stderr: "short" }));
    const stored = (await db.store.invocations.get(row.id))!;
    expect(stored).toMatchObject({
      stdoutTruncated: true,
      stdoutDroppedBytes: 3000 - 1024,
      stderr: "short",
      stderrTruncated: false,
      stderrDroppedBytes: 0,
    });
    expect(stored.stdout).toBe(`${"h".repeat(512)}\n[fngw] ${3000 - 1024} bytes dropped here\n${"t".repeat(512)}`);
  });
});

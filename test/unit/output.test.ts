import { describe, expect, it } from "vitest";
import { cutHeadAndTail, droppedLine, findDroppedLine, parseDroppedLine } from "../../src/core/output.js";

const bytes = (text: string) => Buffer.byteLength(text, "utf8");

describe("an invocation's output kept head and tail", () => {
  it("keeps output that fits as it is, nothing dropped", () => {
    expect(cutHeadAndTail("", 10)).toEqual({ text: "", droppedBytes: 0 });
    expect(cutHeadAndTail("0123456789", 10)).toEqual({ text: "0123456789", droppedBytes: 0 });
    // Three-byte characters: 4 of them are 12 bytes, over 10 though only 4 UTF-16 units.
    expect(cutHeadAndTail("€€€", 9)).toEqual({ text: "€€€", droppedBytes: 0 });
  });

  it("keeps the first and the last half, with a line saying how many bytes were dropped between", () => {
    const text = "a".repeat(5000) + "b".repeat(5000);
    const cut = cutHeadAndTail(text, 4000);
    expect(cut.droppedBytes).toBe(6000);
    expect(cut.text).toBe(`${"a".repeat(2000)}\n${droppedLine(6000)}${"b".repeat(2000)}`);
  });

  it("keeps the traceback at the end of a long output", () => {
    const noise = Array.from({ length: 20_000 }, (_, i) => `progress ${i}\n`).join("");
    const traceback = 'Traceback (most recent call last):\n  File "function.py", line 3, in handler\nValueError: boom\n';
    const cut = cutHeadAndTail(`starting\n${noise}${traceback}`, 64 * 1024);
    expect(cut.text.startsWith("starting\nprogress 0\n")).toBe(true);
    expect(cut.text.endsWith(traceback)).toBe(true);
    expect(bytes(cut.text) - bytes(droppedLine(cut.droppedBytes))).toBeLessThanOrEqual(64 * 1024);
    expect(cut.droppedBytes).toBe(bytes(`starting\n${noise}${traceback}`) - (bytes(cut.text) - bytes(droppedLine(cut.droppedBytes))));
  });

  it("cuts just after a line break when one is near, so both halves hold whole lines", () => {
    const lines = Array.from({ length: 1000 }, (_, i) => `line ${String(i).padStart(4, "0")}\n`).join("");
    const cut = cutHeadAndTail(lines, 2000);
    const [head, tail] = cut.text.split(droppedLine(cut.droppedBytes));
    expect(head!.endsWith("\n")).toBe(true);
    expect(
      head!
        .split("\n")
        .slice(0, -1)
        .every((line) => /^line \d{4}$/.test(line)),
    ).toBe(true);
    expect(
      tail!
        .split("\n")
        .slice(0, -1)
        .every((line) => /^line \d{4}$/.test(line)),
    ).toBe(true);
    expect(tail!.endsWith("line 0999\n")).toBe(true);
  });

  it("never cuts a character in two: no U+FFFD appears, and the count is of the original's bytes", () => {
    for (const unit of ["é", "€", "😀"]) {
      const text = unit.repeat(3001);
      for (const max of [1000, 1001, 1002, 1003]) {
        const cut = cutHeadAndTail(text, max);
        expect(cut.text).not.toContain("\uFFFD");
        const kept = cut.text.replace(droppedLine(cut.droppedBytes), "").replace("\n", "");
        expect(bytes(kept) + cut.droppedBytes).toBe(bytes(text));
        expect(bytes(kept)).toBeLessThanOrEqual(max);
      }
    }
  });

  it("finds the gateway's line again, and not a copy the function printed earlier", () => {
    const fake = droppedLine(5990);
    const text = `${fake}${"x".repeat(10_000)}`;
    const cut = cutHeadAndTail(text, 4000);
    expect(cut.droppedBytes).toBeGreaterThan(0);
    const found = findDroppedLine(cut.text, cut.droppedBytes);
    expect(found).not.toBeNull();
    expect(cut.text.slice(found!.start, found!.end)).toBe(droppedLine(cut.droppedBytes));
    expect(found!.start).toBeGreaterThan(0);
    expect(findDroppedLine("all of it", 0)).toBeNull();
    expect(parseDroppedLine("[fngw] 42 bytes dropped here")).toBe(42);
    expect(parseDroppedLine("[fngw] many bytes dropped here")).toBeNull();
  });

  it("with no room keeps only the line", () => {
    expect(cutHeadAndTail("abc", 0)).toEqual({ text: droppedLine(3), droppedBytes: 3 });
  });
});

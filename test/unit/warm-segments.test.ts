// How a warm instance's output channels are cut into invocations (src/sandbox/warm-process.ts):
// at the invocation's own marker only, wherever the reads split it, within the per-invocation cap.
import { describe, expect, it } from "vitest";
import { outputMarker } from "../../src/sandbox/protocol.js";
import { Segments } from "../../src/sandbox/warm-process.js";

const NONCE_A = "a".repeat(32);
const NONCE_B = "b".repeat(32);

describe("Segments", () => {
  it("ends an invocation at its marker and keeps what follows for the next one", () => {
    const segments = new Segments(1024);
    segments.begin(outputMarker(NONCE_A));
    segments.push(Buffer.concat([Buffer.from("first"), outputMarker(NONCE_A), Buffer.from("late")]));
    expect(segments.ended).toBe(true);
    expect(segments.take()).toEqual({ data: Buffer.from("first"), truncated: false });
    segments.push(Buffer.from(" write"));
    segments.begin(outputMarker(NONCE_B));
    expect(segments.ended).toBe(false);
    segments.push(Buffer.concat([Buffer.from("|second"), outputMarker(NONCE_B)]));
    expect(segments.take().data.toString()).toBe("late write|second");
  });

  it("finds a marker split across reads, one byte at a time", () => {
    const segments = new Segments(1024);
    segments.begin(outputMarker(NONCE_A));
    for (const byte of Buffer.concat([Buffer.from("out"), outputMarker(NONCE_A)])) segments.push(Buffer.from([byte]));
    expect(segments.ended).toBe(true);
    expect(segments.take().data.toString()).toBe("out");
  });

  it("keeps another nonce's marker as output: only the current invocation's ends it", () => {
    const segments = new Segments(1024);
    segments.begin(outputMarker(NONCE_A));
    segments.push(outputMarker(NONCE_B));
    expect(segments.ended).toBe(false);
    segments.push(outputMarker(NONCE_A));
    expect(segments.take().data).toEqual(outputMarker(NONCE_B));
  });

  it("caps each invocation's bytes but still finds its marker past the cap", () => {
    const segments = new Segments(8);
    segments.begin(outputMarker(NONCE_A));
    // (The last marker-length bytes are held back until it is clear they start no marker.)
    expect(segments.push(Buffer.from("0123456789".repeat(10)))).toBe(false);
    segments.push(outputMarker(NONCE_A));
    expect(segments.ended).toBe(true);
    expect(segments.take()).toEqual({ data: Buffer.from("01234567"), truncated: true });
    segments.begin(outputMarker(NONCE_B));
    expect(segments.push(Buffer.from("ok"))).toBe(true);
    segments.push(outputMarker(NONCE_B));
    expect(segments.take()).toEqual({ data: Buffer.from("ok"), truncated: false });
  });

  it("gives a process that died mid-invocation everything it wrote, a partial marker included", () => {
    const segments = new Segments(1024);
    segments.begin(outputMarker(NONCE_A));
    segments.push(Buffer.from("crash\0fngw-end:aaa"));
    expect(segments.ended).toBe(false);
    expect(segments.take().data.toString()).toBe("crash\0fngw-end:aaa");
  });
});

import { describe, expect, it } from "vitest";
import type { InvocationSpec, SandboxResponse } from "../../src/core/runner.js";
import { classify } from "../../src/sandbox/classify.js";
import type { ProcessExit } from "../../src/sandbox/process.js";
import {
  BASE_ENV,
  encodeLockLine,
  encodePayload,
  endFrame,
  FLAG_NETWORK,
  FRAME_HEADER_CAP,
  MAX_RESPONSE_HEADERS,
  parseFrames,
  ResultReader,
  type ResultReaderOptions,
} from "../../src/sandbox/protocol.js";

// The wire protocol (prescripts/PROTOCOL.md) and the classification of a run, without a process.

const LIMITS = { outputCapBytes: 1024, maxResponseBytes: 4096 };
const SPEC = { runtime: "python", timeoutMs: 1000, memoryMb: 64 } as const;

const frame = (value: object, body: Buffer = Buffer.alloc(0)) => Buffer.concat([Buffer.from(`${JSON.stringify(value)}\n`), body]);
const response = (status: number, body = "hi", headers: [string, string][] = []) =>
  frame({ kind: "response", status, headers, body_length: Buffer.byteLength(body) }, Buffer.from(body));
const output = (text = "") => ({ data: Buffer.from(text), truncated: false });

/** The prescript's marker, written right after the lock-down and before the function is read. */
const LOCKED = frame({ kind: "locked" });

/** A run that got past the lock-down: `result` is what followed the marker on fd 4. */
function exited(result: Buffer, overrides: Partial<ProcessExit> = {}): ProcessExit {
  return unconfirmed(Buffer.concat([LOCKED, result]), overrides);
}

/** A run whose result channel is exactly `result`, no marker added. */
function unconfirmed(result: Buffer, overrides: Partial<ProcessExit> = {}): ProcessExit {
  return {
    exitCode: 0,
    signal: null,
    durationMs: 12.3456789,
    timedOut: false,
    interrupted: false,
    clientClosed: false,
    denied: null,
    spawnError: null,
    stdout: output(),
    stderr: output(),
    result: parseFrames(result, LIMITS.maxResponseBytes),
    ...overrides,
  };
}

describe("fd 3: what the gateway writes", () => {
  it("sends the lock-down parameters as one NUL-separated line, the seccomp listener's channel last (-1: none)", () => {
    const params = { jail: "/j/slot-0", uid: 300001, gid: 300001, flags: FLAG_NETWORK, maxThreads: 64 };
    expect(encodeLockLine(params, 5).toString()).toBe("/j/slot-0\u0000300001\u0000300001\u00001\u000064\u00005\n");
    expect(encodeLockLine(params).toString()).toBe("/j/slot-0\u0000300001\u0000300001\u00001\u000064\u0000-1\n");
  });

  it("follows with one JSON line (code in base64, the base environment under the function's own) and the raw body", () => {
    const spec: InvocationSpec = {
      runtime: "python",
      code: "print('é')",
      env: { HOME: "/elsewhere", GREETING: "hi" },
      timeoutMs: 1000,
      memoryMb: 64,
      network: false,
      request: { method: "POST", path: "/", query: [["a", "1"]], headers: [], body: Buffer.from("\n{body}"), url: "http://x/fn/f" },
    };
    const payload = encodePayload(spec);
    const newline = payload.indexOf(10);
    const envelope = JSON.parse(payload.subarray(0, newline).toString());
    expect(envelope).toMatchObject({ method: "POST", query: [["a", "1"]], body_length: 7 });
    expect(Buffer.from(envelope.code, "base64").toString()).toBe("print('é')");
    expect(envelope.env).toEqual({ ...BASE_ENV, HOME: "/elsewhere", GREETING: "hi" });
    expect(payload.subarray(newline + 1).toString()).toBe("\n{body}");
  });
});

describe("fd 4: reading the result frames", () => {
  it("reads a response frame with its body, and the frames around it", () => {
    const { frames, malformed } = parseFrames(Buffer.concat([frame({ kind: "handler" }), response(201, "a\nb")]), 4096);
    expect(malformed).toBeNull();
    expect(frames).toEqual([{ kind: "handler" }, { kind: "response", value: { status: 201, headers: [], body: Buffer.from("a\nb") } }]);
  });

  it.each([
    ["an unterminated frame", Buffer.from('{"kind":"handler"}'), "an unterminated or oversized frame"],
    [
      "an oversized line",
      Buffer.from(`{"kind":"error","message":"${"x".repeat(FRAME_HEADER_CAP)}"}\n`),
      "an unterminated or oversized frame",
    ],
    ["a line that is not JSON", Buffer.from("nope\n"), "a frame that is not JSON"],
    ["a frame of unknown kind", frame({ kind: "surprise" }), "a frame of unknown kind"],
    [
      "a body shorter than announced",
      frame({ kind: "response", status: 200, headers: [], body_length: 10 }, Buffer.from("abc")),
      "a response whose body length does not match",
    ],
    [
      "a negative body length",
      frame({ kind: "response", status: 200, headers: [], body_length: -1 }),
      "a response whose body length does not match",
    ],
  ])("calls %s malformed", (_, data, message) => {
    expect(parseFrames(data, 4096).malformed).toBe(message);
  });

  it.each([
    ["a status below 200", response(99), "the function answered with an invalid HTTP status: 99"],
    ["a status above 599", response(600), "the function answered with an invalid HTTP status: 600"],
    ["a fractional status", response(200.5), "the function answered with an invalid HTTP status: 200.5"],
    [
      "headers that are not pairs of strings",
      frame({ kind: "response", status: 200, headers: [["a", 1]], body_length: 0 }),
      "the function answered with malformed headers",
    ],
    [
      "too many headers",
      response(
        200,
        "",
        Array.from({ length: MAX_RESPONSE_HEADERS + 1 }, (_, i): [string, string] => [`x-${i}`, "v"]),
      ),
      `the function answered with more than ${MAX_RESPONSE_HEADERS} headers`,
    ],
    ["a body over MAX_RESPONSE_BYTES", response(200, "x".repeat(4097)), "the function's response exceeds 4096 bytes (MAX_RESPONSE_BYTES)"],
  ])("refuses a response with %s", (_, data, message) => {
    const { frames } = parseFrames(data, 4096);
    expect(frames).toEqual([{ kind: "response", value: message }]);
  });
});

const NOT_REPORTED = "killed by the seccomp filter (call not reported)";

describe("classifying how a run ended", () => {
  it("names the refused call the gateway's listener killed the process for, and reports every refused call", () => {
    const denied = {
      calls: [
        { name: "execve", count: 2 },
        { name: "syslog", count: 1 },
      ],
      killedFor: "syslog",
    };
    const killed = classify(exited(Buffer.alloc(0), { signal: "SIGKILL", exitCode: null, denied, timedOut: true }), SPEC, false, LIMITS);
    expect(killed).toMatchObject({
      status: "forbidden",
      blockedSyscall: "syslog",
      deniedSyscalls: denied.calls,
      errorMessage: "the function called syslog, which the sandbox does not allow (killed)",
    });
    const refused = classify(
      exited(response(200, "fine"), { denied: { calls: [{ name: "execve", count: 1 }], killedFor: null } }),
      SPEC,
      false,
      LIMITS,
    );
    expect(refused).toMatchObject({ status: "ok", blockedSyscall: null, deniedSyscalls: [{ name: "execve", count: 1 }] });
  });

  it("with a listener, a SIGSYS names no call (a foreign ABI's call, or a signal the function sent itself); without one, the call is unknown", () => {
    const withListener = exited(Buffer.alloc(0), { signal: "SIGSYS", exitCode: null, denied: { calls: [], killedFor: null } });
    expect(classify(withListener, SPEC, false, LIMITS)).toMatchObject({ status: "forbidden", blockedSyscall: null });
    expect(classify(withListener, SPEC, false, LIMITS).errorMessage).toMatch(/^killed by SIGSYS: a system call of a foreign architecture/);
    const trapped = exited(Buffer.alloc(0), { signal: "SIGSYS", exitCode: null });
    expect(classify(trapped, SPEC, false, LIMITS).errorMessage).toBe("killed by the seccomp filter (call not reported)");
  });

  it("answers what the response frame says, duration rounded to the microsecond", () => {
    const result = classify(exited(response(201, "made", [["x-a", "b"]])), SPEC, false, LIMITS);
    expect(result).toMatchObject({ status: "ok", durationMs: 12.346, response: { status: 201, headers: [["x-a", "b"]] } });
    expect(result.response?.body.toString()).toBe("made");
  });

  it("turns an unusable response into an error naming the reason (an invalid status, a body over the cap)", () => {
    expect(classify(exited(response(99)), SPEC, false, LIMITS)).toMatchObject({
      status: "error",
      errorMessage: "the function answered with an invalid HTTP status: 99",
    });
    expect(classify(exited(response(200, "x".repeat(4097))), SPEC, false, LIMITS).errorMessage).toContain("MAX_RESPONSE_BYTES");
  });

  it("treats a result channel that went past the cap as a response over it", () => {
    const exit = exited(Buffer.alloc(0), { result: { ...parseFrames(LOCKED, 4096), tooLarge: true } });
    expect(classify(exit, SPEC, false, LIMITS)).toMatchObject({
      status: "error",
      errorMessage: "the response exceeds the 4096-byte limit (MAX_RESPONSE_BYTES)",
    });
  });

  it("uses stdout as the body in script mode, and refuses it past the output cap", () => {
    expect(classify(exited(Buffer.alloc(0), { stdout: output("printed") }), SPEC, false, LIMITS).response?.body.toString()).toBe("printed");
    const flood = exited(Buffer.alloc(0), { stdout: { data: Buffer.alloc(1024), truncated: true } });
    expect(classify(flood, SPEC, false, LIMITS).errorMessage).toBe("the script's output exceeds the 1024-byte cap");
  });

  it.each<[string, Partial<ProcessExit>, Buffer, boolean, string, string]>([
    ["a spawn failure", { spawnError: "ENOENT" }, Buffer.alloc(0), false, "error", "sandbox failure: ENOENT"],
    [
      "a stopping gateway",
      { interrupted: true, signal: "SIGKILL", exitCode: null },
      Buffer.alloc(0),
      false,
      "interrupted",
      "the gateway stopped while the function ran",
    ],
    ["the deadline", { timedOut: true, signal: "SIGKILL", exitCode: null }, Buffer.alloc(0), false, "timeout", "timed out after 1000 ms"],
    ["the cgroup's OOM killer", { signal: "SIGKILL", exitCode: null }, Buffer.alloc(0), true, "oom", "exceeded its memory limit of 64 MB"],
    [
      "a seccomp kill with its report",
      { signal: "SIGSYS", exitCode: null },
      frame({ kind: "forbidden", syscall: 59, name: "execve" }),
      false,
      "forbidden",
      NOT_REPORTED,
    ],
    ["a seccomp kill without a report", { signal: "SIGSYS", exitCode: null }, Buffer.alloc(0), false, "forbidden", NOT_REPORTED],
    [
      "an exception",
      { exitCode: 1 },
      frame({ kind: "error", message: "ValueError: bad" }),
      false,
      "error",
      "the function raised ValueError: bad",
    ],
    ["another signal", { signal: "SIGSEGV", exitCode: null }, Buffer.alloc(0), false, "error", "killed by SIGSEGV"],
    ["a non-zero exit", { exitCode: 3 }, Buffer.alloc(0), false, "error", "exited with code 3"],
    ["a malformed result", {}, Buffer.from("nope\n"), false, "error", "the function wrote a malformed result: a frame that is not JSON"],
    ["a handler without a response", {}, frame({ kind: "handler" }), false, "error", "the handler ended without a response"],
  ])("classifies %s", (_, exit, result, oomKilled, status, message) => {
    const classified = classify(exited(result, exit), SPEC, oomKilled, LIMITS);
    expect(classified).toMatchObject({ status, errorMessage: message });
  });

  it("believes a lock-down failure only as the first frame, with exit status 125", () => {
    const failed = frame({ kind: "lockdown_failed", message: "chroot: EPERM" });
    expect(classify(unconfirmed(failed, { exitCode: 125 }), SPEC, false, LIMITS)).toMatchObject({
      status: "error",
      errorMessage: "sandbox lock-down failed: chroot: EPERM",
    });
    // The same frame with another exit status: the library always ends with 125, so this is not its report.
    expect(classify(unconfirmed(failed, { exitCode: 1 }), SPEC, false, LIMITS).errorMessage).toBe(
      "sandbox lock-down failed: it was not confirmed (exited with code 1)",
    );
  });

  it("fails closed when the lock-down was not confirmed by the marker", () => {
    expect(classify(unconfirmed(Buffer.alloc(0), { exitCode: 125 }), SPEC, false, LIMITS)).toMatchObject({
      status: "error",
      errorMessage: "sandbox lock-down failed: it was not confirmed (exited with code 125)",
    });
    // Even a well-formed response does not count without the marker in front of it.
    expect(classify(unconfirmed(response(200)), SPEC, false, LIMITS)).toMatchObject({ status: "error", response: null });
  });

  it("reads a warm instance's later invocation, whose lock-down was confirmed earlier, without a leading marker", () => {
    const later = unconfirmed(response(200, "again"));
    expect(classify(later, SPEC, false, LIMITS).errorMessage).toMatch(/lock-down failed: it was not confirmed/);
    expect(classify(later, SPEC, false, LIMITS, true)).toMatchObject({ status: "ok", response: { status: 200 } });
  });

  it("calls a run cut short by a stopping gateway interrupted, even when its fork-server went with it", () => {
    const exit = exited(Buffer.alloc(0), { interrupted: true, spawnError: "the fork-server was lost", signal: "SIGKILL", exitCode: null });
    expect(classify(exit, SPEC, false, LIMITS)).toMatchObject({
      status: "interrupted",
      errorMessage: "the gateway stopped while the function ran",
    });
  });

  it("recognises V8's own out-of-memory abort for node", () => {
    const exit = exited(Buffer.alloc(0), {
      signal: "SIGABRT",
      exitCode: null,
      stderr: output("FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"),
    });
    expect(classify(exit, { ...SPEC, runtime: "node" }, false, LIMITS).status).toBe("oom");
    expect(classify(exit, SPEC, false, LIMITS).status).toBe("error");
  });
});

describe("classifying a result channel that user code forged", () => {
  it("does not name a blocked call from a fake forbidden frame, a partial frame and a real SIGSYS", () => {
    // The function writes a fake report, then half a frame that swallows the library's real one.
    const real = frame({ kind: "forbidden", syscall: 103, name: "syslog" });
    const channel = Buffer.concat([frame({ kind: "forbidden", syscall: 59, name: "execve" }), Buffer.from('{"kind":"forb'), real]);
    const classified = classify(exited(channel, { signal: "SIGSYS", exitCode: null }), SPEC, false, LIMITS);
    expect(classified).toMatchObject({ status: "forbidden", blockedSyscall: null, errorMessage: NOT_REPORTED });
  });

  it("does not name it from a fake report alone, nor from the real one: the channel cannot tell them apart", () => {
    for (const name of ["execve", "syslog"]) {
      const classified = classify(
        exited(frame({ kind: "forbidden", syscall: 1, name }), { signal: "SIGSYS", exitCode: null }),
        SPEC,
        false,
        LIMITS,
      );
      expect(classified).toMatchObject({ status: "forbidden", blockedSyscall: null, errorMessage: NOT_REPORTED });
    }
  });

  it("does not believe a lock-down failure written after the marker, even with exit status 125", () => {
    const forged = exited(frame({ kind: "lockdown_failed", message: "chroot: EPERM" }), { exitCode: 125 });
    expect(classify(forged, SPEC, false, LIMITS)).toMatchObject({ status: "error", errorMessage: "exited with code 125" });
    // With a response after it, the run answers as the function did.
    const answered = exited(Buffer.concat([frame({ kind: "lockdown_failed", message: "x" }), response(200, "fine")]));
    expect(classify(answered, SPEC, false, LIMITS)).toMatchObject({ status: "ok", errorMessage: null });
  });

  it("labels an error frame's message as the function's, so that it cannot pass for the gateway's own", () => {
    // A raw frame, or an exception whose type is named so (Python's type(), a JS error's name).
    const forged = exited(frame({ kind: "error", message: "sandbox lock-down failed: chroot: EPERM" }), { exitCode: 125 });
    expect(classify(forged, SPEC, false, LIMITS)).toMatchObject({
      status: "error",
      errorMessage: "the function raised sandbox lock-down failed: chroot: EPERM",
    });
  });

  it("does not let a second marker stand in for the first", () => {
    const channel = Buffer.concat([frame({ kind: "lockdown_failed", message: "fake" }), LOCKED]);
    expect(classify(unconfirmed(channel, { exitCode: 125 }), SPEC, false, LIMITS).errorMessage).toBe("sandbox lock-down failed: fake");
    expect(classify(unconfirmed(channel, { exitCode: 0 }), SPEC, false, LIMITS).errorMessage).toBe(
      "sandbox lock-down failed: it was not confirmed (exited with code 0)",
    );
  });
});

describe("fd 4: reading a streamed answer as it arrives", () => {
  const head = (headers: [string, string][] = []) => frame({ kind: "response", status: 200, headers, streamed: true });
  const chunk = (text: string) => frame({ kind: "chunk", length: Buffer.byteLength(text) }, Buffer.from(text));
  const END = frame({ kind: "body_end" });

  /** Reads `data` in pieces of `size` bytes into a sink, and says what the sink got. */
  function streamed(data: Buffer, size: number, options: Partial<ResultReaderOptions> = {}) {
    const got = { head: null as SandboxResponse | null, body: "", ended: false, hopeless: false };
    const reader = new ResultReader({
      maxResponseBytes: 16,
      hopeless: () => (got.hopeless = true),
      sink: { head: (response) => (got.head = response), data: (bytes) => (got.body += bytes.toString()), end: () => (got.ended = true) },
      ...options,
    });
    for (let at = 0; at < data.length; at += size) reader.push(data.subarray(at, at + size));
    return { got, result: reader.finish(), reader };
  }

  it.each([1, 3, 1000])("hands the head, each chunk and the end to the sink, read %i bytes at a time", (size) => {
    const { got, result } = streamed(Buffer.concat([LOCKED, head([["x-a", "b"]]), chunk("hello "), chunk("world"), END]), size);
    expect(got).toEqual({
      head: { status: 200, headers: [["x-a", "b"]], body: Buffer.alloc(0) },
      body: "hello world",
      ended: true,
      hopeless: false,
    });
    expect(result).toMatchObject({ malformed: null, tooLarge: false, bodyEnded: true });
  });

  it("collects a streamed body into its response when there is no sink", () => {
    const result = parseFrames(Buffer.concat([LOCKED, head(), chunk("ab"), chunk("c"), END]), 16);
    expect(result.frames.at(-1)).toEqual({
      kind: "response",
      streamed: true,
      value: { status: 200, headers: [], body: Buffer.from("abc") },
    });
  });

  it("gives up past MAX_RESPONSE_BYTES across chunks: too large, and the process is to die", () => {
    const { got, result } = streamed(Buffer.concat([LOCKED, head(), chunk("0123456789"), chunk("0123456789")]), 7);
    expect(got).toMatchObject({ body: "0123456789", hopeless: true, ended: false });
    expect(result).toMatchObject({ tooLarge: true, bodyEnded: false });
  });

  it.each([
    ["a chunk before any head", Buffer.concat([LOCKED, chunk("x")]), "a body chunk outside a streamed response"],
    ["a body end before any head", Buffer.concat([LOCKED, END]), "a body end outside a streamed response"],
    ["a second response", Buffer.concat([LOCKED, head(), END, response(200)]), "a second response"],
    [
      "a chunk of no valid length",
      Buffer.concat([LOCKED, head(), frame({ kind: "chunk", length: -1 })]),
      "a body chunk of no valid length",
    ],
    [
      "a chunk cut short",
      Buffer.concat([LOCKED, head(), frame({ kind: "chunk", length: 5 }), Buffer.from("ab")]),
      "a body chunk cut short",
    ],
  ])("calls %s malformed", (_, data, message) => {
    expect(parseFrames(data, 16).malformed).toBe(message);
  });

  it("tells the sink's owner when a stream breaks mid-way (a frame that makes no sense)", () => {
    const { got, result } = streamed(Buffer.concat([LOCKED, head(), chunk("ok"), Buffer.from("nonsense\n")]), 1000);
    expect(got).toMatchObject({ body: "ok", hopeless: true, ended: false });
    expect(result.malformed).toBe("a frame that is not JSON");
  });

  it("stops at a warm invocation's end frame, wherever the reads split it, and keeps what follows for the next", () => {
    const end = endFrame("a".repeat(32));
    const { reader, result } = streamed(Buffer.concat([LOCKED, head(), chunk("x"), END, end, Buffer.from("late")]), 5, { endFrame: end });
    expect(reader.ended).toBe(true);
    expect(reader.rest.toString()).toBe("late");
    expect(result.bodyEnded).toBe(true);
  });

  it("still finds the end frame past a malformed one", () => {
    const end = endFrame("b".repeat(32));
    const { reader, result } = streamed(Buffer.concat([LOCKED, Buffer.from("garbage without a newline "), end, Buffer.from("next")]), 4, {
      endFrame: end,
    });
    expect(result.malformed).toBe("a frame that is not JSON");
    expect(reader.ended).toBe(true);
    expect(reader.rest.toString()).toBe("next");
  });
});

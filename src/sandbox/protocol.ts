import type { InvocationSpec, SandboxResponse } from "../core/runner.js";

/**
 * The gateway's side of the wire protocol between the gateway, the prescripts and the lock-down
 * library, as `prescripts/PROTOCOL.md` describes it: what goes in on fd 3 (the lock-down
 * parameters, then the invocation) and what comes out on fd 4 (the result frames). Pure: no
 * process, no file, so every rule here is unit-tested without root.
 */

/** The request channel (gateway → prescript) and the result channel (prescript, library → gateway). */
export const REQUEST_FD = 3;
export const RESULT_FD = 4;

/** The library's lock-down export, as koffi declares it (rendered into the Node prescript). */
export const LOCKDOWN_SIGNATURE =
  "int SandboxLockdown(const char *jail, int uid, int gid, uint32_t flags, int report_fd, int max_threads, int listener_fd)";

/** The library's warm-up export: returns once its runtime is up, called while a standby waits. */
export const READY_SIGNATURE = "int SandboxReady(void)";

/** Exit status of a process whose lock-down failed (the library's `exitLockdownFailed`). */
export const EXIT_LOCKDOWN_FAILED = 125;

/** The lock-down parameters, written by the gateway as the first line of fd 3. */
export interface LockParams {
  jail: string;
  uid: number;
  gid: number;
  flags: number;
  maxThreads: number;
}

/** Bit 0 of the lock-down flags: the sandbox may open AF_INET/AF_INET6 sockets. */
export const FLAG_NETWORK = 1;

/** The environment user code starts from; the function's own variables are added after the lock. */
export const BASE_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: "/usr/local/bin:/usr/bin:/bin",
  HOME: "/tmp",
  TMPDIR: "/tmp",
  LANG: "C.UTF-8",
});

/** Room for a frame's JSON line on top of the response body; also the longest line accepted. */
export const FRAME_HEADER_CAP = 64 * 1024;
/** Headers a function's response may have. */
export const MAX_RESPONSE_HEADERS = 100;

/**
 * The first line of fd 3: the parameters joined by NUL (a jail path cannot hold one), then the
 * descriptor the library sends its seccomp listener on (-1: none, refused calls are answered in
 * the kernel and trapped ones not named).
 */
export function encodeLockLine(params: LockParams, listenerFd = -1): Buffer {
  return Buffer.from(`${[params.jail, params.uid, params.gid, params.flags, params.maxThreads, listenerFd].join("\0")}\n`);
}

/** What follows the lock line on fd 3: one JSON line (envelope, env, code in base64), then the raw body. */
export function encodePayload(spec: InvocationSpec, nonce?: string): Buffer {
  const { body, ...envelope } = spec.request;
  const header = JSON.stringify({
    ...envelope,
    env: { ...BASE_ENV, ...spec.env },
    code: Buffer.from(spec.code).toString("base64"),
    // The function has a package environment at /packages: the prescript puts it on the import path.
    packages: spec.packagesDir !== undefined,
    body_length: body.byteLength,
    // Only for warm instances (isolation "function"): the prescript serves invocations in a loop.
    ...(nonce === undefined ? {} : { nonce }),
  });
  return Buffer.concat([Buffer.from(`${header}\n`), body]);
}

/**
 * Warm instances: where an invocation's output ends. The prescript writes the marker on stdout and
 * stderr and the end frame on fd 4 once the invocation is over; the nonce is fresh per invocation
 * (128 random bits), so output that merely looks like a boundary is never taken for one.
 */
export function outputMarker(nonce: string): Buffer {
  return Buffer.from(`\0fngw-end:${nonce}\0`);
}
export function endFrame(nonce: string): Buffer {
  return Buffer.from(`{"kind":"end","nonce":"${nonce}"}\n`);
}

/**
 * Result-channel frames: written by the prescript (locked, handler, response, error) and by the
 * library (forbidden, lockdown_failed). User code can write any of them too: the gateway
 * believes `locked` and `lockdown_failed` only as the first frame, `forbidden` never.
 */
export type Frame =
  | { kind: "locked" }
  | { kind: "handler" }
  | { kind: "response"; status: number; headers: [string, string][]; body_length: number }
  | { kind: "error"; message: string }
  | { kind: "forbidden"; syscall: number; name: string }
  | { kind: "lockdown_failed"; message: string };

/** Frames as the result channel carried them, the response validated (or the reason it is not usable). */
export type ParsedFrame = Exclude<Frame, { kind: "response" }> | { kind: "response"; value: SandboxResponse | string };
const OTHER_KINDS = new Set<string>(["locked", "handler", "error", "forbidden", "lockdown_failed"] satisfies Exclude<
  Frame,
  { kind: "response" }
>["kind"][]);

export function frameOf<K extends ParsedFrame["kind"]>(frames: ParsedFrame[], kind: K): Extract<ParsedFrame, { kind: K }> | undefined {
  return frames.find((f): f is Extract<ParsedFrame, { kind: K }> => f.kind === kind);
}

/** Reads the result channel: JSON lines, each response line followed by its body bytes. */
export function parseFrames(data: Buffer, maxResponseBytes: number): { frames: ParsedFrame[]; malformed: string | null } {
  const frames: ParsedFrame[] = [];
  let at = 0;
  while (at < data.length) {
    const newline = data.indexOf(10, at);
    if (newline < 0 || newline - at > FRAME_HEADER_CAP) return { frames, malformed: "an unterminated or oversized frame" };
    let frame: Frame;
    try {
      frame = JSON.parse(data.subarray(at, newline).toString("utf8")) as Frame;
    } catch {
      return { frames, malformed: "a frame that is not JSON" };
    }
    at = newline + 1;
    if (frame?.kind === "response") {
      const length = frame.body_length;
      if (!Number.isSafeInteger(length) || length < 0 || at + length > data.length) {
        return { frames, malformed: "a response whose body length does not match" };
      }
      frames.push({ kind: "response", value: toResponse(frame, data.subarray(at, at + length), maxResponseBytes) });
      at += length;
    } else if (OTHER_KINDS.has(frame?.kind)) {
      frames.push(frame as ParsedFrame);
    } else {
      return { frames, malformed: "a frame of unknown kind" };
    }
  }
  return { frames, malformed: null };
}

/** Validates a response frame; returns an error message instead when it is not usable. */
export function toResponse(frame: Extract<Frame, { kind: "response" }>, body: Buffer, maxResponseBytes: number): SandboxResponse | string {
  if (!Number.isInteger(frame.status) || frame.status < 200 || frame.status > 599) {
    return `the function answered with an invalid HTTP status: ${String(frame.status)}`;
  }
  const headers = frame.headers;
  if (!Array.isArray(headers) || !headers.every((h) => Array.isArray(h) && h.length === 2 && h.every((v) => typeof v === "string"))) {
    return "the function answered with malformed headers";
  }
  if (headers.length > MAX_RESPONSE_HEADERS) return `the function answered with more than ${MAX_RESPONSE_HEADERS} headers`;
  if (body.byteLength > maxResponseBytes) return `the function's response exceeds ${maxResponseBytes} bytes (MAX_RESPONSE_BYTES)`;
  return { status: frame.status, headers, body };
}

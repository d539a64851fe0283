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
    // The code is TypeScript compiled to JavaScript, with an inline source map (sandbox/typescript.ts).
    ...(spec.runtime === "typescript" ? { typescript: true } : {}),
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
 * Result-channel frames: written by the prescript (locked, handler, response, chunk, body_end,
 * error) and by the library (forbidden, lockdown_failed). User code can write any of them too:
 * the gateway believes `locked` and `lockdown_failed` only as the first frame, `forbidden` never.
 * A response is whole (`body_length` bytes follow its line) or streamed (`streamed: true`: its
 * body follows in `chunk` frames, each followed by `length` bytes, until `body_end`).
 */
export type Frame =
  | { kind: "locked" }
  | { kind: "handler" }
  | { kind: "response"; status: number; headers: [string, string][]; body_length?: number; streamed?: boolean }
  | { kind: "chunk"; length: number }
  | { kind: "body_end" }
  | { kind: "error"; message: string }
  | { kind: "forbidden"; syscall: number; name: string }
  | { kind: "lockdown_failed"; message: string };

type KeptKind = Exclude<Frame["kind"], "response" | "chunk" | "body_end">;
/**
 * Frames as the result channel carried them, the response validated (or the reason it is not
 * usable). A streamed response's `value.body` holds its collected body, or nothing when the body
 * was handed on as it came.
 */
export type ParsedFrame = Extract<Frame, { kind: KeptKind }> | { kind: "response"; value: SandboxResponse | string; streamed?: true };
const KEPT_KINDS = new Set<string>(["locked", "handler", "error", "forbidden", "lockdown_failed"] satisfies KeptKind[]);

export function frameOf<K extends ParsedFrame["kind"]>(frames: ParsedFrame[], kind: K): Extract<ParsedFrame, { kind: K }> | undefined {
  return frames.find((f): f is Extract<ParsedFrame, { kind: K }> => f.kind === kind);
}

/** What a run's result channel held, read frame by frame as it arrived. */
export interface ResultFrames {
  frames: ParsedFrame[];
  /** Why the channel stopped making sense, or null. */
  malformed: string | null;
  /** The response went past MAX_RESPONSE_BYTES (the process is killed for it). */
  tooLarge: boolean;
  /** A streamed body: whether its `body_end` came (null when the response was not streamed). */
  bodyEnded: boolean | null;
}

/** Where a streamed body goes as the reader meets it; without one, it is collected into its response frame. */
export interface BodySink {
  head(response: SandboxResponse): void;
  data(bytes: Buffer): void;
  end(): void;
}

export interface ResultReaderOptions {
  maxResponseBytes: number;
  /** Warm instances: the end frame of this invocation; bytes after it are the next one's (`rest`). */
  endFrame?: Buffer;
  sink?: BodySink;
  /** The answer cannot be delivered any more (past MAX_RESPONSE_BYTES, a broken stream): the process should die now. */
  hopeless?: () => void;
}

/** Bytes of kept frames (all but response bodies) one run may write; past it the channel is malformed. */
export const KEPT_FRAMES_CAP = 4 * FRAME_HEADER_CAP;
const EMPTY = Buffer.alloc(0);
const NEWLINE = Buffer.from("\n");

/**
 * Reads the result channel as it arrives: JSON lines, each whole response followed by its body
 * bytes, each chunk of a streamed one by its own. What is kept stays bounded whatever the
 * function writes: a whole body up to MAX_RESPONSE_BYTES, a streamed body not at all (it goes
 * to the sink as it comes), the other frames up to KEPT_FRAMES_CAP; past the point where the
 * channel stops making sense, bytes are only searched for the end frame.
 */
export class ResultReader {
  private readonly frames: ParsedFrame[] = [];
  private malformed: string | null = null;
  private tooLarge = false;
  /** A partial line carried to the next push. */
  private line: Buffer = EMPTY;
  /**
   * Body bytes still to come for the frame being read, and what becomes of them: kept for `into`
   * (a whole response, or a streamed one being collected), handed to the sink, or dropped.
   */
  private body: { left: number; into: Extract<ParsedFrame, { kind: "response" }> | "sink" | "drop"; chunks: Buffer[] } | null = null;
  private stream: { frame: Extract<ParsedFrame, { kind: "response" }>; bytes: number; chunks: Buffer[] | null; ended: boolean } | null =
    null;
  private keptBytes = 0;
  /** Warm instances: set once the end frame was read; `rest` holds what followed it. */
  ended = false;
  rest: Buffer = EMPTY;

  constructor(private readonly options: ResultReaderOptions) {}

  push(data: Buffer): void {
    if (this.ended) {
      // What a late write leaves for the next invocation; kept bounded.
      if (this.rest.length < FRAME_HEADER_CAP)
        this.rest = Buffer.concat([this.rest, data.subarray(0, FRAME_HEADER_CAP - this.rest.length)]);
      return;
    }
    if (this.malformed !== null) {
      this.seekEnd(data);
      return;
    }
    let at = 0;
    while (at < data.length && this.malformed === null && !this.ended) {
      if (this.body !== null) {
        at = this.readBody(data, at);
        continue;
      }
      const newline = data.indexOf(10, at);
      if (newline < 0) {
        const partial = data.subarray(at);
        if (this.line.length + partial.length > FRAME_HEADER_CAP) {
          this.fail("an unterminated or oversized frame", Buffer.concat([this.line, data.subarray(at)]));
          return;
        }
        this.line = Buffer.concat([this.line, partial]);
        return;
      }
      const text = this.line.length > 0 ? Buffer.concat([this.line, data.subarray(at, newline)]) : data.subarray(at, newline);
      this.line = EMPTY;
      if (text.length > FRAME_HEADER_CAP) {
        this.fail("an unterminated or oversized frame", data.subarray(newline + 1), text);
        return;
      }
      at = newline + 1;
      if (this.isEndFrame(text)) {
        this.ended = true;
        this.rest = Buffer.from(data.subarray(at));
        return;
      }
      this.readFrame(text, data.subarray(at));
    }
  }

  /** The channel's end of file: what was read, with a frame cut short called malformed. */
  finish(): ResultFrames {
    if (this.malformed === null && !this.ended) {
      if (this.line.length > 0) this.malformed = "an unterminated or oversized frame";
      else if (this.body !== null && this.stream === null) this.malformed = "a response whose body length does not match";
      else if (this.body !== null) this.malformed = "a body chunk cut short";
    }
    return this.result();
  }

  result(): ResultFrames {
    return {
      frames: this.frames,
      malformed: this.malformed,
      tooLarge: this.tooLarge,
      bodyEnded: this.stream === null ? null : this.stream.ended,
    };
  }

  /** No reader is left for a streamed body: what comes of it is dropped (the frames after it are still read). */
  dropBody(): void {
    if (this.stream !== null) this.stream.chunks = null;
    if (this.body !== null && this.body.into === this.stream?.frame) this.body.into = "drop";
    if (this.body?.into === "sink") this.body.into = "drop";
    this.options.sink = undefined;
  }

  private readFrame(text: Buffer, following: Buffer): void {
    let frame: Frame;
    try {
      frame = JSON.parse(text.toString("utf8")) as Frame;
    } catch {
      this.fail("a frame that is not JSON", following, text);
      return;
    }
    const kind: unknown = frame?.kind;
    if (frame.kind === "response") {
      this.readResponse(frame, text, following);
      return;
    }
    if (frame.kind === "chunk") {
      const stream = this.stream;
      if (stream === null || stream.ended) {
        this.fail("a body chunk outside a streamed response", following, text);
        return;
      }
      if (!Number.isSafeInteger(frame.length) || frame.length < 0) {
        this.fail("a body chunk of no valid length", following, text);
        return;
      }
      stream.bytes += frame.length;
      if (stream.bytes > this.options.maxResponseBytes) {
        this.overflow(frame.length);
        return;
      }
      const into =
        typeof stream.frame.value === "string" ? "drop" : stream.chunks !== null ? stream.frame : this.options.sink ? "sink" : "drop";
      if (frame.length > 0) this.body = { left: frame.length, into, chunks: [] };
      return;
    }
    if (frame.kind === "body_end") {
      const stream = this.stream;
      if (stream === null || stream.ended) {
        this.fail("a body end outside a streamed response", following, text);
        return;
      }
      stream.ended = true;
      if (stream.chunks !== null && typeof stream.frame.value !== "string") {
        stream.frame.value.body = Buffer.concat(stream.chunks);
        stream.chunks = null;
      } else if (typeof stream.frame.value !== "string") this.options.sink?.end();
      return;
    }
    if (typeof kind !== "string" || !KEPT_KINDS.has(kind)) {
      this.fail("a frame of unknown kind", following, text);
      return;
    }
    this.keptBytes += text.length;
    if (this.keptBytes > KEPT_FRAMES_CAP) {
      this.fail("more frames than a run may write", following, text);
      return;
    }
    this.frames.push(frame as ParsedFrame);
  }

  private readResponse(frame: Extract<Frame, { kind: "response" }>, text: Buffer, following: Buffer): void {
    if (this.stream !== null || this.frames.some((f) => f.kind === "response")) {
      this.fail("a second response", following, text);
      return;
    }
    if (frame.streamed === true) {
      const value = toResponse(frame, EMPTY, this.options.maxResponseBytes);
      const parsed: ParsedFrame = { kind: "response", value, streamed: true };
      this.frames.push(parsed);
      this.stream = { frame: parsed, bytes: 0, chunks: this.options.sink ? null : [], ended: false };
      if (typeof value === "string") this.options.hopeless?.();
      else this.options.sink?.head(value);
      return;
    }
    const length = frame.body_length;
    if (!Number.isSafeInteger(length) || (length as number) < 0) {
      this.fail("a response whose body length does not match", following, text);
      return;
    }
    const bodyLength = length as number;
    if (bodyLength > this.options.maxResponseBytes) {
      this.frames.push({ kind: "response", value: toResponse(frame, EMPTY, this.options.maxResponseBytes, bodyLength) });
      this.overflow(bodyLength);
      return;
    }
    const parsed: Extract<ParsedFrame, { kind: "response" }> = {
      kind: "response",
      value: toResponse(frame, EMPTY, this.options.maxResponseBytes),
    };
    this.frames.push(parsed);
    this.body = { left: bodyLength, into: parsed, chunks: [] };
    if (bodyLength === 0) this.endBody();
  }

  /** Takes what `data` holds of the current body from `at`; returns where the next frame starts. */
  private readBody(data: Buffer, at: number): number {
    const body = this.body!;
    const piece = data.subarray(at, at + Math.min(body.left, data.length - at));
    body.left -= piece.length;
    if (body.into === "sink") this.options.sink?.data(piece);
    else if (body.into !== "drop") body.chunks.push(piece);
    if (body.left === 0) this.endBody();
    return at + piece.length;
  }

  private endBody(): void {
    const { into, chunks } = this.body!;
    this.body = null;
    if (into === "sink" || into === "drop" || typeof into.value === "string") return;
    if (into === this.stream?.frame) this.stream.chunks?.push(...chunks);
    else into.value.body = Buffer.concat(chunks);
  }

  /** Past MAX_RESPONSE_BYTES: the answer cannot go out; its bytes are dropped until the process is gone. */
  private overflow(length: number): void {
    this.tooLarge = true;
    this.dropBody();
    this.body = length > 0 ? { left: length, into: "drop", chunks: [] } : null;
    this.options.hopeless?.();
  }

  /**
   * The channel stopped making sense at `line` (the offending one, when it is a whole line). The
   * end frame is looked for from there on, the line included: a function that left half a line
   * makes the prescript's end frame the tail of it.
   */
  private fail(reason: string, following: Buffer, line?: Buffer): void {
    this.malformed = reason;
    this.line = EMPTY;
    this.body = null;
    // A streamed body cannot go on after a frame that makes no sense: its reader is told, the process dies.
    if (this.stream !== null && !this.stream.ended) this.options.hopeless?.();
    this.dropBody();
    this.seekEnd(line === undefined ? following : Buffer.concat([line, NEWLINE, following]));
  }

  /** After a malformed frame: only the end frame is looked for, so a warm instance's next invocation still starts where it should. */
  private seekEnd(data: Buffer): void {
    const marker = this.options.endFrame;
    if (marker === undefined) return;
    const joined = this.line.length > 0 ? Buffer.concat([this.line, data]) : data;
    const found = joined.indexOf(marker);
    if (found >= 0) {
      this.ended = true;
      this.line = EMPTY;
      this.rest = Buffer.from(joined.subarray(found + marker.length));
      return;
    }
    this.line = Buffer.from(joined.subarray(Math.max(0, joined.length - marker.length + 1)));
  }

  private isEndFrame(line: Buffer): boolean {
    const marker = this.options.endFrame;
    return marker !== undefined && line.length === marker.length - 1 && marker.subarray(0, line.length).equals(line);
  }
}

/** Reads a whole result channel at once (what a run left behind, or a test's bytes). */
export function parseFrames(data: Buffer, maxResponseBytes: number): ResultFrames {
  const reader = new ResultReader({ maxResponseBytes });
  reader.push(data);
  return reader.finish();
}

/** Validates a response frame's head and body; returns an error message instead when it is not usable. */
export function toResponse(
  frame: Extract<Frame, { kind: "response" }>,
  body: Buffer,
  maxResponseBytes: number,
  bodyLength = body.byteLength,
): SandboxResponse | string {
  if (!Number.isInteger(frame.status) || frame.status < 200 || frame.status > 599) {
    return `the function answered with an invalid HTTP status: ${String(frame.status)}`;
  }
  const headers = frame.headers;
  if (!Array.isArray(headers) || !headers.every((h) => Array.isArray(h) && h.length === 2 && h.every((v) => typeof v === "string"))) {
    return "the function answered with malformed headers";
  }
  if (headers.length > MAX_RESPONSE_HEADERS) return `the function answered with more than ${MAX_RESPONSE_HEADERS} headers`;
  if (bodyLength > maxResponseBytes) return `the function's response exceeds ${maxResponseBytes} bytes (MAX_RESPONSE_BYTES)`;
  return { status: frame.status, headers, body };
}

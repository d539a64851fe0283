import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import type { Readable, Writable } from "node:stream";
import type { CapturedOutput, OutputChannel, RunOptions } from "../core/runner.js";
import type { InterpreterKind } from "../core/runtimes.js";
import {
  type InterpreterSettings,
  interpreterCommand,
  interpreterStdio,
  killProcessGroup,
  type ProcessExit,
  SPAWN_ENV,
} from "./process.js";
import { encodeLockLine, endFrame, type LockParams, outputMarker, REQUEST_FD, RESULT_FD } from "./protocol.js";
import { ResultChannel } from "./result-channel.js";
import { LISTENER_CHANNEL_FD, type ListenerLink } from "./seccomp-listener.js";
import { RunWatch } from "./watch.js";

// One warm interpreter (isolation "function"): locked down once, then handed invocations one at
// a time on fd 3. Each invocation ends with the nonce the gateway sent with it: a marker on
// stdout and stderr and an `end` frame on fd 4 (prescripts/PROTOCOL.md, "Warm instances"); the
// three channels are cut there, so every invocation gets its own output and result.

/** How one invocation on a warm process ended: `ended` when it reached its end marks, else the process is gone. */
export interface WarmExit extends ProcessExit {
  ended: boolean;
}

export class WarmProcess {
  private readonly stdout: Segments;
  private readonly stderr: Segments;
  /** The current invocation's result channel; between invocations, what a late write left (bounded). */
  private result: ResultChannel | null = null;
  private carry: Buffer = Buffer.alloc(0);
  private readonly closed: Promise<[number | null, NodeJS.Signals | null]>;
  private spawnError: string | null = null;
  private exited = false;
  /** Reaped: its pid may belong to another process now, so it is never signalled again. */
  private reaped = false;
  private onProgress: (() => void) | null = null;

  private constructor(
    readonly runtime: InterpreterKind,
    private readonly child: ChildProcess,
    private readonly settings: InterpreterSettings,
    private readonly link: ListenerLink | null,
  ) {
    this.stdout = new Segments(settings.outputCapBytes);
    this.stderr = new Segments(settings.outputCapBytes);
    this.closed = once(child, "close") as Promise<[number | null, NodeJS.Signals | null]>;
    void this.closed.then(() => (this.exited = true));
    child.once("exit", () => (this.reaped = true));
    child.on("error", (error) => {
      this.spawnError ??= error.message;
    });
    for (const stream of child.stdio) stream?.on("error", () => {});
    child.stdout!.on("data", (chunk: Buffer) => {
      this.stdout.push(chunk);
      this.progress();
    });
    child.stderr!.on("data", (chunk: Buffer) => {
      this.stderr.push(chunk);
      this.progress();
    });
    this.resultStream.on("data", (chunk: Buffer) => {
      link?.onResult(chunk, child.pid);
      if (this.result !== null) this.result.push(chunk);
      else if (this.carry.length < FRAME_CARRY_CAP) this.carry = Buffer.concat([this.carry, chunk]);
      this.progress();
    });
  }

  /** Spawns the interpreter with the prescript; `confine` (the cgroup join) runs before the lock line goes out. */
  static start(runtime: InterpreterKind, settings: InterpreterSettings, params: LockParams, confine: (pid: number) => void): WarmProcess {
    const [binary, args] = interpreterCommand(runtime, settings);
    let warm: WarmProcess | undefined;
    const link = settings.listener?.link(() => warm?.kill()) ?? null;
    const child = spawn(binary, args, {
      cwd: "/",
      env: SPAWN_ENV,
      detached: true,
      stdio: interpreterStdio(link),
    });
    link?.childEndSent();
    warm = new WarmProcess(runtime, child, settings, link);
    void warm.closed.then(() => link?.close());
    (child.stdin as Writable).end(settings.prescripts[runtime]);
    if (child.pid !== undefined) {
      try {
        confine(child.pid);
        warm.requestStream.write(encodeLockLine(params, link ? LISTENER_CHANNEL_FD : -1));
      } catch (error) {
        warm.spawnError = `could not confine the process: ${(error as Error).message}`;
        warm.kill();
      }
    }
    return warm;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Resident memory (/proc/<pid>/status VmRSS), or null when the process is gone. */
  rssBytes(): number | null {
    try {
      const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${this.child.pid}/status`, "utf8"))?.[1];
      return kb === undefined ? null : Number(kb) * 1024;
    } catch {
      return null;
    }
  }

  get alive(): boolean {
    return !this.exited && this.spawnError === null && this.child.pid !== undefined;
  }

  /**
   * Runs one invocation: the payload (which carries `nonce`) goes out on fd 3; resolves when all
   * three channels reached their end marks, or when the process is gone (killed at the deadline,
   * when `stop` or the caller's signal aborts, or ended by the function).
   */
  async invoke(payload: Buffer, nonce: string, timeoutMs: number, stop: AbortSignal, options: RunOptions = {}): Promise<WarmExit> {
    const marker = outputMarker(nonce);
    this.stdout.begin(marker, options, "stdout");
    this.stderr.begin(marker, options, "stderr");
    const watch = new RunWatch(timeoutMs, stop, () => this.kill(), options.signal);
    this.link?.begin();
    const result = new ResultChannel(this.resultStream, {
      maxResponseBytes: this.settings.maxResponseBytes,
      endFrame: endFrame(nonce),
      onStream: options.onStream,
      hopeless: () => this.kill(),
      cancelled: watch.clientGone,
    });
    this.result = result;
    const carried = this.carry;
    this.carry = Buffer.alloc(0);
    if (carried.length > 0) result.push(carried);

    const ended = new Promise<void>((resolve) => {
      this.onProgress = () => {
        if (this.stdout.ended && this.stderr.ended && result.ended) resolve();
      };
      this.onProgress();
    });
    if (this.alive) this.requestStream.write(payload);
    const outcome = await Promise.race([ended.then(() => null), this.closed]);
    this.onProgress = null;
    const ends = watch.end();
    this.result = null;
    this.carry = result.rest.subarray(0, FRAME_CARRY_CAP);
    const [exitCode, signal] = outcome ?? [0, null];
    return {
      ended: outcome === null,
      exitCode,
      signal,
      ...ends,
      spawnError: this.spawnError ?? this.link?.failure ?? (this.child.pid === undefined ? "the interpreter did not start" : null),
      stdout: this.stdout.take(),
      stderr: this.stderr.take(),
      result: result.finish(),
      denied: this.link?.record() ?? null,
    };
  }

  /** SIGKILLs the process group; a streamed body still open is cut short, and the rest of its channel dropped. */
  kill(): void {
    this.result?.abandon();
    if (!this.reaped) killProcessGroup(this.child.pid);
  }

  /** Kills the process and waits until it is gone. */
  async discard(): Promise<void> {
    this.kill();
    if (this.child.pid !== undefined) await this.closed;
  }

  private progress(): void {
    this.onProgress?.();
  }

  private get requestStream(): Writable {
    return this.child.stdio[REQUEST_FD] as Writable;
  }

  private get resultStream(): Readable {
    return this.child.stdio[RESULT_FD] as Readable;
  }
}

/** Result-channel bytes a late write may leave for the next invocation (it reads them as its own frames). */
const FRAME_CARRY_CAP = 64 * 1024;

/**
 * One output channel cut into invocations at a marker. Keeps the first `cap` bytes of the current
 * invocation and still looks for the marker past it; what arrives after the marker (a thread that
 * wrote late) is kept, bounded, for the next invocation.
 */
export class Segments {
  private marker: Buffer | null = null;
  private chunks: Buffer[] = [];
  private size = 0;
  private truncated = false;
  /** Bytes that may be the start of a marker split across reads (held back: a live reader gets them once they are not). */
  private tail = Buffer.alloc(0);
  /** What came after the marker, before the next invocation began. */
  private carry: Buffer[] = [];
  private carrySize = 0;
  private listener: ((data: Buffer) => void) | null = null;
  ended = false;

  constructor(private readonly cap: number) {}

  /** Starts an invocation's segment; what it keeps goes to the run's `onOutput` as it comes (live output). */
  begin(marker: Buffer, options: RunOptions = {}, channel: OutputChannel = "stdout"): void {
    const onOutput = options.onOutput;
    this.listener = onOutput ? (data) => onOutput(channel, data) : null;
    this.marker = marker;
    this.ended = false;
    this.chunks = [];
    this.size = 0;
    this.truncated = false;
    this.tail = Buffer.alloc(0);
    const carried = Buffer.concat(this.carry);
    this.carry = [];
    this.carrySize = 0;
    if (carried.length > 0) this.push(carried);
  }

  /** Returns false once the current invocation passed the cap. */
  push(chunk: Buffer): boolean {
    if (this.marker === null || this.ended) {
      const room = this.cap - this.carrySize;
      if (room > 0) this.carry.push(chunk.subarray(0, room));
      this.carrySize += Math.min(room, chunk.length);
      return true;
    }
    const data = this.tail.length > 0 ? Buffer.concat([this.tail, chunk]) : chunk;
    const at = data.indexOf(this.marker);
    if (at >= 0) {
      this.ended = true;
      this.tail = Buffer.alloc(0);
      const fits = this.store(data.subarray(0, at));
      const after = data.subarray(at + this.marker.length);
      if (after.length > 0) this.push(after);
      return fits;
    }
    const keep = this.markerStartAtEnd(data);
    this.tail = Buffer.from(data.subarray(data.length - keep));
    return this.store(data.subarray(0, data.length - keep));
  }

  /** The length of the longest end of `data` that begins the marker (0 for output that cannot be part of one). */
  private markerStartAtEnd(data: Buffer): number {
    const marker = this.marker!;
    for (let length = Math.min(marker.length - 1, data.length); length > 0; length--) {
      if (data[data.length - length] === marker[0] && data.subarray(data.length - length).equals(marker.subarray(0, length))) return length;
    }
    return 0;
  }

  /** The current invocation's bytes (with any unmatched tail, when the process ended without a marker). */
  take(): CapturedOutput {
    if (!this.ended && this.tail.length > 0) this.store(this.tail);
    this.tail = Buffer.alloc(0);
    this.listener = null;
    this.marker = this.ended ? this.marker : null;
    return { data: Buffer.concat(this.chunks, this.size), truncated: this.truncated };
  }

  private store(data: Buffer): boolean {
    const room = this.cap - this.size;
    if (data.length > room) {
      if (room > 0) {
        this.chunks.push(Buffer.from(data.subarray(0, room)));
        this.listener?.(data.subarray(0, room));
      }
      this.size = this.cap;
      this.truncated = true;
      return false;
    }
    if (data.length > 0) {
      this.chunks.push(Buffer.from(data));
      this.listener?.(data);
    }
    this.size += data.length;
    return !this.truncated;
  }
}

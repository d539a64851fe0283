import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import type { Readable, Writable } from "node:stream";
import type { CapturedOutput, OutputChannel, RunOptions } from "../core/runner.js";
import type { InterpreterKind } from "../core/runtimes.js";
import type { Interpreters } from "./binaries.js";
import { BASE_ENV, encodeLockLine, type LockParams, REQUEST_FD, RESULT_FD, type ResultFrames } from "./protocol.js";
import { ResultChannel } from "./result-channel.js";
import { RunWatch } from "./watch.js";

// One interpreter process: spawned with the prescript on stdin (it loads the library
// and waits), then handed one invocation on fd 3 and watched until it exits.

/**
 * The environment the interpreter is started with: BASE_ENV, a GODEBUG that
 * stops the library's Go runtime from keeping its cgroup CPU files open
 * (container-aware GOMAXPROCS), which the lock-down would refuse, and one Go
 * processor: the library only makes system calls, and each interpreter's Go
 * runtime starts fewer threads (about 0.3 ms less CPU per interpreter).
 */
export const SPAWN_ENV: Readonly<Record<string, string>> = Object.freeze({
  ...BASE_ENV,
  GODEBUG: "containermaxprocs=0,updatemaxprocs=0",
  GOMAXPROCS: "1",
});

export interface InterpreterSettings {
  interpreters: Interpreters;
  /** The rendered prescripts. */
  prescripts: Record<InterpreterKind, string>;
  outputCapBytes: number;
  /** MAX_RESPONSE_BYTES: a whole response's body, or all of a streamed one's chunks. */
  maxResponseBytes: number;
  /**
   * V8's heap limit (MB), set only when no cgroup limits memory: any V8 flag on the command line
   * makes Node refuse its built-in code cache, which cost each Node start ~35 ms more CPU (loading
   * the Web classes went from ~27 to ~60 ms); with cgroups the function's own limit holds.
   */
  nodeHeapMb: number | null;
}

/** The binary and arguments an interpreter is started with (the prescript then comes on stdin). */
export function interpreterCommand(runtime: InterpreterKind, settings: InterpreterSettings): [string, string[]] {
  const { python, node } = settings.interpreters;
  if (runtime === "python") return [python.binary, ["-I", "-S", "-B", "-u", "-"]];
  return [node.binary, settings.nodeHeapMb === null ? ["-"] : [`--max-old-space-size=${settings.nodeHeapMb}`, "-"]];
}

/** How the process ended, and what it left on its channels. */
export interface ProcessExit {
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
  timedOut: boolean;
  interrupted: boolean;
  /** The caller stopped the run: its client went away (RunOptions.signal, or a streamed body cancelled). */
  clientClosed: boolean;
  spawnError: string | null;
  stdout: CapturedOutput;
  stderr: CapturedOutput;
  result: ResultFrames;
}

/** An interpreter that serves one invocation: a spawned process (below) or a forked child (forkserver.ts). */
export interface Interpreter {
  readonly runtime: InterpreterKind;
  /** Still waiting for an invocation, and able to take one. */
  readonly ready: boolean;
  run(
    params: LockParams,
    payload: Buffer,
    timeoutMs: number,
    stop: AbortSignal,
    confine: (pid: number) => void,
    options?: RunOptions,
  ): Promise<ProcessExit>;
  /** Lets it go without an invocation. */
  discard(): Promise<void>;
}

export class InterpreterProcess implements Interpreter {
  private readonly stdout: Capture;
  private readonly stderr: Capture;
  private result: ResultChannel | null = null;
  private readonly closed: Promise<[number | null, NodeJS.Signals | null]>;
  private spawnError: string | null = null;
  private exited = false;
  /** Reaped: its pid may belong to another process now, so it is never signalled again. */
  private reaped = false;
  private dispatched = false;

  private constructor(
    readonly runtime: InterpreterKind,
    private readonly child: ChildProcess,
    private readonly settings: InterpreterSettings,
  ) {
    this.stdout = new Capture(settings.outputCapBytes);
    this.stderr = new Capture(settings.outputCapBytes);
    this.closed = once(child, "close") as Promise<[number | null, NodeJS.Signals | null]>;
    void this.closed.then(() => (this.exited = true));
    child.once("exit", () => (this.reaped = true));
    child.on("error", (error) => {
      this.spawnError ??= error.message;
    });
    // A child that dies early makes writes fail (EPIPE); that must never reach the gateway.
    for (const stream of child.stdio) stream?.on("error", () => {});
    child.stdout!.on("data", (chunk: Buffer) => this.stdout.push(chunk));
    child.stderr!.on("data", (chunk: Buffer) => this.stderr.push(chunk));
    this.resultStream.on("data", (chunk: Buffer) => this.result?.push(chunk)); // nothing comes before the lock line is sent
  }

  /** Starts an interpreter that loads the library and waits for its invocation. */
  static start(runtime: InterpreterKind, settings: InterpreterSettings, cwd: string): InterpreterProcess {
    const [binary, args] = interpreterCommand(runtime, settings);
    const child = spawn(binary, args, {
      // Node's process.argv0 cannot be changed once it runs: keep the host's path out of it.
      // (Python finds its prefix from argv[0]; the prescript renames it after the lock.)
      argv0: runtime === "node" ? "node" : binary,
      cwd,
      env: SPAWN_ENV,
      detached: true, // its own process group, killed as one
      stdio: ["pipe", "pipe", "pipe", "pipe", "pipe"],
    });
    const interpreter = new InterpreterProcess(runtime, child, settings);
    (child.stdin as Writable).end(settings.prescripts[runtime]);
    return interpreter;
  }

  /** Still waiting for an invocation, and able to take one. */
  get ready(): boolean {
    return !this.exited && !this.dispatched && this.spawnError === null && this.child.pid !== undefined;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * Hands the process its invocation: `confine` runs first (the cgroup join; if it
   * throws, the process is killed and never sees a byte of the function), then the
   * lock-down parameters and the payload go out on fd 3. Resolves when the process
   * has exited (and a streamed body has been read), at the latest at the deadline or
   * when `stop` or the caller's signal aborts.
   */
  async run(
    params: LockParams,
    payload: Buffer,
    timeoutMs: number,
    stop: AbortSignal,
    confine: (pid: number) => void,
    options: RunOptions = {},
  ): Promise<ProcessExit> {
    this.dispatched = true;
    const watch = new RunWatch(timeoutMs, stop, () => this.kill(), options.signal);
    this.result = new ResultChannel(this.resultStream, {
      maxResponseBytes: this.settings.maxResponseBytes,
      onStream: options.onStream,
      hopeless: () => this.kill(),
      cancelled: watch.clientGone,
    });
    this.stdout.follow(options, "stdout");
    this.stderr.follow(options, "stderr");

    if (this.child.pid !== undefined && !this.exited) {
      try {
        confine(this.child.pid);
        this.requestStream.end(Buffer.concat([encodeLockLine(params), payload]));
      } catch (error) {
        this.spawnError = `could not confine the process: ${(error as Error).message}`;
        this.kill();
      }
    }

    const [exitCode, signal] = await this.closed;
    return {
      exitCode,
      signal,
      ...watch.end(),
      spawnError: this.spawnError ?? (this.child.pid === undefined ? "the interpreter did not start" : null),
      stdout: this.stdout.output(),
      stderr: this.stderr.output(),
      result: this.result.finish(),
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

  private get requestStream(): Writable {
    return this.child.stdio[REQUEST_FD] as Writable;
  }

  private get resultStream(): Readable {
    return this.child.stdio[RESULT_FD] as Readable;
  }
}

/** Keeps the first `cap` bytes of a stream and counts the rest, so memory stays bounded. */
export class Capture {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private truncated = false;
  private listener: ((data: Buffer) => void) | null = null;

  constructor(private readonly cap: number) {}

  /** Hands what is kept to the run's `onOutput` as it comes (live output shows what the log keeps). */
  follow(options: RunOptions, channel: OutputChannel): void {
    const onOutput = options.onOutput;
    this.listener = onOutput ? (data) => onOutput(channel, data) : null;
  }

  /** Returns false once the cap has been passed. */
  push(chunk: Buffer): boolean {
    const room = this.cap - this.size;
    if (chunk.length > room) {
      if (room > 0) this.keep(chunk.subarray(0, room));
      this.size = this.cap;
      this.truncated = true;
      return false;
    }
    this.keep(chunk);
    return true;
  }

  private keep(data: Buffer): void {
    this.chunks.push(data);
    this.size += data.length;
    this.listener?.(data);
  }

  output(): CapturedOutput {
    return { data: Buffer.concat(this.chunks, this.size), truncated: this.truncated };
  }
}

/** SIGKILLs the process group led by `pid` (interpreters start in a group of their own). */
export function killProcessGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

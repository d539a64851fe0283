import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import type { Readable, Writable } from "node:stream";
import type { CapturedOutput, OutputChannel, RunOptions } from "../core/runner.js";
import type { InterpreterKind } from "../core/runtimes.js";
import type { Interpreters } from "./binaries.js";
import { BASE_ENV, encodeLockLine, type LockParams, REQUEST_FD, RESULT_FD, type ResultFrames } from "./protocol.js";
import { ResultChannel } from "./result-channel.js";
import { type DeniedRecord, LISTENER_CHANNEL_FD, type ListenerLink, type SeccompListener } from "./seccomp-listener.js";
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
  /** The gateway's seccomp listener: each interpreter hands it the refused calls it makes. Null: the kernel answers them. */
  listener: SeccompListener | null;
}

/** The stdio of an interpreter: stdin, stdout, stderr, the request and result channels, and the listener's channel. */
export function interpreterStdio(link: ListenerLink | null): ("pipe" | number)[] {
  return ["pipe", "pipe", "pipe", "pipe", "pipe", ...(link === null ? [] : [link.childEnd])];
}

/**
 * The binary and arguments an interpreter is started with (the prescript then comes on stdin).
 * Node starts through the launcher, which refuses io_uring to it before its event loop starts,
 * with "node" as its argv[0]: Node's process.argv0 cannot be changed once it runs, and the host's
 * path must stay out of it (Python finds its prefix from argv[0]; the prescript renames it after
 * the lock).
 */
export function interpreterCommand(runtime: InterpreterKind, settings: InterpreterSettings): [string, string[]] {
  const { python, node } = settings.interpreters;
  if (runtime === "python") return [python.binary, ["-I", "-S", "-B", "-u", "-"]];
  const flags = settings.nodeHeapMb === null ? [] : [`--max-old-space-size=${settings.nodeHeapMb}`];
  return [node.launcher, [node.binary, "node", ...flags, "-"]];
}

/** read(2)'s number, as /proc/<pid>/syscall shows it. */
const SYS_READ = process.arch === "x64" ? 0 : 63;

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
  /** What the seccomp listener recorded; null when the process ran without one (SANDBOX_SECCOMP_LISTENER off, or an older kernel). */
  denied: DeniedRecord | null;
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
  /** Moved into its slot's cgroup ahead of its invocation (a standby prepared for a slot). */
  private joined = false;

  private constructor(
    readonly runtime: InterpreterKind,
    private readonly child: ChildProcess,
    private readonly settings: InterpreterSettings,
    private readonly link: ListenerLink | null,
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
    this.resultStream.on("data", (chunk: Buffer) => {
      link?.onResult(chunk, child.pid);
      this.result?.push(chunk); // nothing comes before the lock line is sent
    });
  }

  /** Starts an interpreter that loads the library and waits for its invocation. */
  static start(runtime: InterpreterKind, settings: InterpreterSettings, cwd: string): InterpreterProcess {
    const [binary, args] = interpreterCommand(runtime, settings);
    let interpreter: InterpreterProcess | undefined;
    const link = settings.listener?.link(() => interpreter?.kill()) ?? null;
    const child = spawn(binary, args, {
      cwd,
      env: SPAWN_ENV,
      detached: true, // its own process group, killed as one
      stdio: interpreterStdio(link),
    });
    link?.childEndSent();
    interpreter = new InterpreterProcess(runtime, child, settings, link);
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
        if (!this.joined) confine(this.child.pid);
        this.requestStream.end(Buffer.concat([encodeLockLine(params, this.link ? LISTENER_CHANNEL_FD : -1), payload]));
      } catch (error) {
        this.spawnError = `could not confine the process: ${(error as Error).message}`;
        this.kill();
      }
    }

    const [exitCode, signal] = await this.closed;
    const denied = this.link?.record() ?? null;
    this.link?.close();
    return {
      exitCode,
      signal,
      ...watch.end(),
      spawnError: this.spawnError ?? this.link?.failure ?? (this.child.pid === undefined ? "the interpreter did not start" : null),
      stdout: this.stdout.output(),
      stderr: this.stderr.output(),
      result: this.result.finish(),
      denied,
    };
  }

  /** Whether it waits for its invocation: its main thread blocked reading fd 3 (from /proc). */
  waiting(): boolean {
    try {
      const [nr, fd] = fs.readFileSync(`/proc/${this.child.pid}/syscall`, "utf8").split(" ");
      return Number(nr) === SYS_READ && fd === `0x${REQUEST_FD}`;
    } catch {
      return false;
    }
  }

  /**
   * Moves the process into a slot's cgroup (its cgroup.procs files) ahead of its invocation, off
   * the event loop (a migration waits for an RCU grace period: milliseconds). Call it once the
   * standby waits: what it allocated while starting stays charged where it was, as for a standby
   * moved when its invocation comes.
   */
  async joinAhead(cgroupProcs: readonly string[]): Promise<void> {
    if (this.child.pid === undefined || this.dispatched) return;
    for (const file of cgroupProcs) {
      if (this.reaped) return; // its pid may be another process's now
      await fs.promises.writeFile(file, String(this.child.pid));
    }
    this.joined = cgroupProcs.length > 0;
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
    this.link?.close();
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

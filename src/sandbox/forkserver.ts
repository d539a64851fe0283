import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import os from "node:os";
import { closeFd, pipe, seqpacketPair, sendFds } from "./fdpass.js";
import { Capture, SPAWN_ENV, type Interpreter, type InterpreterSettings, type ProcessExit } from "./process.js";
import { encodeLockLine, type LockParams } from "./protocol.js";
import { rssBytes } from "./memory.js";

// The gateway's side of the Python fork-server (prescripts/forkserver.py): one parent
// interpreter, started once and replaced when it dies or stops answering, forks one child per
// invocation. The gateway makes the child's channels (pipes) and hands them over with
// SCM_RIGHTS; the parent reports the child's pid, then its wait status once it reaped it.

/** How long the parent may take to answer a fork (counted from when it is serving) before it is deemed wedged. */
export const FORK_REPLY_TIMEOUT_MS = 2000;

/**
 * Standard-library modules the parent imports once, so a function that uses them does not pay
 * their import (json alone pulls in re and enum). None starts a thread or keeps a file open.
 */
export const PRELOAD_MODULES: readonly string[] = [
  "json", "re", "datetime", "base64", "binascii", "hashlib", "hmac", "urllib.parse", "collections", "typing",
  "dataclasses", "decimal", "math", "random", "time", "uuid", "itertools", "functools", "string", "struct",
  "enum", "traceback", "asyncio", "copy", "statistics", "textwrap", "zlib",
];

/** Signal numbers to names, the first name of each (SIGABRT, not its alias SIGIOT), as Node names a child's signal. */
const signalNames = new Map<number, string>();
for (const [name, value] of Object.entries(os.constants.signals)) if (!signalNames.has(value)) signalNames.set(value, name);

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** One fork as the parent reports it; `null` means the parent was lost before it answered. */
interface ForkRecord {
  pid: Deferred<number | null>;
  status: Deferred<number | null>;
}

/** One parent interpreter and the forks it has been asked for. */
class Parent {
  readonly child: ChildProcess;
  readonly ready = deferred<boolean>();
  private readonly control: number;
  private readonly byId = new Map<string, ForkRecord>();
  private readonly byPid = new Map<number, ForkRecord>();
  private nextId = 0;
  private pending = "";
  alive = true;
  /** Whether it reached its serving loop (a parent that dies before that is not restarted at once). */
  served = false;

  constructor(settings: InterpreterSettings, source: string, onExit: (parent: Parent) => void) {
    const [mine, theirs] = seqpacketPair();
    this.control = mine;
    this.child = spawn(settings.interpreters.python.binary, ["-I", "-S", "-B", "-u", "-"], {
      cwd: "/",
      env: SPAWN_ENV,
      detached: true,
      stdio: ["pipe", "pipe", "inherit", theirs],
    });
    closeFd(theirs);
    this.child.on("error", () => this.lost());
    this.child.on("close", () => {
      this.lost();
      onExit(this);
    });
    for (const stream of [this.child.stdin, this.child.stdout]) stream?.on("error", () => {});
    this.child.stdout!.setEncoding("utf8").on("data", (text: string) => this.onReport(text));
    this.child.stdin!.end(source);
  }

  /** Asks for a child with these channels (the parent's copies are closed here once sent). */
  fork(channels: number[]): ForkRecord | null {
    const id = String(++this.nextId);
    const record: ForkRecord = { pid: deferred(), status: deferred() };
    try {
      sendFds(this.control, Buffer.from(`fork ${id}`), channels);
    } catch {
      this.kill(); // full or gone: either way this parent is done
      return null;
    }
    this.byId.set(id, record);
    return record;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  kill(): void {
    if (!this.alive || this.child.pid === undefined) return;
    try {
      process.kill(this.child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }

  private onReport(text: string): void {
    const lines = (this.pending + text).split("\n");
    this.pending = lines.pop()!;
    for (const line of lines) {
      const [kind, a = "", b = ""] = line.split(" ");
      if (kind === "ready") {
        this.served = true;
        this.ready.resolve(true);
      }
      else if (kind === "pid") {
        const record = this.byId.get(a);
        this.byId.delete(a);
        record?.pid.resolve(Number(b));
        if (record) this.byPid.set(Number(b), record);
      } else if (kind === "exit") {
        this.byPid.get(Number(a))?.status.resolve(Number(b));
        this.byPid.delete(Number(a));
      }
    }
  }

  /** The parent is gone: every fork it still owed an answer gets `null`. */
  private lost(): void {
    if (!this.alive) return;
    this.alive = false;
    closeFd(this.control);
    this.ready.resolve(false);
    for (const record of [...this.byId.values(), ...this.byPid.values()]) {
      record.pid.resolve(null);
      record.status.resolve(null);
    }
    this.byId.clear();
    this.byPid.clear();
  }
}

export class ForkServer {
  private parent: Parent | null = null;
  private closed = false;

  constructor(
    private readonly settings: InterpreterSettings,
    private readonly source: string,
    private readonly replyTimeoutMs = FORK_REPLY_TIMEOUT_MS,
  ) {}

  /** Starts the parent now rather than at the first invocation. */
  start(): void {
    this.current();
  }

  /** A child-to-be for one invocation; it is forked when the invocation runs. */
  fork(): Interpreter {
    return new ForkedInterpreter(this, this.settings);
  }

  get pid(): number | undefined {
    return this.parent?.alive ? this.parent.pid : undefined;
  }

  /** Resident memory of the parent, from /proc. */
  rssBytes(): number {
    return this.pid === undefined ? 0 : rssBytes(this.pid);
  }

  /** The serving parent, started when there is none. */
  current(): Parent {
    if (this.parent?.alive) return this.parent;
    const parent = new Parent(this.settings, this.source, (gone) => {
      if (this.parent !== gone) return;
      this.parent = null;
      // One that had been serving is replaced at once; one that died starting, by the next fork (no restart loop).
      if (!this.closed && gone.served) this.start();
    });
    this.parent = parent;
    return parent;
  }

  /** Waits for the pid of a fork; a parent that does not answer in time is killed (and so replaced). */
  async pidOf(parent: Parent, record: ForkRecord, abort: AbortSignal): Promise<number | null> {
    const ready = await Promise.race([parent.ready.promise, aborted(abort)]);
    if (!ready) return null;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => {
        parent.kill();
        resolve(null);
      }, this.replyTimeoutMs);
    });
    try {
      return await Promise.race([record.pid.promise, timeout, aborted(abort)]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const parent = this.parent;
    this.parent = null;
    if (parent?.alive) {
      parent.kill();
      await new Promise((resolve) => parent.child.once("close", resolve));
    }
  }
}

function aborted(signal: AbortSignal): Promise<null> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(null);
    else signal.addEventListener("abort", () => resolve(null), { once: true });
  });
}

/** One forked child serving one invocation, seen through the same interface as a spawned interpreter. */
class ForkedInterpreter implements Interpreter {
  readonly runtime = "python" as const;
  private pid: number | null = null;
  private exited = false;
  private dispatched = false;

  constructor(
    private readonly server: ForkServer,
    private readonly settings: InterpreterSettings,
  ) {}

  get ready(): boolean {
    return !this.dispatched;
  }

  async discard(): Promise<void> {
    this.dispatched = true;
  }

  async run(params: LockParams, payload: Buffer, timeoutMs: number, stop: AbortSignal, confine: (pid: number) => void): Promise<ProcessExit> {
    this.dispatched = true;
    const started = performance.now();
    const ended = new AbortController(); // the deadline or the gateway's stop: kill, and stop waiting
    let timedOut = false;
    let interrupted = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ended.abort();
    }, timeoutMs);
    const onStop = () => {
      interrupted = true;
      ended.abort();
    };
    stop.addEventListener("abort", onStop, { once: true });
    if (stop.aborted) onStop();
    ended.signal.addEventListener("abort", () => this.kill(), { once: true });

    const stdout = new Capture(this.settings.outputCapBytes);
    const stderr = new Capture(this.settings.outputCapBytes);
    const result = new Capture(this.settings.resultCapBytes);
    const [outRead, outWrite] = pipe();
    const [errRead, errWrite] = pipe();
    const [requestRead, requestWrite] = pipe();
    const [resultRead, resultWrite] = pipe();
    const parent = this.server.current();
    const record = parent.fork([outWrite, errWrite, requestRead, resultWrite]);
    for (const fd of [outWrite, errWrite, requestRead, resultWrite]) closeFd(fd);
    const request = new net.Socket({ fd: requestWrite, readable: false, writable: true });
    request.on("error", () => {}); // a child that dies early makes writes fail (EPIPE)
    const readers = [
      drain(outRead, (chunk) => void stdout.push(chunk)),
      drain(errRead, (chunk) => void stderr.push(chunk)),
      drain(resultRead, (chunk) => {
        if (!result.push(chunk)) this.kill(); // an oversized response ends the invocation
      }),
    ];

    let spawnError: string | null = null;
    let status: number | null = null;
    const pid = record === null ? null : await this.server.pidOf(parent, record, ended.signal);
    if (pid === null) {
      if (!ended.signal.aborted) spawnError = "the Python fork-server did not fork (it was lost or stopped answering)";
      // No child to wait for: a fork that still comes reads end of file on its request channel and exits.
      request.destroy();
      for (const reader of readers) reader.socket.destroy();
    } else {
      this.pid = pid;
      if (ended.signal.aborted) this.kill();
      try {
        confine(pid);
        request.end(Buffer.concat([encodeLockLine(params), payload]));
      } catch (error) {
        spawnError = `could not confine the process: ${(error as Error).message}`;
        request.destroy();
        this.kill();
      }
      status = await record!.status.promise;
      if (status === null) {
        spawnError ??= "the Python fork-server was lost while the function ran";
        this.kill(); // not reaped, so its pid is still its own
      }
      this.exited = true;
    }
    await Promise.all(readers.map((reader) => reader.done));
    clearTimeout(timer);
    stop.removeEventListener("abort", onStop);
    return {
      exitCode: status !== null && (status & 0x7f) === 0 ? (status >> 8) & 0xff : null,
      signal: status !== null && (status & 0x7f) !== 0 ? (signalNames.get(status & 0x7f) ?? `signal ${status & 0x7f}`) : null,
      durationMs: performance.now() - started,
      timedOut,
      interrupted,
      spawnError,
      stdout: stdout.output(),
      stderr: stderr.output(),
      result: result.output(),
    };
  }

  /** SIGKILLs the child's process group (only while it has not been reaped: its pid could be reused after). */
  private kill(): void {
    if (this.pid === null || this.exited) return;
    try {
      process.kill(-this.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** Reads a pipe to its end; resolves when the last writer has closed it. */
function drain(fd: number, onData: (chunk: Buffer) => void): { socket: net.Socket; done: Promise<void> } {
  const socket = new net.Socket({ fd, readable: true, writable: false });
  socket.on("data", onData);
  const done = new Promise<void>((resolve) => {
    socket.on("error", () => resolve());
    socket.on("close", () => resolve());
  });
  return { socket, done };
}

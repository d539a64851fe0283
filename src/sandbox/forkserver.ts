import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import os from "node:os";
import { closeFd, seqpacketPair, sendFds, streamPair } from "./fdpass.js";
import { Capture, SPAWN_ENV, type Interpreter, type InterpreterSettings, type ProcessExit } from "./process.js";
import { encodeLockLine, EXIT_LOCKDOWN_FAILED, type LockParams } from "./protocol.js";
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
  /** Takes no more forks; ends once its children have (killing it earlier would kill them: PDEATHSIG). */
  retired = false;

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
        if (this.retired && this.byId.size === 0 && this.byPid.size === 0) this.kill();
      }
    }
  }

  retire(): void {
    this.retired = true;
    if (this.byId.size === 0 && this.byPid.size === 0) this.kill();
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
  /** Parents that take no more forks but still have children running. */
  private readonly retired = new Set<Parent>();
  private closed = false;

  /** Children forked ahead of their invocations, waiting (as a standby waits) for one each. */
  private readonly ahead: ForkedInterpreter[] = [];
  /**
   * A child per idle slot, already moved into that slot's cgroup: a cgroup migration costs
   * milliseconds (the kernel waits for an RCU grace period), so it is done while the slot is idle.
   */
  private readonly bySlot = new Map<number, ForkedInterpreter>();

  constructor(
    private readonly settings: InterpreterSettings,
    private readonly source: string,
    /** Children kept forked ahead; 0 forks each when its invocation starts. */
    private readonly forkAhead: number,
    private readonly replyTimeoutMs = FORK_REPLY_TIMEOUT_MS,
  ) {}

  /** Starts the parent now rather than at the first invocation, and forks ahead. */
  start(): void {
    this.current();
    this.refill();
  }

  /** A child for one invocation: one forked ahead if one is waiting, else forked now. */
  fork(): Interpreter {
    for (let child = this.ahead.shift(); child; child = this.ahead.shift()) {
      if (child.ready) return child;
      void child.discard(); // its parent was lost meanwhile
    }
    return new ForkedInterpreter(this, this.settings, this.replyTimeoutMs);
  }

  /** The child prepared for slot `slot` if it is in the slot's cgroup and waiting, else any child (see `fork`). */
  forkFor(slot: number): Interpreter {
    const prepared = this.bySlot.get(slot);
    this.bySlot.delete(slot);
    if (prepared?.ready && prepared.confined) return prepared;
    if (prepared) void prepared.discard();
    return this.fork();
  }

  /** Kills the child waiting in slot `slot`'s cgroup: an invocation of another runtime takes the slot, and the cgroup is its alone. */
  dropFor(slot: number): void {
    const prepared = this.bySlot.get(slot);
    this.bySlot.delete(slot);
    if (prepared) void prepared.discard(true);
  }

  /**
   * Forks a child for idle slot `slot` and moves it into the slot's cgroup with `join` (called
   * after the slot's last invocation was cleaned up, so nothing of it remains in the cgroup).
   */
  prepareFor(slot: number, join: (pid: number) => void): void {
    if (this.closed) return;
    void this.bySlot.get(slot)?.discard();
    const child = new ForkedInterpreter(this, this.settings, this.replyTimeoutMs);
    this.bySlot.set(slot, child);
    child.whenForked(() => {
      if (this.bySlot.get(slot) !== child) return; // the slot was taken before: never join a busy slot's cgroup
      try {
        join(child.childPid!);
        child.confined = true;
      } catch {
        this.bySlot.delete(slot);
        void child.discard();
      }
    });
  }

  /** Tops up the children forked ahead; called when an invocation ends, as the standby pool is. */
  refill(): void {
    while (!this.closed && this.ahead.length < this.forkAhead) this.ahead.push(new ForkedInterpreter(this, this.settings, this.replyTimeoutMs));
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
    if (this.parent?.alive && !this.parent.retired) return this.parent;
    if (this.parent?.alive) this.retired.add(this.parent);
    const parent = new Parent(this.settings, this.source, (gone) => {
      this.retired.delete(gone);
      if (this.parent !== gone || gone.retired) return;
      this.parent = null;
      // One that had been serving is replaced at once; one that died starting, by the next fork (no restart loop).
      if (!this.closed && gone.served) this.current();
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
    const waiting = [...this.ahead.splice(0), ...this.bySlot.values()];
    this.bySlot.clear();
    await Promise.all(waiting.map((child) => child.discard()));
    for (const parent of this.retired) parent.kill();
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

/**
 * One forked child serving one invocation, seen through the same interface as a spawned
 * interpreter. It is forked when created: the child loads the library and waits on fd 3, still
 * outside any slot, until `run` moves it into the slot's cgroup and writes the lock-down line.
 */
class ForkedInterpreter implements Interpreter {
  readonly runtime = "python" as const;
  private pid: number | null = null;
  private lost = false;
  private exited = false;
  private dispatched = false;
  /** Already in its slot's cgroup (see ForkServer.prepareFor): `run` does not move it again. */
  confined = false;
  /** Aborted at the deadline, when the gateway stops, or when let go unused: kill, and stop waiting. */
  private readonly ended = new AbortController();
  private readonly stdout: Capture;
  private readonly stderr: Capture;
  private readonly result: Capture;
  private readonly request: net.Socket;
  private readonly readers: { socket: net.Socket; done: Promise<void> }[];
  private readonly record: ForkRecord | null;
  private readonly forked: Promise<number | null>;

  private readonly parent: Parent;

  constructor(
    server: ForkServer,
    settings: InterpreterSettings,
    private readonly replyTimeoutMs: number,
  ) {
    this.stdout = new Capture(settings.outputCapBytes);
    this.stderr = new Capture(settings.outputCapBytes);
    this.result = new Capture(settings.resultCapBytes);
    // Unix stream sockets, as a spawned interpreter's channels are (Node's stdio "pipes").
    const [outRead, outWrite] = streamPair();
    const [errRead, errWrite] = streamPair();
    const [requestRead, requestWrite] = streamPair();
    const [resultRead, resultWrite] = streamPair();
    const parent = server.current();
    this.parent = parent;
    this.record = parent.fork([outWrite, errWrite, requestRead, resultWrite]);
    for (const fd of [outWrite, errWrite, requestRead, resultWrite]) closeFd(fd);
    this.request = new net.Socket({ fd: requestWrite, readable: false, writable: true });
    this.request.on("error", () => {}); // a child that dies early makes writes fail (EPIPE)
    this.readers = [
      drain(outRead, (chunk) => void this.stdout.push(chunk)),
      drain(errRead, (chunk) => void this.stderr.push(chunk)),
      drain(resultRead, (chunk) => {
        if (!this.result.push(chunk)) this.kill(); // an oversized response ends the invocation
      }),
    ];
    this.ended.signal.addEventListener("abort", () => this.kill(), { once: true });
    this.forked = this.record === null ? Promise.resolve(null) : server.pidOf(parent, this.record, this.ended.signal);
    void this.forked.then((pid) => {
      this.pid = pid;
      if (pid === null) this.abandon();
      else if (this.ended.signal.aborted) this.kill();
    });
    void this.record?.status.promise.then((status) => {
      if (status === null) this.kill(); // the parent was lost: not reaped, so the pid is still the child's
      this.exited = true;
      this.lost = status === null;
      // A child whose lock-down refused (a descriptor the parent inherited, say) would be followed
      // by others refusing the same way: the next invocation gets a fresh parent.
      if (status !== null && (status & 0x7f) === 0 && status >> 8 === EXIT_LOCKDOWN_FAILED) parent.retire();
    });
  }

  get childPid(): number | null {
    return this.pid;
  }

  /** Calls `then` once the child exists and is waiting (not if it never forks). */
  whenForked(then: () => void): void {
    void this.forked.then((pid) => {
      if (pid !== null && this.ready) then();
    });
  }

  get ready(): boolean {
    return !this.dispatched && !this.lost && !this.exited && !this.ended.signal.aborted && this.record !== null && !this.parent.retired;
  }

  /** Lets it go: end of file on its request channel (it exits without locking down), or SIGKILL when `now`. */
  async discard(now = false): Promise<void> {
    this.dispatched = true;
    if (now) this.kill();
    this.request.destroy();
    this.ended.abort();
    await Promise.all(this.readers.map((reader) => reader.done));
  }

  async run(params: LockParams, payload: Buffer, timeoutMs: number, stop: AbortSignal, confine: (pid: number) => void): Promise<ProcessExit> {
    this.dispatched = true;
    const started = performance.now();
    let timedOut = false;
    let interrupted = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.ended.abort();
    }, timeoutMs);
    const onStop = () => {
      interrupted = true;
      this.ended.abort();
    };
    stop.addEventListener("abort", onStop, { once: true });
    if (stop.aborted) onStop();

    let spawnError: string | null = null;
    let status: number | null = null;
    const pid = await this.forked;
    if (pid === null) {
      if (!timedOut && !interrupted) spawnError = "the Python fork-server did not fork (it was lost or stopped answering)";
    } else {
      try {
        if (!this.confined) confine(pid);
        this.request.end(Buffer.concat([encodeLockLine(params), payload]));
      } catch (error) {
        spawnError = `could not confine the process: ${(error as Error).message}`;
        this.request.destroy();
        this.kill();
      }
      status = await this.statusOf(this.record!);
      if (status === null) spawnError ??= "the Python fork-server was lost while the function ran";
    }
    await Promise.all(this.readers.map((reader) => reader.done));
    clearTimeout(timer);
    stop.removeEventListener("abort", onStop);
    return {
      exitCode: status !== null && (status & 0x7f) === 0 ? (status >> 8) & 0xff : null,
      signal: status !== null && (status & 0x7f) !== 0 ? (signalNames.get(status & 0x7f) ?? `signal ${status & 0x7f}`) : null,
      durationMs: performance.now() - started,
      timedOut,
      interrupted,
      spawnError,
      stdout: this.stdout.output(),
      stderr: this.stderr.output(),
      result: this.result.output(),
    };
  }

  /**
   * The child's wait status. Its channels close when it exits; a parent that has not reported
   * it by FORK_REPLY_TIMEOUT_MS after that is wedged, and is killed (the status is then lost).
   */
  private async statusOf(record: ForkRecord): Promise<number | null> {
    const closed = Promise.all(this.readers.map((reader) => reader.done));
    let timer: NodeJS.Timeout | undefined;
    let reported = false;
    const wedged = closed.then(
      () =>
        new Promise<null>((resolve) => {
          if (reported) return; // the usual order: the exit came first
          timer = setTimeout(() => {
            this.parent.kill();
            resolve(null);
          }, this.replyTimeoutMs);
        }),
    );
    try {
      return await Promise.race([record.status.promise, wedged]);
    } finally {
      reported = true;
      clearTimeout(timer);
    }
  }

  /** No child to wait for: a fork that still comes reads end of file on its request channel and exits. */
  private abandon(): void {
    this.lost = true;
    this.request.destroy();
    for (const reader of this.readers) reader.socket.destroy();
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

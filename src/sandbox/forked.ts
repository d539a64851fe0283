import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import type { RunOptions } from "../core/runner.js";
import { closeFd, streamPair } from "./fdpass.js";
import type { ForkRecord, Parent } from "./forkserver-parent.js";
import { Capture, type Interpreter, type InterpreterSettings, killProcessGroup, type ProcessExit } from "./process.js";
import { EXIT_LOCKDOWN_FAILED, encodeLockLine, type LockParams } from "./protocol.js";
import { ResultChannel } from "./result-channel.js";
import { LISTENER_CHANNEL_FD, type ListenerLink } from "./seccomp-listener.js";
import { RunWatch } from "./watch.js";

/** Signal numbers to names, the first name of each (SIGABRT, not its alias SIGIOT), as Node names a child's signal. */
const signalNames = new Map<number, string>();
for (const [name, value] of Object.entries(os.constants.signals)) if (!signalNames.has(value)) signalNames.set(value, name);

/**
 * One forked child serving one invocation, seen through the same interface as a spawned
 * interpreter. It is forked when created: the child loads the library and waits on fd 3, still
 * outside any slot, until `run` moves it into the slot's cgroup and writes the lock-down line.
 */
export class ForkedInterpreter implements Interpreter {
  readonly runtime = "python" as const;
  private pid: number | null = null;
  private lost = false;
  private exited = false;
  private dispatched = false;
  /** Aborted at the deadline, when the gateway stops, or when let go unused: kill, and stop waiting. */
  private readonly ended = new AbortController();
  private readonly stdout: Capture;
  private readonly stderr: Capture;
  private result: ResultChannel | null = null;
  private readonly request: net.Socket;
  private readonly readers: { socket: net.Socket; done: Promise<void> }[];
  private readonly record: ForkRecord | null;
  private readonly forked: Promise<number | null>;
  private readonly link: ListenerLink | null;

  constructor(
    /** The fork-server's serving parent, which forks it. */
    private readonly parent: Parent,
    private readonly settings: InterpreterSettings,
    private readonly replyTimeoutMs: number,
    /** The cgroup.procs files (paths) of the slot it is prepared for; the parent moves it there. */
    cgroupProcs: readonly string[] = [],
  ) {
    this.stdout = new Capture(settings.outputCapBytes);
    this.stderr = new Capture(settings.outputCapBytes);
    // Unix stream sockets, as a spawned interpreter's channels are (Node's stdio "pipes").
    const [outRead, outWrite] = streamPair();
    const [errRead, errWrite] = streamPair();
    const [requestRead, requestWrite] = streamPair();
    const [resultRead, resultWrite] = streamPair();
    this.link = settings.listener?.link(() => this.kill()) ?? null;
    const channels = [outWrite, errWrite, requestRead, resultWrite, ...(this.link ? [this.link.childEnd] : [])];
    const procs = openForWriting(cgroupProcs);
    this.record = procs === null ? null : parent.fork(channels, procs);
    for (const fd of [outWrite, errWrite, requestRead, resultWrite, ...(procs ?? [])]) closeFd(fd);
    this.link?.childEndSent();
    this.request = new net.Socket({ fd: requestWrite, readable: false, writable: true });
    this.request.on("error", () => {}); // a child that dies early makes writes fail (EPIPE)
    this.readers = [
      drain(outRead, (chunk) => void this.stdout.push(chunk)),
      drain(errRead, (chunk) => void this.stderr.push(chunk)),
      drain(resultRead, (chunk) => {
        this.link?.onResult(chunk, this.pid ?? undefined);
        this.result?.push(chunk); // nothing comes before the lock line is sent
      }),
    ];
    this.ended.signal.addEventListener("abort", () => this.kill(), { once: true });
    this.forked = this.record === null ? Promise.resolve(null) : pidOf(parent, this.record, this.ended.signal, replyTimeoutMs);
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
    this.link?.close();
  }

  async run(
    params: LockParams,
    payload: Buffer,
    timeoutMs: number,
    stop: AbortSignal,
    confine: (pid: number) => void,
    options: RunOptions = {},
  ): Promise<ProcessExit> {
    this.dispatched = true;
    const watch = new RunWatch(timeoutMs, stop, () => this.ended.abort(), options.signal);
    this.result = new ResultChannel(this.readers[2]!.socket, {
      maxResponseBytes: this.settings.maxResponseBytes,
      onStream: options.onStream,
      hopeless: () => this.kill(),
      cancelled: watch.clientGone,
    });
    this.stdout.follow(options, "stdout");
    this.stderr.follow(options, "stderr");

    let spawnError: string | null = null;
    let status: number | null = null;
    const pid = await this.forked;
    if (pid === null) {
      if (!watch.cut) spawnError = "the Python fork-server did not fork (it was lost or stopped answering)";
    } else {
      try {
        // One prepared for its slot was moved into the slot's cgroup by the parent (ForkServer.prepareFor).
        if (!this.record!.joined) confine(pid);
        this.request.end(Buffer.concat([encodeLockLine(params, this.link ? LISTENER_CHANNEL_FD : -1), payload]));
      } catch (error) {
        spawnError = `could not confine the process: ${(error as Error).message}`;
        this.request.destroy();
        this.kill();
      }
      status = await this.statusOf(this.record!);
      if (status === null) spawnError ??= "the Python fork-server was lost while the function ran";
    }
    await Promise.all(this.readers.map((reader) => reader.done));
    const denied = this.link?.record() ?? null;
    this.link?.close();
    return {
      exitCode: status !== null && (status & 0x7f) === 0 ? (status >> 8) & 0xff : null,
      signal: status !== null && (status & 0x7f) !== 0 ? (signalNames.get(status & 0x7f) ?? `signal ${status & 0x7f}`) : null,
      ...watch.end(),
      spawnError: spawnError ?? this.link?.failure ?? null,
      stdout: this.stdout.output(),
      stderr: this.stderr.output(),
      result: this.result.finish(),
      denied,
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

  /** SIGKILLs the child's process group (only while it has not been reaped: its pid could be reused after); a streamed body still open is cut short. */
  private kill(): void {
    this.result?.abandon();
    if (this.pid !== null && !this.exited) killProcessGroup(this.pid);
  }
}

/** Waits for the pid of a fork; a parent that does not answer in time is killed (and so replaced). */
async function pidOf(parent: Parent, record: ForkRecord, abort: AbortSignal, replyTimeoutMs: number): Promise<number | null> {
  const ready = await Promise.race([parent.ready.promise, aborted(abort)]);
  if (!ready) return null;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => {
      parent.kill();
      resolve(null);
    }, replyTimeoutMs);
  });
  try {
    return await Promise.race([record.pid.promise, timeout, aborted(abort)]);
  } finally {
    clearTimeout(timer);
  }
}

function aborted(signal: AbortSignal): Promise<null> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(null);
    else signal.addEventListener("abort", () => resolve(null), { once: true });
  });
}

/** Opens each file for writing; null (nothing left open) if one cannot be. */
function openForWriting(files: readonly string[]): number[] | null {
  const fds: number[] = [];
  try {
    for (const file of files) fds.push(fs.openSync(file, fs.constants.O_WRONLY));
    return fds;
  } catch {
    for (const fd of fds) closeFd(fd);
    return null;
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

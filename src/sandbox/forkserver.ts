import { ForkedInterpreter } from "./forked.js";
import { Parent } from "./forkserver-parent.js";
import { rssBytes } from "./memory.js";
import type { Interpreter, InterpreterSettings } from "./process.js";

// The gateway's side of the Python fork-server (prescripts/forkserver.py): one parent
// interpreter, started once and replaced when it dies or stops answering, forks one child per
// invocation. The gateway makes the child's channels (Unix socket pairs) and hands them over with
// SCM_RIGHTS; the parent reports the child's pid, then its wait status once it reaped it.

/** How long the parent may take to answer a fork (counted from when it is serving) before it is deemed wedged. */
export const FORK_REPLY_TIMEOUT_MS = 2000;

/**
 * Standard-library modules the parent imports once, so a function that uses them does not pay
 * their import (json alone pulls in re and enum). None starts a thread or keeps a file open.
 */
export const PRELOAD_MODULES: readonly string[] = [
  "json",
  "re",
  "datetime",
  "base64",
  "binascii",
  "hashlib",
  "hmac",
  "urllib.parse",
  "collections",
  "typing",
  "dataclasses",
  "decimal",
  "math",
  "random",
  "time",
  "uuid",
  "itertools",
  "functools",
  "string",
  "struct",
  "enum",
  "traceback",
  "asyncio",
  "copy",
  "statistics",
  "textwrap",
  "zlib",
];

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
    return new ForkedInterpreter(this.current(), this.settings, this.replyTimeoutMs);
  }

  /**
   * The child prepared for slot `slot` (forked into the slot's cgroup, or about to be: `run` waits
   * for its pid), else any child (see `fork`).
   */
  forkFor(slot: number): Interpreter {
    const prepared = this.bySlot.get(slot);
    this.bySlot.delete(slot);
    if (prepared?.ready) return prepared;
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
   * Forks a child for idle slot `slot`, which the parent moves into the slot's cgroup (the files
   * `cgroupProcs`) before reporting it: called after the slot's last invocation was cleaned up,
   * so nothing of it remains in the cgroup. A child whose move failed is moved by `run`, or refused.
   */
  prepareFor(slot: number, cgroupProcs: readonly string[]): void {
    if (this.closed) return;
    void this.bySlot.get(slot)?.discard();
    this.bySlot.set(slot, new ForkedInterpreter(this.current(), this.settings, this.replyTimeoutMs, cgroupProcs));
  }

  /** Tops up the children forked ahead; called when an invocation ends, as the standby pool is. */
  refill(): void {
    while (!this.closed && this.ahead.length < this.forkAhead)
      this.ahead.push(new ForkedInterpreter(this.current(), this.settings, this.replyTimeoutMs));
  }

  get pid(): number | undefined {
    return this.parent?.alive ? this.parent.pid : undefined;
  }

  /** Resident memory of the parent, from /proc. */
  rssBytes(): number {
    return this.pid === undefined ? 0 : rssBytes(this.pid);
  }

  /** Each child waiting for an invocation (forked ahead, or in its slot's cgroup) and its resident memory. */
  waitingChildren(): { pid: number; rssBytes: number }[] {
    return [...this.ahead, ...this.bySlot.values()].flatMap((child) =>
      child.ready && child.childPid !== null ? [{ pid: child.childPid, rssBytes: rssBytes(child.childPid) }] : [],
    );
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

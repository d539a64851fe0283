import { INTERPRETERS, type InterpreterKind } from "../core/runtimes.js";
import type { ForkServer } from "./forkserver.js";
import { rssBytes } from "./memory.js";
import { type Interpreter, InterpreterProcess, type InterpreterSettings } from "./process.js";

/**
 * Interpreters started ahead of their invocations. A standby has loaded the
 * lock-down library and warmed up (Node's Request/Response), then waits, still
 * unlocked but holding nothing of any function: nothing reaches it until the
 * invocation's lock-down parameters do, and those it applies before reading the
 * rest. Taking one skips the interpreter's start-up; an empty pool just starts a
 * fresh interpreter, which behaves the same, only later.
 */
/** How often, and how many times, a slot's Node standby is checked for waiting before it is moved into the cgroup. */
const JOIN_RETRY_MS = 100;
const JOIN_TRIES = 50;

export class StandbyPool {
  private readonly idle: Record<InterpreterKind, InterpreterProcess[]> = { python: [], node: [] };
  /**
   * A Node standby per idle slot whose last invocation was Node's, moved into the slot's cgroup
   * once it waits (off the invocation's path: a migration costs milliseconds), as the
   * fork-server's children are for Python's.
   */
  private readonly bySlot = new Map<number, InterpreterProcess>();
  private closed = false;

  constructor(
    private readonly settings: InterpreterSettings,
    /** Standbys kept per runtime; 0 starts every interpreter on demand. */
    private readonly size: number,
    /** When given, Python invocations are forked from it and no Python standby is kept. */
    private readonly forkServer: ForkServer | null = null,
  ) {}

  /** An interpreter of `runtime` that has not been handed an invocation yet, for slot `slot`. */
  take(runtime: InterpreterKind, slot: number): Interpreter {
    // Whatever waits in the slot's cgroup for another runtime goes: the cgroup is the invocation's alone.
    const prepared = this.bySlot.get(slot);
    this.bySlot.delete(slot);
    if (prepared && runtime === "node" && prepared.ready) return prepared;
    if (prepared) void prepared.discard();
    if (runtime === "python" && this.forkServer) return this.forkServer.forkFor(slot);
    this.vacate(slot);
    const idle = this.idle[runtime];
    for (let standby = idle.shift(); standby; standby = idle.shift()) {
      if (standby.ready) return standby;
      void standby.discard(); // died while waiting
    }
    return this.start(runtime);
  }

  /**
   * Called when slot `slot` is idle again and its cgroup empty: tops the pool up and, after a
   * Python invocation, prepares the slot's next Python child inside its cgroup (`cgroupProcs`).
   */
  release(slot: number, runtime: InterpreterKind, cgroupProcs: readonly string[]): void {
    if (runtime === "python") this.forkServer?.prepareFor(slot, cgroupProcs);
    else if (cgroupProcs.length > 0 && this.size > 0) this.prepareFor(slot, cgroupProcs);
    this.refill();
  }

  /**
   * Slot `slot` is taken by something other than what waits in its cgroup (another runtime, a warm
   * instance): that goes now, rather than be killed with what runs there next and then handed to
   * an invocation.
   */
  vacate(slot: number): void {
    void this.bySlot.get(slot)?.discard();
    this.bySlot.delete(slot);
    this.forkServer?.dropFor(slot);
  }

  /** Starts slot `slot`'s next Node standby and moves it into the slot's cgroup once it waits for its invocation. */
  private prepareFor(slot: number, cgroupProcs: readonly string[]): void {
    if (this.closed) return;
    void this.bySlot.get(slot)?.discard();
    const standby = this.start("node");
    this.bySlot.set(slot, standby);
    let tries = 0;
    const join = () => {
      if (!standby.ready || this.bySlot.get(slot) !== standby) return;
      // Not moved (a failed write): run() moves it, or refuses it.
      if (standby.waiting()) void standby.joinAhead(cgroupProcs).catch(() => {});
      else if (++tries < JOIN_TRIES) setTimeout(join, JOIN_RETRY_MS).unref();
    };
    setTimeout(join, JOIN_RETRY_MS).unref();
  }

  /** Tops the pool up; called when an invocation ends, so the start-up never competes with one. */
  refill(): void {
    if (this.closed) return;
    this.forkServer?.refill();
    for (const runtime of INTERPRETERS) {
      if (runtime === "python" && this.forkServer) continue;
      const idle = this.idle[runtime];
      // Node standbys waiting in slots count towards the pool: with every slot's, none more.
      const size = runtime === "node" ? this.size - this.bySlot.size : this.size;
      while (idle.length < size) idle.push(this.start(runtime));
    }
  }

  /** Standbys of `runtime` able to take an invocation now (started, not dead). */
  readyCount(runtime: InterpreterKind): number {
    // With the fork-server, Python's standbys are its children waiting (forked ahead, or in a slot's cgroup).
    if (runtime === "python" && this.forkServer) return this.forkServer.waitingChildren().length;
    const prepared = runtime === "node" ? [...this.bySlot.values()] : [];
    return [...this.idle[runtime], ...prepared].filter((standby) => standby.ready).length;
  }

  get count(): number {
    return this.idle.python.length + this.idle.node.length + this.bySlot.size;
  }

  /** Each waiting standby's pid and resident memory (from /proc). */
  memory(): { runtime: InterpreterKind; pid: number; rssBytes: number }[] {
    const all = [...INTERPRETERS.flatMap((runtime) => this.idle[runtime]), ...this.bySlot.values()];
    return all.flatMap((standby) =>
      standby.pid === undefined ? [] : [{ runtime: standby.runtime, pid: standby.pid, rssBytes: rssBytes(standby.pid) }],
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...INTERPRETERS.flatMap((runtime) => this.idle[runtime].splice(0)), ...this.bySlot.values()];
    this.bySlot.clear();
    await Promise.all(all.map((standby) => standby.discard()));
  }

  private start(runtime: InterpreterKind): InterpreterProcess {
    return InterpreterProcess.start(runtime, this.settings, "/");
  }
}

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
export class StandbyPool {
  private readonly idle: Record<InterpreterKind, InterpreterProcess[]> = { python: [], node: [] };
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
   * Slot `slot` is taken by something other than its prepared Python child (another runtime, a warm
   * instance): the child waiting in the slot's cgroup goes now, rather than be killed with what
   * runs there next and then handed to an invocation.
   */
  vacate(slot: number): void {
    this.forkServer?.dropFor(slot);
  }

  /**
   * Called when slot `slot` is idle again and its cgroup empty: tops the pool up and, after a
   * Python invocation, prepares the slot's next Python child inside its cgroup (`cgroupProcs`).
   */
  release(slot: number, runtime: InterpreterKind, cgroupProcs: readonly string[]): void {
    if (runtime === "python") this.forkServer?.prepareFor(slot, cgroupProcs);
    this.refill();
  }

  /** Tops the pool up; called when an invocation ends, so the start-up never competes with one. */
  refill(): void {
    if (this.closed) return;
    this.forkServer?.refill();
    for (const runtime of INTERPRETERS) {
      if (runtime === "python" && this.forkServer) continue;
      const idle = this.idle[runtime];
      while (idle.length < this.size) idle.push(this.start(runtime));
    }
  }

  /** Standbys of `runtime` able to take an invocation now (started, not dead). */
  readyCount(runtime: InterpreterKind): number {
    // With the fork-server, Python's standbys are its children waiting (forked ahead, or in a slot's cgroup).
    if (runtime === "python" && this.forkServer) return this.forkServer.waitingChildren().length;
    return this.idle[runtime].filter((standby) => standby.ready).length;
  }

  get count(): number {
    return this.idle.python.length + this.idle.node.length;
  }

  /** Each waiting standby's pid and resident memory (from /proc). */
  memory(): { runtime: InterpreterKind; pid: number; rssBytes: number }[] {
    return INTERPRETERS.flatMap((runtime) =>
      this.idle[runtime].flatMap((standby) =>
        standby.pid === undefined ? [] : [{ runtime, pid: standby.pid, rssBytes: rssBytes(standby.pid) }],
      ),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = INTERPRETERS.flatMap((runtime) => this.idle[runtime].splice(0));
    await Promise.all(all.map((standby) => standby.discard()));
  }

  private start(runtime: InterpreterKind): InterpreterProcess {
    return InterpreterProcess.start(runtime, this.settings, "/");
  }
}

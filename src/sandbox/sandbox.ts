// The Runner the gateway uses. Longer than most files: it is the one place where the mechanisms
// (slots, jail, cgroups, firewall, standbys, fork-server, warm instances) are composed, started in
// order and undone in reverse, so the order stays visible.
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import type { Config } from "../core/config.js";
import { log } from "../core/log.js";
import {
  type InvocationResult,
  type InvocationSpec,
  type Runner,
  type RunnerHealth,
  type RunOptions,
  SaturatedError,
  type SyntaxProblem,
} from "../core/runner.js";
import { INTERPRETERS, type Runtime } from "../core/runtimes.js";
import { type Interpreters, NODE_LAUNCHER, resolveInterpreters } from "./binaries.js";
import { type CgroupMode, type Cgroups, setupCgroups } from "./cgroups/setup.js";
import { type Firewall, setupFirewall } from "./firewall.js";
import { ForkServer, PRELOAD_MODULES } from "./forkserver.js";
import { Jail } from "./jail.js";
import { closeOnExecAll } from "./libc.js";
import { renderForkServer, renderPrescripts } from "./prescript.js";
import type { InterpreterSettings } from "./process.js";
import { LOCKDOWN_SIGNATURE, READY_SIGNATURE } from "./protocol.js";
import { type RunSettings, runInSlot } from "./run.js";
import { listenerSupported, REFUSALS_PATH, SeccompListener } from "./seccomp-listener.js";
import { killStrayProcesses, SlotPool } from "./slots.js";
import { StandbyPool } from "./standby.js";
import { checkSyntax } from "./syntax.js";
import { TypeScriptCompiler, TypeScriptError } from "./typescript.js";
import { type WarmInstanceHealth, WarmPool } from "./warm.js";

export const LIBRARY_PATH = fileURLToPath(new URL("../../native/build/libsandbox.so", import.meta.url));

export interface SandboxHealth extends RunnerHealth {
  cgroups: CgroupMode;
  slots: number;
  busy: number;
  queued: number;
  /** Interpreters started ahead of their invocations, both runtimes together. */
  standby: number;
  /** Whether functions with network are kept from the host's own networks (netfilter rules). */
  firewall: boolean;
  /** The interpreters functions run on (Node: the pinned Node 24 unless NODE_BIN says otherwise). */
  python: string;
  node: string;
  /** The Node that runs the gateway itself (20, 22 or 24), apart from the functions' Node. */
  gatewayNode: string;
  /** How Python interpreters start: forked from the fork-server, or spawned (PYTHON_FORKSERVER=off). */
  pythonStart: "forkserver" | "spawn";
  /**
   * Whether the system calls the sandbox refuses are named (the kernel hands them to the gateway's
   * seccomp listener), and why not when they are not.
   */
  deniedSyscalls: { named: true } | { named: false; reason: string };
  /** Resident memory (bytes, from /proc) of the processes held ready: each standby, the fork-server's parent. */
  memory: {
    standby: { runtime: string; pid: number; rssBytes: number }[];
    /** The parent, and its children waiting for invocations (their pages shared with it until written count in each). */
    forkServer: { pid: number; rssBytes: number; children: { pid: number; rssBytes: number }[] } | null;
    totalBytes: number;
  };
  /** Warm instances (isolation "function"): how many, and each one's function, version and memory. */
  warm: { count: number; instances: WarmInstanceHealth[] };
}

export type SandboxConfig = Pick<
  Config,
  | "MAX_CONCURRENCY"
  | "QUEUE_TIMEOUT_MS"
  | "SANDBOX_UID_BASE"
  | "JAIL_DIR"
  | "PYTHON_BIN"
  | "NODE_BIN"
  | "TMP_SIZE_MB"
  | "MAX_THREADS"
  | "OUTPUT_CAP_BYTES"
  | "MAX_RESPONSE_BYTES"
  | "MAX_MEMORY_MB"
  | "STANDBY_INTERPRETERS"
  | "PYTHON_FORKSERVER"
  | "SANDBOX_SECCOMP_LISTENER"
  | "SANDBOX_BLOCKED_NETWORKS"
  | "WARM_IDLE_MS"
  | "WARM_MAX_INVOCATIONS"
  | "WARM_MAX_INSTANCES"
>;

/**
 * The sandbox as the gateway sees it: built once at start-up (interpreters
 * resolved, jail mounted, cgroups created), then `run` executes invocations,
 * each in a slot of its own.
 */
export class Sandbox implements Runner {
  private closed = false;
  /** Invocations running, and slots being cleaned up: closing waits for them. */
  private readonly running = new Set<Promise<unknown>>();
  private readonly warm: WarmPool;
  private readonly typescript: TypeScriptCompiler;

  private constructor(
    private readonly settings: RunSettings,
    private readonly pool: SlotPool,
    private readonly cgroups: Cgroups,
    private readonly firewall: Firewall,
    /** The real interpreter binaries; package installs use the same ones so that wheels match. */
    readonly interpreters: Interpreters,
    private readonly forkServer: ForkServer | null,
    private readonly listener: { listener: SeccompListener | null; reason: string },
    private readonly stopping: AbortController,
    warm: (stop: AbortSignal) => WarmPool,
  ) {
    this.warm = warm(stopping.signal);
    this.typescript = new TypeScriptCompiler(interpreters.node.version);
  }

  /** Requires root. Throws with a clear message when something the sandbox needs is missing. */
  static async start(config: SandboxConfig, warn: (line: string) => void = (line) => log.warn(line)): Promise<Sandbox> {
    if (process.getuid?.() !== 0) throw new Error("the sandbox needs root: it mounts the jail and changes uids");
    for (const built of [LIBRARY_PATH, NODE_LAUNCHER, REFUSALS_PATH])
      if (!fs.existsSync(built)) throw new Error(`the sandbox library is missing: ${built} (run scripts/build-native.sh)`);
    const interpreters = resolveInterpreters(config.PYTHON_BIN, config.NODE_BIN);
    closeOnExecAll();
    const pool = new SlotPool({
      size: config.MAX_CONCURRENCY,
      uidBase: config.SANDBOX_UID_BASE,
      queueTimeoutMs: config.QUEUE_TIMEOUT_MS,
    });
    const strays = killStrayProcesses(pool.slots);
    if (strays > 0) warn(`killed ${strays} process(es) left running as sandbox uids by an earlier gateway`);
    const jail = Jail.build({ dir: config.JAIL_DIR, slots: [...pool.slots], python: interpreters.python, tmpSizeMb: config.TMP_SIZE_MB });
    let cgroups: Cgroups;
    try {
      cgroups = setupCgroups({ slots: pool.slots.length, maxThreads: config.MAX_THREADS });
    } catch (error) {
      jail.close();
      throw error;
    }
    const firewall = setupFirewall({
      uids: [pool.slots[0]!.uid, pool.slots.at(-1)!.uid],
      blocked: config.SANDBOX_BLOCKED_NETWORKS,
    });
    if (config.SANDBOX_BLOCKED_NETWORKS.length > 0 && !firewall.active) {
      warn(
        "WARNING: the netfilter rules could not be installed (install iptables); functions with network on can reach " +
          `${config.SANDBOX_BLOCKED_NETWORKS.join(", ")}, the gateway's own port included.\n  ${firewall.notes.join("\n  ")}`,
      );
    }
    if (cgroups.mode === "none") {
      warn(
        "WARNING: no usable cgroups (v2 or v1 memory+pids); functions run WITHOUT memory limits and with RLIMIT_NPROC as the only thread limit.\n  " +
          cgroups.notes.join("\n  "),
      );
    }
    const listener = startListener(config.SANDBOX_SECCOMP_LISTENER, warn);
    const interpreterSettings: InterpreterSettings = {
      interpreters,
      prescripts: renderPrescripts({
        LIB_PATH: LIBRARY_PATH,
        KOFFI_PATH: interpreters.node.koffiPath,
        LOCKDOWN_SIGNATURE,
        READY_SIGNATURE,
      }),
      outputCapBytes: config.OUTPUT_CAP_BYTES,
      maxResponseBytes: config.MAX_RESPONSE_BYTES,
      nodeHeapMb: cgroups.mode === "none" ? config.MAX_MEMORY_MB : null,
      listener: listener.listener,
    };
    const forkServer =
      config.PYTHON_FORKSERVER === "on"
        ? new ForkServer(
            interpreterSettings,
            renderForkServer(interpreterSettings.prescripts.python, PRELOAD_MODULES),
            config.STANDBY_INTERPRETERS,
          )
        : null;
    if (config.STANDBY_INTERPRETERS > 0) forkServer?.start(); // else at the first Python invocation, as standbys are
    const standby = new StandbyPool(interpreterSettings, config.STANDBY_INTERPRETERS, forkServer);
    standby.refill();
    const settings: RunSettings = {
      jail,
      standby,
      outputCapBytes: config.OUTPUT_CAP_BYTES,
      maxResponseBytes: config.MAX_RESPONSE_BYTES,
      maxThreads: config.MAX_THREADS,
    };
    // Each slot's first Python child waits in the slot's cgroup, as later ones will.
    if (config.STANDBY_INTERPRETERS > 0)
      for (const slot of pool.slots) forkServer?.prepareFor(slot.index, cgroups.slot(slot.index)?.procsFiles ?? []);
    const warm = (stop: AbortSignal) =>
      new WarmPool({
        run: settings,
        interpreter: interpreterSettings,
        pool,
        cgroupOf: (slot) => cgroups.slot(slot.index),
        idleMs: config.WARM_IDLE_MS,
        maxInvocations: config.WARM_MAX_INVOCATIONS,
        maxInstances: config.WARM_MAX_INSTANCES,
        queueTimeoutMs: config.QUEUE_TIMEOUT_MS,
        stop,
      });
    return new Sandbox(settings, pool, cgroups, firewall, interpreters, forkServer, listener, new AbortController(), warm);
  }

  async run(given: InvocationSpec, options: RunOptions = {}): Promise<InvocationResult> {
    if (this.closed) throw new SaturatedError(1);
    let spec = given;
    if (spec.runtime === "typescript") {
      try {
        spec = { ...spec, code: await this.typescript.compile(spec.code) };
      } catch (error) {
        return notCompiled(error);
      }
    }
    if (spec.isolation === "function") return this.trackRun(this.warm.run(spec, options));
    const acquiring = this.pool.acquire();
    // Slots held by idle warm instances never starve invocations: one is stopped for this one.
    if (this.pool.queued > 0) this.warm.evictIdle();
    const slot = await acquiring;
    const { result, cleanedUp } = runInSlot(
      this.settings,
      { slot, cgroup: this.cgroups.slot(slot.index), stop: this.stopping.signal },
      spec,
      options,
    );
    // The slot is busy until it is clean again; one whose clean-up failed never serves again.
    const finished = cleanedUp.then(
      () => this.pool.release(slot),
      (error: unknown) => log.error({ err: error, slot: slot.index }, `slot ${slot.index} taken out of service: its clean-up failed`),
    );
    this.running.add(finished);
    void finished.then(() => this.running.delete(finished));
    return result;
  }

  private async trackRun(run: Promise<InvocationResult>): Promise<InvocationResult> {
    this.running.add(run);
    try {
      return await run;
    } finally {
      this.running.delete(run);
    }
  }

  retire(functionName: string): void {
    this.warm.retireFunction(functionName);
  }

  checkSyntax(runtime: Runtime, code: string): Promise<SyntaxProblem | null> {
    if (runtime === "typescript") return this.typescript.check(code);
    return checkSyntax(this.interpreters, runtime, code);
  }

  /** Standbys ready to take an invocation, by runtime (Python's: the fork-server's waiting children), and their sum. */
  private standbyCounts(): Pick<SandboxHealth, "standby" | "standby_by_runtime"> {
    const byRuntime = Object.fromEntries(INTERPRETERS.map((runtime) => [runtime, this.settings.standby.readyCount(runtime)]));
    return { standby: Object.values(byRuntime).reduce((sum, n) => sum + n, 0), standby_by_runtime: byRuntime };
  }

  health(): SandboxHealth {
    return {
      ready: !this.closed && this.settings.jail.mounted(),
      cgroups: this.cgroups.mode,
      slots: this.pool.slots.length,
      busy: this.pool.busy,
      queued: this.pool.queued,
      ...this.standbyCounts(),
      firewall: this.firewall.active,
      python: this.interpreters.python.version,
      node: this.interpreters.node.version,
      gatewayNode: process.version,
      pythonStart: this.forkServer ? "forkserver" : "spawn",
      deniedSyscalls: this.listener.listener ? { named: true } : { named: false, reason: this.listener.reason },
      memory: this.memory(),
      warm: this.warm.health(),
    };
  }

  private memory(): SandboxHealth["memory"] {
    const standby = this.settings.standby.memory();
    const parentPid = this.forkServer?.pid;
    const forkServer =
      parentPid === undefined
        ? null
        : { pid: parentPid, rssBytes: this.forkServer!.rssBytes(), children: this.forkServer!.waitingChildren() };
    const children = forkServer?.children.reduce((sum, c) => sum + c.rssBytes, 0) ?? 0;
    const totalBytes = standby.reduce((sum, s) => sum + s.rssBytes, (forkServer?.rssBytes ?? 0) + children);
    return { standby, forkServer, totalBytes };
  }

  /**
   * Refuses new work (queued invocations get a SaturatedError: retry later), kills
   * what still runs (those runs end `interrupted`), then unmounts and removes
   * everything. The caller decides how long to let invocations finish first.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pool.rejectWaiters(new SaturatedError(1));
    this.stopping.abort();
    await Promise.allSettled([...this.running, this.settings.standby.close(), this.forkServer?.close()]);
    await this.warm.close();
    this.listener.listener?.close();
    this.release();
  }

  /**
   * The last resort on a hard exit (a third signal, an uncaught error): synchronously kills what
   * runs in the slots and removes the cgroups, the netfilter rules and the jail's mounts, so no
   * exit path leaves them behind. Safe to call after close().
   */
  abandon(): void {
    this.closed = true;
    this.release();
  }

  private released = false;
  private release(): void {
    if (this.released) return;
    this.released = true;
    this.cgroups.close();
    this.firewall.close();
    this.settings.jail.close();
  }
}

/** The gateway's seccomp listener, unless turned off or the kernel cannot hand one over (then the reason). */
function startListener(setting: "on" | "off", warn: (line: string) => void): { listener: SeccompListener | null; reason: string } {
  if (setting === "off") return { listener: null, reason: "SANDBOX_SECCOMP_LISTENER is off" };
  if (!listenerSupported()) {
    const reason = "the kernel lacks SECCOMP_FILTER_FLAG_TSYNC_ESRCH (Linux 5.7): refused calls are answered in the kernel and not named";
    warn(`WARNING: ${reason}`);
    return { listener: null, reason };
  }
  return { listener: new SeccompListener(), reason: "" };
}

/** A TypeScript version that does not compile (it did at registration: the compiler failed, or changed). */
function notCompiled(error: unknown): InvocationResult {
  const message = error instanceof TypeScriptError ? error.problem.message : String(error);
  const none = { data: Buffer.alloc(0), truncated: false };
  return {
    status: "error",
    exitCode: null,
    signal: null,
    durationMs: 0,
    stdout: none,
    stderr: none,
    blockedSyscall: null,
    deniedSyscalls: [],
    errorMessage: `the TypeScript could not be compiled: ${message}`,
    response: null,
  };
}

import crypto from "node:crypto";
import { type InvocationResult, type InvocationSpec, type RunOptions, SaturatedError } from "../core/runner.js";
import { INTERPRETER_OF } from "../core/runtimes.js";
import type { SlotCgroup } from "./cgroups/setup.js";
import { classify } from "./classify.js";
import type { InterpreterSettings } from "./process.js";
import { encodePayload, FLAG_NETWORK } from "./protocol.js";
import type { RunSettings } from "./run.js";
import type { Slot, SlotPool } from "./slots.js";
import { WarmProcess } from "./warm-process.js";

// Warm instances (isolation "function"): a process locked down for one version of one function
// serves that version's invocations one at a time, holding its slot (uid, jail root, cgroup) for
// its lifetime. Recycled when idle for WARM_IDLE_MS, after WARM_MAX_INVOCATIONS, when another
// version is invoked, and after any invocation that did not end cleanly (crash, timeout, OOM).

export interface WarmSettings {
  run: RunSettings;
  interpreter: InterpreterSettings;
  pool: SlotPool;
  cgroupOf(slot: Slot): SlotCgroup | null;
  idleMs: number;
  maxInvocations: number;
  /** Instances per version when its max_concurrency is null. */
  maxInstances: number;
  queueTimeoutMs: number;
  stop: AbortSignal;
}

interface Instance {
  key: string;
  name: string;
  version: number;
  slot: Slot;
  cgroup: SlotCgroup | null;
  process: WarmProcess;
  packages: boolean;
  invocations: number;
  busy: boolean;
  /** A newer version was invoked: stopped when its invocation ends. */
  retired: boolean;
  idleTimer: NodeJS.Timeout | null;
}

export interface WarmInstanceHealth {
  function: string;
  version: number;
  pid: number | null;
  busy: boolean;
  invocations: number;
  /** Resident memory of the interpreter (/proc/<pid>/status VmRSS). */
  rssBytes: number | null;
}

export class WarmPool {
  private readonly instances = new Set<Instance>();
  /** Invocations waiting for an instance of their version to become idle, by version key. */
  private readonly waiters = new Map<string, ((instance: Instance | null) => void)[]>();
  private readonly stopping = new Set<Promise<void>>();
  /** Instances being started (waiting for a slot), by version key. */
  private readonly starting = new Map<string, number>();
  private closed = false;

  constructor(private readonly settings: WarmSettings) {}

  async run(spec: InvocationSpec, options: RunOptions = {}): Promise<InvocationResult> {
    const target = spec.version;
    if (target === undefined) throw new Error("a warm invocation needs its function version");
    const key = versionKey(spec, target.name, target.version);
    // A new version never runs on an old instance; the old ones go (busy ones when they finish).
    for (const instance of this.instances) {
      if (instance.name === target.name && instance.key !== key) this.retire(instance);
    }
    const instance = await this.instanceFor(key, spec);
    instance.busy = true;
    if (instance.idleTimer) clearTimeout(instance.idleTimer);
    const oomBefore = instance.cgroup?.oomKills() ?? 0;
    const nonce = crypto.randomBytes(16).toString("hex");
    const exit = await instance.process.invoke(encodePayload(spec, nonce), nonce, spec.timeoutMs, this.settings.stop, options);
    // The prescript confirms the lock-down once, at the head of the first invocation's frames; the
    // instance's later invocations run under that same lock (an instance whose first did not
    // confirm it is never reused).
    const lockConfirmed = instance.invocations > 0;
    instance.invocations++;
    const oomKilled = instance.cgroup !== null && instance.cgroup.oomKills() > oomBefore;
    const result = classify(exit, spec, oomKilled, this.settings.run, lockConfirmed);
    // Only an invocation that reached its end marks, within its limits, leaves a reusable instance.
    const reusable =
      exit.ended && !exit.timedOut && !exit.clientClosed && !oomKilled && result.status !== "timeout" && instance.process.alive;
    if (!reusable || instance.retired || instance.invocations >= this.settings.maxInvocations) this.stop(instance);
    else this.release(instance);
    return result;
  }

  /** The function was deleted: its instances go (idle ones now, busy ones when their invocation ends). */
  retireFunction(name: string): void {
    for (const instance of this.instances) if (instance.name === name) this.retire(instance);
  }

  /** Stops one idle instance to free its slot for a waiting invocation; false when none is idle. */
  evictIdle(): boolean {
    for (const instance of this.instances) {
      if (!instance.busy) {
        this.stop(instance);
        return true;
      }
    }
    return false;
  }

  health(): { count: number; instances: WarmInstanceHealth[] } {
    const instances = [...this.instances].map((instance) => ({
      function: instance.name,
      version: instance.version,
      pid: instance.process.pid ?? null,
      busy: instance.busy,
      invocations: instance.invocations,
      rssBytes: instance.process.rssBytes(),
    }));
    return { count: instances.length, instances };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const resolve of [...this.waiters.values()].flat()) resolve(null);
    this.waiters.clear();
    for (const instance of this.instances) this.stop(instance);
    await Promise.allSettled([...this.stopping]);
  }

  private async instanceFor(key: string, spec: InvocationSpec): Promise<Instance> {
    for (const instance of this.instances) {
      if (instance.key === key && !instance.busy && !instance.process.alive)
        this.stop(instance); // died while idle
      else if (instance.key === key && !instance.busy && !instance.retired) {
        instance.busy = true; // taken now: another invocation must not find it idle before this one runs
        return instance;
      }
    }
    const mine = [...this.instances].filter((instance) => instance.key === key && !instance.retired).length + (this.starting.get(key) ?? 0);
    if (mine < (spec.version?.maxConcurrency ?? this.settings.maxInstances)) {
      // Counted from now, not from when a slot is free: concurrent invocations must not all start one.
      this.starting.set(key, (this.starting.get(key) ?? 0) + 1);
      try {
        return await this.startInstance(key, spec);
      } finally {
        const left = this.starting.get(key)! - 1;
        if (left === 0) this.starting.delete(key);
        else this.starting.set(key, left);
      }
    }
    const instance = await new Promise<Instance | null>((resolve, reject) => {
      const queue = this.waiters.get(key) ?? [];
      this.waiters.set(key, queue);
      const timer = setTimeout(() => {
        queue.splice(queue.indexOf(handOver), 1);
        reject(new SaturatedError(1));
      }, this.settings.queueTimeoutMs);
      const handOver = (instance: Instance | null) => {
        clearTimeout(timer);
        resolve(instance);
      };
      queue.push(handOver);
    });
    if (instance !== null) return instance;
    // An instance of this version stopped: room for a new one.
    if (this.closed) throw new SaturatedError(1);
    return this.instanceFor(key, spec);
  }

  private async startInstance(key: string, spec: InvocationSpec): Promise<Instance> {
    const { pool, run } = this.settings;
    const acquiring = pool.acquire();
    // A slot held by an idle warm instance never starves anyone: one is stopped for the waiter.
    if (pool.queued > 0) this.evictIdle();
    const slot = await acquiring;
    run.standby.vacate(slot.index);
    const cgroup = this.settings.cgroupOf(slot);
    const packages = spec.packagesDir !== undefined;
    try {
      run.jail.mountTmp(slot.index);
      if (spec.packagesDir !== undefined) run.jail.mountPackages(slot.index, spec.packagesDir);
      cgroup?.setMemoryLimit(spec.memoryMb);
    } catch (error) {
      this.cleanUp(slot, cgroup, packages);
      throw error;
    }
    const params = {
      jail: run.jail.root(slot.index),
      uid: slot.uid,
      gid: slot.gid,
      flags: spec.network ? FLAG_NETWORK : 0,
      maxThreads: run.maxThreads,
    };
    const process = WarmProcess.start(INTERPRETER_OF[spec.runtime], this.settings.interpreter, params, (pid) => cgroup?.join(pid));
    const { name, version } = spec.version!;
    const instance: Instance = {
      key,
      name,
      version,
      slot,
      cgroup,
      process,
      packages,
      invocations: 0,
      busy: true,
      retired: false,
      idleTimer: null,
    };
    this.instances.add(instance);
    return instance;
  }

  /** An instance whose invocation ended cleanly: to a waiter of its version, else stopped if anyone waits for a slot, else idle. */
  private release(instance: Instance): void {
    const next = this.waiters.get(instance.key)?.shift();
    if (next) {
      next(instance);
      return;
    }
    instance.busy = false;
    if (this.settings.pool.queued > 0) {
      this.stop(instance);
      return;
    }
    instance.idleTimer = setTimeout(() => this.stop(instance), this.settings.idleMs);
    instance.idleTimer.unref();
  }

  private retire(instance: Instance): void {
    instance.retired = true;
    if (!instance.busy) this.stop(instance);
  }

  private stop(instance: Instance): void {
    if (!this.instances.delete(instance)) return;
    this.waiters.get(instance.key)?.shift()?.(null);
    if (instance.idleTimer) clearTimeout(instance.idleTimer);
    const stopped = (async () => {
      await instance.process.discard();
      instance.cgroup?.killAll();
      this.cleanUp(instance.slot, instance.cgroup, instance.packages);
    })();
    this.stopping.add(stopped);
    void stopped.finally(() => this.stopping.delete(stopped));
  }

  private cleanUp(slot: Slot, cgroup: SlotCgroup | null, packages: boolean): void {
    const { jail } = this.settings.run;
    try {
      cgroup?.killAll();
      if (packages) jail.unmountPackages(slot.index);
      jail.unmountTmp(slot.index);
    } finally {
      this.settings.pool.release(slot);
    }
  }
}

/**
 * What an instance is for: the version, and a digest of everything its process fixed at its start
 * (a function deleted and created again restarts at version 1: its new code must not meet the old
 * instance).
 */
function versionKey(spec: InvocationSpec, name: string, version: number): string {
  const fixed = JSON.stringify([spec.runtime, spec.code, spec.env, spec.memoryMb, spec.network, spec.packagesDir ?? null]);
  return `${name}@${version}#${crypto.createHash("sha256").update(fixed).digest("hex")}`;
}

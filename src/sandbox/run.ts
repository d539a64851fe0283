import type { InvocationResult, InvocationSpec } from "../core/runner.js";
import type { SlotCgroup } from "./cgroups/setup.js";
import { classify } from "./classify.js";
import type { Jail } from "./jail.js";
import { encodePayload, FLAG_NETWORK } from "./protocol.js";
import type { Slot } from "./slots.js";
import type { StandbyPool } from "./standby.js";

// Runs one invocation in one slot: a fresh /tmp, the slot's memory limit, an interpreter (a
// standby, or one started now) moved into the slot's cgroup and handed the lock-down parameters
// and the invocation; then classify how it ended.

export interface RunSettings {
  jail: Jail;
  standby: StandbyPool;
  outputCapBytes: number;
  maxResponseBytes: number;
  maxThreads: number;
}

export interface SlotResources {
  slot: Slot;
  cgroup: SlotCgroup | null;
  /** Aborted when the sandbox closes: the process is killed and the run ends `interrupted`. */
  stop: AbortSignal;
}

export async function runInSlot(settings: RunSettings, resources: SlotResources, spec: InvocationSpec): Promise<InvocationResult> {
  const { slot, cgroup, stop } = resources;
  const { jail } = settings;
  const params = {
    jail: jail.root(slot.index),
    uid: slot.uid,
    gid: slot.gid,
    flags: spec.network ? FLAG_NETWORK : 0,
    maxThreads: settings.maxThreads,
  };
  jail.mountTmp(slot.index);
  try {
    if (spec.packagesDir !== undefined) jail.mountPackages(slot.index, spec.packagesDir);
    cgroup?.setMemoryLimit(spec.memoryMb);
    const oomBefore = cgroup?.oomKills() ?? 0;
    const interpreter = settings.standby.take(spec.runtime, slot.index);
    // Into the slot's cgroup before a byte of the function reaches the process.
    const exit = await interpreter.run(params, encodePayload(spec), spec.timeoutMs, stop, (pid) => cgroup?.join(pid));
    cgroup?.killAll();
    const oomKilled = cgroup !== null && cgroup.oomKills() > oomBefore;
    return classify(exit, spec, oomKilled, settings);
  } finally {
    if (spec.packagesDir !== undefined) jail.unmountPackages(slot.index);
    jail.unmountTmp(slot.index);
    settings.standby.release(slot.index, spec.runtime, cgroup?.procsFiles ?? []);
  }
}

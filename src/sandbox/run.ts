import type { InvocationResult, InvocationSpec, RunOptions } from "../core/runner.js";
import { INTERPRETER_OF, type InterpreterKind } from "../core/runtimes.js";
import type { SlotCgroup } from "./cgroups/setup.js";
import { classify } from "./classify.js";
import type { Jail } from "./jail.js";
import { encodePayload, FLAG_NETWORK } from "./protocol.js";
import type { Slot } from "./slots.js";
import type { StandbyPool } from "./standby.js";

// Runs one invocation in one slot: a fresh /tmp, the slot's memory limit, an interpreter (a
// standby, or one started now) moved into the slot's cgroup and handed the lock-down parameters
// and the invocation; then classify how it ended, and clean the slot up once that is known.

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

/** An invocation in its slot: its result, and the slot's clean-up that follows it. */
export interface SlotRun {
  /** Settles as soon as the invocation's end is known. */
  result: Promise<InvocationResult>;
  /**
   * Settles once the slot is clean again (its /tmp and /packages detached, its next Python child
   * asked for), one event-loop turn after the result so the answer does not wait for it. Rejects
   * when the clean-up failed: the slot must not serve again.
   */
  cleanedUp: Promise<void>;
}

export function runInSlot(settings: RunSettings, resources: SlotResources, spec: InvocationSpec, options: RunOptions = {}): SlotRun {
  const mounted = { tmp: false, packages: false };
  const result = run(settings, resources, spec, mounted, options);
  return { result, cleanedUp: cleanUpAfter(result, settings, resources, INTERPRETER_OF[spec.runtime], mounted) };
}

/** One event-loop turn after the result, however it settled: detaches the slot's mounts and asks for its next Python child. */
async function cleanUpAfter(
  result: Promise<unknown>,
  settings: RunSettings,
  resources: SlotResources,
  runtime: InterpreterKind,
  mounted: { tmp: boolean; packages: boolean },
): Promise<void> {
  await result.catch(() => {}); // a failed run is the caller's to report; the slot is cleaned all the same
  await new Promise<void>((resolve) => setImmediate(resolve));
  const { jail } = settings;
  const { slot, cgroup } = resources;
  if (mounted.packages) jail.unmountPackages(slot.index);
  if (mounted.tmp) jail.unmountTmp(slot.index);
  settings.standby.release(slot.index, runtime, cgroup?.procsFiles ?? []);
}

async function run(
  settings: RunSettings,
  resources: SlotResources,
  spec: InvocationSpec,
  mounted: { tmp: boolean; packages: boolean },
  options: RunOptions,
): Promise<InvocationResult> {
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
  mounted.tmp = true;
  if (spec.packagesDir !== undefined) {
    mounted.packages = true; // a failed bind may have left part of it: the clean-up looks
    jail.mountPackages(slot.index, spec.packagesDir);
  }
  cgroup?.setMemoryLimit(spec.memoryMb);
  const oomBefore = cgroup?.oomKills() ?? 0;
  const interpreter = settings.standby.take(INTERPRETER_OF[spec.runtime], slot.index);
  // Into the slot's cgroup before a byte of the function reaches the process.
  const exit = await interpreter.run(params, encodePayload(spec), spec.timeoutMs, stop, (pid) => cgroup?.join(pid), options);
  cgroup?.killAll();
  const oomKilled = cgroup !== null && cgroup.oomKills() > oomBefore;
  return classify(exit, spec, oomKilled, settings);
}

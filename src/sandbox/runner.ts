import type { SlotCgroup } from "./cgroups.js";
import { BASE_ENV, FLAG_NETWORK, type Outcome } from "./interpreter.js";
import type { Jail } from "./jail.js";
import type { Slot } from "./slots.js";
import type { StandbyPool } from "./standby.js";
import type { InvocationResult, InvocationSpec, RunStatus, SandboxResponse } from "./types.js";

// Runs one invocation in one slot: a fresh /tmp, the slot's memory limit, an
// interpreter (a standby, or one started now) moved into the slot's cgroup and
// handed the lock-down parameters and the invocation; then classify how it ended.

export interface RunnerSettings {
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

/** Room for the result's header line on top of the response body. */
export const FRAME_HEADER_CAP = 256 * 1024;
const V8_OOM = "JavaScript heap out of memory";
const SIGSYS = "SIGSYS";

/** Result-channel frames written by the prescript (response, error) and by the library (forbidden, lockdown_failed). */
type Frame =
  | { kind: "response"; status: number; headers: [string, string][]; body_length: number }
  | { kind: "error"; message: string }
  | { kind: "forbidden"; syscall: number; name: string }
  | { kind: "lockdown_failed"; message: string };

export async function runInSlot(settings: RunnerSettings, resources: SlotResources, spec: InvocationSpec): Promise<InvocationResult> {
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
    cgroup?.setMemoryLimit(spec.memoryMb);
    const oomBefore = cgroup?.oomKills() ?? 0;
    const interpreter = settings.standby.take(spec.runtime);
    // Into the slot's cgroup before a byte of the function reaches the process.
    const outcome = await interpreter.run(params, encodePayload(spec), spec.timeoutMs, stop, (pid) => cgroup?.join(pid));
    cgroup?.killAll();
    const oomKilled = cgroup !== null && cgroup.oomKills() > oomBefore;
    return classify(outcome, spec, oomKilled, settings);
  } finally {
    jail.unmountTmp(slot.index);
    settings.standby.refill();
  }
}

/** What follows the lock-down parameters on fd 3: one JSON line (envelope, env, code), then the raw body. */
function encodePayload(spec: InvocationSpec): Buffer {
  const { body, ...envelope } = spec.request;
  const header = JSON.stringify({
    ...envelope,
    env: { ...BASE_ENV, ...spec.env },
    code: Buffer.from(spec.code).toString("base64"),
    body_length: body.byteLength,
  });
  return Buffer.concat([Buffer.from(header + "\n"), body]);
}

function classify(outcome: Outcome, spec: InvocationSpec, oomKilled: boolean, settings: RunnerSettings): InvocationResult {
  const base = {
    exitCode: outcome.exitCode,
    signal: outcome.signal,
    durationMs: Math.round(outcome.durationMs * 1000) / 1000,
    stdout: outcome.stdout,
    stderr: outcome.stderr,
    blockedSyscall: null,
    response: null,
  };
  const end = (status: RunStatus, errorMessage: string, extra: Partial<InvocationResult> = {}): InvocationResult => ({
    ...base,
    status,
    errorMessage,
    ...extra,
  });

  if (outcome.spawnError !== null) return end("error", `sandbox failure: ${outcome.spawnError}`);
  if (outcome.interrupted) return end("interrupted", "the gateway stopped while the function ran");
  if (outcome.timedOut) return end("timeout", `timed out after ${spec.timeoutMs} ms`);
  if (oomKilled || (outcome.signal !== null && outcome.stderr.data.includes(V8_OOM))) {
    return end("oom", `exceeded its memory limit of ${spec.memoryMb} MB`);
  }
  const frames = outcome.result.data;
  if (outcome.signal === SIGSYS) {
    const report = lastForbiddenReport(frames);
    const name = report?.name || (report ? `syscall ${report.syscall}` : null);
    return end("forbidden", name ? `forbidden: ${name}` : "killed by the seccomp filter", { blockedSyscall: name });
  }
  if (outcome.result.truncated) return end("error", `the response exceeds the ${settings.maxResponseBytes}-byte limit`);

  const parsed = parseFrame(frames);
  if (parsed?.frame.kind === "lockdown_failed") return end("error", `sandbox lock-down failed: ${parsed.frame.message}`);
  if (outcome.signal !== null) return end("error", `killed by ${outcome.signal}`);
  if (outcome.exitCode !== 0) {
    const message = parsed?.frame.kind === "error" ? parsed.frame.message : `exited with code ${outcome.exitCode}`;
    return end("error", message);
  }
  if (parsed === null && frames.length === 0) {
    // Script mode: no handler, stdout is the body.
    if (outcome.stdout.truncated) return end("error", `the script's output exceeds the ${settings.outputCapBytes}-byte cap`);
    const response = { status: 200, headers: [["content-type", "text/plain; charset=utf-8"]], body: outcome.stdout.data } satisfies SandboxResponse;
    return { ...base, status: "ok", errorMessage: null, response };
  }
  if (parsed?.frame.kind !== "response") return end("error", "the function wrote a malformed result");
  const response = toResponse(parsed.frame, parsed.rest);
  if (typeof response === "string") return end("error", response);
  return { ...base, status: "ok", errorMessage: null, response };
}

function parseFrame(data: Buffer): { frame: Frame; rest: Buffer } | null {
  const newline = data.indexOf(10);
  if (newline < 0) return null;
  try {
    const frame = JSON.parse(data.subarray(0, newline).toString("utf8")) as Frame;
    return typeof frame === "object" && frame !== null && "kind" in frame ? { frame, rest: data.subarray(newline + 1) } : null;
  } catch {
    return null;
  }
}

function lastForbiddenReport(data: Buffer): { syscall: number; name: string } | null {
  const at = data.lastIndexOf('{"kind":"forbidden"');
  if (at < 0) return null;
  const parsed = parseFrame(data.subarray(at));
  return parsed?.frame.kind === "forbidden" ? parsed.frame : null;
}

/** Validates a response frame; returns an error message instead when it is not usable. */
function toResponse(frame: Extract<Frame, { kind: "response" }>, body: Buffer): SandboxResponse | string {
  if (!Number.isInteger(frame.status) || frame.status < 200 || frame.status > 599) {
    return `the function answered with an invalid HTTP status: ${String(frame.status)}`;
  }
  const headers = frame.headers;
  if (!Array.isArray(headers) || !headers.every((h) => Array.isArray(h) && h.length === 2 && h.every((v) => typeof v === "string"))) {
    return "the function answered with malformed headers";
  }
  if (frame.body_length !== body.length) return "the function wrote a malformed result";
  return { status: frame.status, headers, body };
}

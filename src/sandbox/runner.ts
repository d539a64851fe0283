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

/** Room for the result's header line on top of the response body; also the longest line accepted. */
export const FRAME_HEADER_CAP = 64 * 1024;
/** Headers a function's response may have. */
const MAX_RESPONSE_HEADERS = 100;
const V8_OOM = "JavaScript heap out of memory";
const SIGSYS = "SIGSYS";

/** Result-channel frames written by the prescript (handler, response, error) and by the library (forbidden, lockdown_failed). */
type Frame =
  | { kind: "handler" }
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
    if (spec.packagesDir !== undefined) jail.mountPackages(slot.index, spec.packagesDir);
    cgroup?.setMemoryLimit(spec.memoryMb);
    const oomBefore = cgroup?.oomKills() ?? 0;
    const interpreter = settings.standby.take(spec.runtime);
    // Into the slot's cgroup before a byte of the function reaches the process.
    const outcome = await interpreter.run(params, encodePayload(spec), spec.timeoutMs, stop, (pid) => cgroup?.join(pid));
    cgroup?.killAll();
    const oomKilled = cgroup !== null && cgroup.oomKills() > oomBefore;
    return classify(outcome, spec, oomKilled, settings);
  } finally {
    if (spec.packagesDir !== undefined) jail.unmountPackages(slot.index);
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
    packages: spec.packagesDir !== undefined,
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
  const ok = (response: SandboxResponse): InvocationResult => ({ ...base, status: "ok", errorMessage: null, response });

  if (outcome.spawnError !== null) return end("error", `sandbox failure: ${outcome.spawnError}`);
  if (outcome.interrupted) return end("interrupted", "the gateway stopped while the function ran");
  if (outcome.timedOut) return end("timeout", `timed out after ${spec.timeoutMs} ms`);
  // V8 reports an outgrown heap itself and aborts; the cgroup's OOM killer sends SIGKILL.
  const v8OutOfMemory = spec.runtime === "node" && outcome.signal === "SIGABRT" && outcome.stderr.data.includes(V8_OOM);
  if (oomKilled || v8OutOfMemory) return end("oom", `exceeded its memory limit of ${spec.memoryMb} MB`);
  const { frames, malformed } = parseFrames(outcome.result.data);
  if (outcome.signal === SIGSYS) {
    const report = frameOf(frames.toReversed(), "forbidden");
    const name = report ? report.name || `syscall ${report.syscall}` : null;
    return end("forbidden", name ? `forbidden: ${name}` : "killed by the seccomp filter", { blockedSyscall: name });
  }
  if (outcome.result.truncated) return end("error", `the response exceeds the ${settings.maxResponseBytes}-byte limit`);

  const lockdown = frameOf(frames, "lockdown_failed");
  if (lockdown) return end("error", `sandbox lock-down failed: ${lockdown.message}`);
  const error = frameOf(frames, "error");
  if (error) return end("error", error.message);
  if (outcome.signal !== null) return end("error", `killed by ${outcome.signal}`);
  if (outcome.exitCode !== 0) return end("error", `exited with code ${outcome.exitCode}`);
  if (malformed) return end("error", `the function wrote a malformed result: ${malformed}`);

  const response = frameOf(frames, "response");
  if (response) return typeof response.value === "string" ? end("error", response.value) : ok(response.value);
  if (frameOf(frames, "handler")) return end("error", "the handler ended without a response");
  // Script mode: no handler, stdout is the body.
  if (outcome.stdout.truncated) return end("error", `the script's output exceeds the ${settings.outputCapBytes}-byte cap`);
  return ok({ status: 200, headers: [["content-type", "text/plain; charset=utf-8"]], body: outcome.stdout.data });
}

/** Frames as the result channel carried them, the response validated (or the reason it is not usable). */
type ParsedFrame = Exclude<Frame, { kind: "response" }> | { kind: "response"; value: SandboxResponse | string };
const OTHER_KINDS = new Set<string>(["handler", "error", "forbidden", "lockdown_failed"] satisfies Exclude<Frame, { kind: "response" }>["kind"][]);

function frameOf<K extends ParsedFrame["kind"]>(frames: ParsedFrame[], kind: K): Extract<ParsedFrame, { kind: K }> | undefined {
  return frames.find((f): f is Extract<ParsedFrame, { kind: K }> => f.kind === kind);
}

/** Reads the result channel: JSON lines, each response line followed by its body bytes. */
function parseFrames(data: Buffer): { frames: ParsedFrame[]; malformed: string | null } {
  const frames: ParsedFrame[] = [];
  let at = 0;
  while (at < data.length) {
    const newline = data.indexOf(10, at);
    if (newline < 0 || newline - at > FRAME_HEADER_CAP) return { frames, malformed: "an unterminated or oversized frame" };
    let frame: Frame;
    try {
      frame = JSON.parse(data.subarray(at, newline).toString("utf8")) as Frame;
    } catch {
      return { frames, malformed: "a frame that is not JSON" };
    }
    at = newline + 1;
    if (frame?.kind === "response") {
      const length = frame.body_length;
      if (!Number.isSafeInteger(length) || length < 0 || at + length > data.length) {
        return { frames, malformed: "a response whose body length does not match" };
      }
      frames.push({ kind: "response", value: toResponse(frame, data.subarray(at, at + length)) });
      at += length;
    } else if (OTHER_KINDS.has(frame?.kind)) {
      frames.push(frame as ParsedFrame);
    } else {
      return { frames, malformed: "a frame of unknown kind" };
    }
  }
  return { frames, malformed: null };
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
  if (headers.length > MAX_RESPONSE_HEADERS) return `the function answered with more than ${MAX_RESPONSE_HEADERS} headers`;
  return { status: frame.status, headers, body };
}

import { spawn } from "node:child_process";
import { once } from "node:events";
import type { Readable, Writable } from "node:stream";
import type { SlotCgroup } from "./cgroups.js";
import type { Interpreters } from "./interpreters.js";
import type { Jail } from "./jail.js";
import { FLAG_NETWORK, type Prescripts } from "./prescript.js";
import type { Slot } from "./slots.js";
import type { CapturedOutput, InvocationResult, InvocationSpec, RunStatus, SandboxResponse } from "./types.js";

// Runs one invocation in one slot: spawn the interpreter with the rendered
// prescript on stdin, move it into the slot's cgroup, hand it the request on
// fd 3, collect stdout, stderr and the result (fd 4) within their caps, kill the
// process group at the deadline, and classify how it ended.

export interface RunnerSettings {
  libraryPath: string;
  interpreters: Interpreters;
  prescripts: Prescripts;
  jail: Jail;
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

/** The environment user code starts from; the function's own variables are added after the lock. */
export const BASE_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: "/usr/local/bin:/usr/bin:/bin",
  HOME: "/tmp",
  TMPDIR: "/tmp",
  LANG: "C.UTF-8",
});

/**
 * The environment the interpreter is started with: BASE_ENV, and a GODEBUG that
 * stops the library's Go runtime from keeping its cgroup CPU files open
 * (container-aware GOMAXPROCS), which the lock-down would refuse.
 */
const SPAWN_ENV: Readonly<Record<string, string>> = Object.freeze({
  ...BASE_ENV,
  GODEBUG: "containermaxprocs=0,updatemaxprocs=0",
});

const FRAME_HEADER_CAP = 256 * 1024;
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
  const source = settings.prescripts.render(spec.runtime, {
    LIB_PATH: settings.libraryPath,
    KOFFI_PATH: settings.interpreters.node.koffiPath,
    JAIL: jail.root(slot.index),
    UID: slot.uid,
    GID: slot.gid,
    FLAGS: spec.network ? FLAG_NETWORK : 0,
    MAX_THREADS: settings.maxThreads,
    CODE: Buffer.from(spec.code).toString("base64"),
  });
  const [binary, args] = command(settings.interpreters, spec);

  jail.mountTmp(slot.index);
  try {
    cgroup?.setMemoryLimit(spec.memoryMb);
    const oomBefore = cgroup?.oomKills() ?? 0;
    const outcome = await supervise(settings, spec, binary, args, source, jail.root(slot.index), cgroup, stop);
    cgroup?.killAll();
    const oomKilled = cgroup !== null && cgroup.oomKills() > oomBefore;
    return classify(outcome, spec, oomKilled, settings);
  } finally {
    jail.unmountTmp(slot.index);
  }
}

function command(interpreters: Interpreters, spec: InvocationSpec): [string, string[]] {
  if (spec.runtime === "python") return [interpreters.python.binary, ["-I", "-S", "-B", "-u", "-"]];
  // V8 is told the limit too, so that a heap that outgrows it fails in V8's own words.
  return [interpreters.node.binary, [`--max-old-space-size=${spec.memoryMb}`, "-"]];
}

interface Outcome {
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
  timedOut: boolean;
  interrupted: boolean;
  spawnError: string | null;
  stdout: CapturedOutput;
  stderr: CapturedOutput;
  result: CapturedOutput;
}

async function supervise(
  settings: RunnerSettings,
  spec: InvocationSpec,
  binary: string,
  args: string[],
  source: string,
  cwd: string,
  cgroup: SlotCgroup | null,
  stop: AbortSignal,
): Promise<Outcome> {
  const started = performance.now();
  const child = spawn(binary, args, {
    cwd,
    env: SPAWN_ENV,
    detached: true, // its own process group, killed as one
    stdio: ["pipe", "pipe", "pipe", "pipe", "pipe"],
  });
  const stdout = new Capture(settings.outputCapBytes);
  const stderr = new Capture(settings.outputCapBytes);
  const result = new Capture(settings.maxResponseBytes + FRAME_HEADER_CAP);
  let timedOut = false;
  let spawnError: string | null = null;
  const closed = once(child, "close") as Promise<[number | null, NodeJS.Signals | null]>;
  child.on("error", (error) => {
    spawnError ??= error.message;
  });
  const killGroup = () => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  };

  // A child that dies early makes these writes fail (EPIPE); that must never reach the gateway.
  const [stdin, , , requestIn, resultOut] = child.stdio as [Writable, Readable, Readable, Writable, Readable];
  for (const stream of child.stdio) stream?.on("error", () => {});
  child.stdout!.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk));
  resultOut.on("data", (chunk: Buffer) => {
    if (!result.push(chunk)) killGroup(); // an oversized response ends the invocation
  });

  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, spec.timeoutMs);
  let interrupted = false;
  const onStop = () => {
    interrupted = true;
    killGroup();
  };
  stop.addEventListener("abort", onStop, { once: true });
  if (stop.aborted) onStop();

  if (child.pid !== undefined) {
    try {
      // Into the slot's cgroup before a byte of the function reaches the process.
      cgroup?.join(child.pid);
      stdin.end(source);
      requestIn.end(encodeRequest(spec));
    } catch (error) {
      spawnError = `could not confine the process: ${(error as Error).message}`;
      killGroup();
    }
  }

  const [exitCode, signal] = await closed;
  clearTimeout(timer);
  stop.removeEventListener("abort", onStop);
  return {
    exitCode,
    signal,
    durationMs: performance.now() - started,
    timedOut,
    interrupted,
    spawnError,
    stdout: stdout.output(),
    stderr: stderr.output(),
    result: result.output(),
  };
}

/** The request channel: one JSON line (envelope and env), then the raw body. */
function encodeRequest(spec: InvocationSpec): Buffer {
  const { body, ...envelope } = spec.request;
  const header = JSON.stringify({ ...envelope, env: { ...BASE_ENV, ...spec.env }, body_length: body.byteLength });
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

/** Keeps the first `cap` bytes of a stream and counts the rest, so memory stays bounded. */
class Capture {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private truncated = false;

  constructor(private readonly cap: number) {}

  /** Returns false once the cap has been passed. */
  push(chunk: Buffer): boolean {
    const room = this.cap - this.size;
    if (chunk.length > room) {
      if (room > 0) this.chunks.push(chunk.subarray(0, room));
      this.size = this.cap;
      this.truncated = true;
      return false;
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
    return true;
  }

  output(): CapturedOutput {
    return { data: Buffer.concat(this.chunks, this.size), truncated: this.truncated };
  }
}

import type { InvocationResult, InvocationSpec, SandboxResponse } from "../core/runner.js";
import { INTERPRETER_OF } from "../core/runtimes.js";
import type { RunStatus } from "../core/statuses.js";
import type { ProcessExit } from "./process.js";
import { EXIT_LOCKDOWN_FAILED, frameOf } from "./protocol.js";

// How an invocation ended, from what the process left behind: its exit, its output, its result
// channel and the cgroup's OOM counter. Pure, so each rule is unit-tested without root.

const V8_OOM = "JavaScript heap out of memory";
const SIGSYS = "SIGSYS";
/** What every message that comes from the function's own `error` frame starts with. */
export const FUNCTION_RAISED = "the function raised";

export interface ClassifyLimits {
  outputCapBytes: number;
  maxResponseBytes: number;
}

export function classify(
  exit: ProcessExit,
  spec: Pick<InvocationSpec, "runtime" | "timeoutMs" | "memoryMb">,
  oomKilled: boolean,
  limits: ClassifyLimits,
  /** The process confirmed its lock-down earlier (a warm instance's later invocations), so no `locked` frame leads. */
  lockConfirmed = false,
): InvocationResult {
  const base = {
    exitCode: exit.exitCode,
    signal: exit.signal,
    durationMs: Math.round(exit.durationMs * 1000) / 1000,
    stdout: exit.stdout,
    stderr: exit.stderr,
    blockedSyscall: null,
    deniedSyscalls: exit.denied?.calls ?? [],
    response: null,
  };
  const end = (status: RunStatus, errorMessage: string, extra: Partial<InvocationResult> = {}): InvocationResult => ({
    ...base,
    status,
    errorMessage,
    ...extra,
  });
  const ok = (response: SandboxResponse): InvocationResult => ({ ...base, status: "ok", errorMessage: null, response });

  // A stopping gateway comes first: closing the sandbox also ends the fork-server, whose loss the
  // invocation then reports too, but the cause is the stop.
  if (exit.interrupted) return end("interrupted", "the gateway stopped while the function ran");
  if (exit.spawnError !== null) return end("error", `sandbox failure: ${exit.spawnError}`);
  // The kernel named the call to the gateway's listener, which killed the process for it: first
  // reported, so a deadline that fired as it died does not hide it.
  const killedFor = exit.denied?.killedFor ?? null;
  if (killedFor !== null) {
    return end("forbidden", `the function called ${killedFor}, which the sandbox does not allow (killed)`, { blockedSyscall: killedFor });
  }
  if (exit.timedOut) return end("timeout", `timed out after ${spec.timeoutMs} ms`);
  if (exit.clientClosed) return end("client_closed", "the client went away while the answer was streamed to it; the function was stopped");
  // V8 reports an outgrown heap itself and aborts; the cgroup's OOM killer sends SIGKILL.
  const v8OutOfMemory = INTERPRETER_OF[spec.runtime] === "node" && exit.signal === "SIGABRT" && exit.stderr.data.includes(V8_OOM);
  if (oomKilled || v8OutOfMemory) return end("oom", `exceeded its memory limit of ${spec.memoryMb} MB`);
  const { frames, malformed, tooLarge, bodyEnded } = exit.result;
  // The result channel is writable by user code (the prescript writes the response there), so
  // only what no byte of user code can precede is believed: the first frame, written before
  // the function is read. A `forbidden` frame is never trusted (prescripts/PROTOCOL.md, "What is
  // believed"): the names come from the listener. With one, the filter kills in the kernel only
  // a call of a foreign architecture or ABI; without one (an older kernel), it traps the calls it
  // does not name and the name stays unknown.
  if (exit.signal === SIGSYS) {
    return end(
      "forbidden",
      exit.denied === null
        ? "killed by the seccomp filter (call not reported)"
        : "killed by SIGSYS: a system call of a foreign architecture or ABI, or a signal the function sent itself",
    );
  }
  const first = frames[0];
  if (first?.kind === "lockdown_failed" && exit.exitCode === EXIT_LOCKDOWN_FAILED) {
    return end("error", `sandbox lock-down failed: ${first.message}`);
  }
  if (!lockConfirmed && first?.kind !== "locked") {
    const how = exit.signal !== null ? `killed by ${exit.signal}` : `exited with code ${exit.exitCode}`;
    return end("error", `sandbox lock-down failed: it was not confirmed (${how})`);
  }
  if (tooLarge) return end("error", `the response exceeds the ${limits.maxResponseBytes}-byte limit (MAX_RESPONSE_BYTES)`);

  // The function writes this message (an exception's summary, whose type name it can choose),
  // so it is labelled as the function's: no text of its own can pass for the gateway's.
  const error = frameOf(frames, "error");
  if (error) return end("error", `${FUNCTION_RAISED} ${String(error.message)}`);
  if (exit.signal !== null) return end("error", `killed by ${exit.signal}`);
  if (exit.exitCode !== 0) return end("error", `exited with code ${exit.exitCode}`);
  if (malformed) return end("error", `the function wrote a malformed result: ${malformed}`);

  const response = frameOf(frames, "response");
  if (response) {
    if (typeof response.value === "string") return end("error", response.value);
    if (bodyEnded === false) return end("error", "the function ended before its streamed body did");
    return ok(response.value);
  }
  if (frameOf(frames, "handler")) return end("error", "the handler ended without a response");
  // Script mode: no handler, stdout is the body.
  if (exit.stdout.truncated) return end("error", `the script's output exceeds the ${limits.outputCapBytes}-byte cap`);
  return ok({ status: 200, headers: [["content-type", "text/plain; charset=utf-8"]], body: exit.stdout.data });
}

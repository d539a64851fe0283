import { type InvocationEnd, NO_OUTPUT } from "../../core/invocations.js";
import { log } from "../../core/log.js";
import { type DeniedSyscall, type InvocationResult, SaturatedError } from "../../core/runner.js";
import { FAILURE_HTTP_STATUS } from "../../core/statuses.js";
import { errorBody } from "../errors.js";
import { type DroppedHeader, describeDropped, toHttpResponse } from "./exchange.js";

/** An HTTP answer and the log row's end that goes with it (`deniedSyscalls`: the calls the sandbox refused, as the kernel named them). */
export interface Outcome {
  response: Response;
  end: InvocationEnd & { deniedSyscalls: DeniedSyscall[] };
  /**
   * Milliseconds from the start of the run to the first byte of the function's own answer handed
   * to the client (a whole answer's head, a streamed one's head, live output's first event); null
   * when nothing ran.
   */
  firstByteMs: number | null;
}

function jsonError(status: number, code: string, message: string, invocationId: string, headers: Record<string, string> = {}) {
  const text = JSON.stringify(errorBody(code, message, { invocation_id: invocationId }));
  const response = new Response(text, { status, headers: { ...headers, "content-type": "application/json" } });
  return { response, bytes: Buffer.byteLength(text) };
}

/** The run's own part of a log row: how the process ended and what it wrote. */
function outputOf(result: InvocationResult) {
  return {
    durationMs: result.durationMs,
    exitCode: result.exitCode,
    signal: result.signal,
    // Stored as text: invalid UTF-8 becomes U+FFFD.
    stdout: result.stdout.data.toString("utf8"),
    stderr: result.stderr.data.toString("utf8") + describeDenied(result.deniedSyscalls),
    stdoutTruncated: result.stdout.truncated,
    stderrTruncated: result.stderr.truncated,
    blockedSyscall: result.blockedSyscall,
    deniedSyscalls: result.deniedSyscalls,
  };
}

const messageOf = (result: InvocationResult) => result.errorMessage ?? `the function ended with status ${result.status}`;

/** What the runner reported, as a response and a log row. */
export function outcomeOfResult(result: InvocationResult, invocationId: string, firstByteMs: number | null = null): Outcome {
  const output = outputOf(result);
  if (result.status === "ok") {
    if (result.response) {
      const { response, bytes, dropped } = toHttpResponse(result.response);
      const stderr = output.stderr + describeDropped(dropped);
      const end = { ...output, stderr, status: "ok", httpStatus: response.status, responseBytes: bytes, error: null } as const;
      return { response, end, firstByteMs };
    }
    const message = "the function produced no response";
    const { response, bytes } = jsonError(500, "error", message, invocationId);
    return { response, end: { ...output, status: "error", httpStatus: 500, responseBytes: bytes, error: message }, firstByteMs };
  }
  const httpStatus = FAILURE_HTTP_STATUS[result.status];
  const message = messageOf(result);
  const { response, bytes } = jsonError(httpStatus, result.status, message, invocationId);
  return { response, end: { ...output, status: result.status, httpStatus, responseBytes: bytes, error: message }, firstByteMs };
}

/** What went out of an answer streamed to the client: its status, the body bytes handed on, the headers dropped. */
export interface SentStream {
  httpStatus: number;
  bytes: number;
  dropped: DroppedHeader[];
}

/**
 * The log row's end of an answer that was streamed (its head sent as the function gave it, its
 * body as written, or live output's events): the run's status, what was sent.
 */
export function endOfStream(result: InvocationResult, sent: SentStream): Outcome["end"] {
  const output = outputOf(result);
  const stderr = output.stderr + describeDropped(sent.dropped);
  const error = result.status === "ok" ? null : messageOf(result);
  return { ...output, stderr, status: result.status, httpStatus: sent.httpStatus, responseBytes: sent.bytes, error };
}

/** A line for the stored stderr naming the calls the sandbox refused (the row's denied_syscalls holds them too). */
function describeDenied(denied: DeniedSyscall[]): string {
  if (denied.length === 0) return "";
  return `[fngw] the sandbox refused ${denied.map(({ name, count }) => (count === 1 ? name : `${name} (${count} times)`)).join(", ")}\n`;
}

/** An invocation the gateway refuses without running it: a `rejected` row with the status it answered (408, 413, 429, 503). */
export function rejected(
  httpStatus: 408 | 413 | 429 | 503,
  code: string,
  message: string,
  invocationId: string,
  headers: Record<string, string>,
  waitedMs = 0,
): Outcome {
  const { response, bytes } = jsonError(httpStatus, code, message, invocationId, headers);
  return {
    response,
    end: { ...NO_OUTPUT, deniedSyscalls: [], durationMs: waitedMs, status: "rejected", httpStatus, responseBytes: bytes, error: message },
    firstByteMs: null,
  };
}

/** The gateway is at its admission limit: 429 with Retry-After. */
export function saturated(message: string, invocationId: string, retryAfterSeconds: number, waitedMs = 0): Outcome {
  const retryAfter = String(Math.max(1, Math.ceil(retryAfterSeconds)));
  return rejected(429, "rejected", message, invocationId, { "Retry-After": retryAfter }, waitedMs);
}

/** The runner refused (saturated: 429 with Retry-After) or failed (500, detail only in the log). */
export function outcomeOfRunnerError(err: unknown, invocationId: string, waitedMs: number): Outcome {
  if (err instanceof SaturatedError) return saturated(err.message, invocationId, err.retryAfterSeconds, waitedMs);
  log.error({ err, invocation_id: invocationId }, `invocation ${invocationId}: the runner failed`);
  const { response, bytes } = jsonError(500, "internal", "the gateway failed to run the function", invocationId);
  return {
    response,
    end: {
      ...NO_OUTPUT,
      deniedSyscalls: [],
      durationMs: waitedMs,
      status: "error",
      httpStatus: 500,
      responseBytes: bytes,
      error: `runner failed: ${String(err)}`,
    },
    firstByteMs: null,
  };
}

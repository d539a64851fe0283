import { type InvocationEnd, NO_OUTPUT } from "../core/invocations.js";
import { log } from "../core/log.js";
import { type InvocationResult, type SandboxRequest, SaturatedError } from "../core/runner.js";
import { FAILURE_HTTP_STATUS } from "../core/statuses.js";
import type { JobRecord } from "../store/contract.js";

/**
 * One attempt of a job, in the runner's terms: the request the function is handed, and what its
 * result means for the log row and for the job's stored answer. The HTTP path has its own mapping
 * to a response (src/http/invoke); a job has no client waiting, so its answer is kept instead.
 */

/** The answer a job keeps: what the function answered, or the gateway's JSON error for a run that failed. */
export interface JobAnswer {
  httpStatus: number;
  headers: [string, string][];
  body: Buffer;
}

/** The header that tells a function which attempt of its job it is (1 for the first). */
export const ATTEMPT_HEADER = "x-fngw-attempt";
/** The gateway's id of the invocation: for a job, the job's id on every attempt, so a function can deduplicate with it. */
export const INVOCATION_ID_HEADER = "x-invocation-id";

/** The request of attempt `attempt` of `job`: the stored one, with the job's id and the attempt number. */
export function attemptRequest(job: JobRecord, attempt: number): SandboxRequest {
  const headers: [string, string][] = job.headers.filter(([name]) => name !== INVOCATION_ID_HEADER && name !== ATTEMPT_HEADER);
  headers.push([INVOCATION_ID_HEADER, job.id], [ATTEMPT_HEADER, String(attempt)]);
  return {
    method: job.method,
    path: job.path,
    query: [...new URL(job.url).searchParams],
    headers,
    body: job.body ?? Buffer.alloc(0),
    url: job.url,
  };
}

/** Header names a kept answer leaves out: hop-by-hop ones and the length (the body says it). */
const UNKEPT_HEADERS = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "content-length",
  INVOCATION_ID_HEADER,
]);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the characters a header value may not hold
const BAD_VALUE = /[\0-\x08\x0a-\x1f\x7f]/;

function errorAnswer(httpStatus: number, code: string, message: string, invocationId: string): JobAnswer {
  const body = Buffer.from(JSON.stringify({ error: { code, message, invocation_id: invocationId } }));
  return { httpStatus, headers: [["content-type", "application/json"]], body };
}

/** The runner's result as the attempt's log row end and the job's answer. */
export function attemptOutcome(result: InvocationResult, invocationId: string): { end: InvocationEnd; answer: JobAnswer } {
  const output = {
    durationMs: result.durationMs,
    exitCode: result.exitCode,
    signal: result.signal,
    stdout: result.stdout.data.toString("utf8"),
    stderr: result.stderr.data.toString("utf8"),
    stdoutTruncated: result.stdout.truncated,
    stderrTruncated: result.stderr.truncated,
    blockedSyscall: result.blockedSyscall,
  };
  if (result.status === "ok" && result.response) {
    const { status, body } = result.response;
    const headers = result.response.headers.filter(
      ([name, value]) => !UNKEPT_HEADERS.has(name.toLowerCase()) && TOKEN.test(name) && !BAD_VALUE.test(value),
    );
    const end: InvocationEnd = { ...output, status: "ok", httpStatus: status, responseBytes: body.byteLength, error: null };
    return { end, answer: { httpStatus: status, headers, body } };
  }
  const status = result.status === "ok" ? "error" : result.status;
  const httpStatus = FAILURE_HTTP_STATUS[status];
  const message =
    result.status === "ok" ? "the function produced no response" : (result.errorMessage ?? `the function ended with status ${status}`);
  const answer = errorAnswer(httpStatus, status, message, invocationId);
  return { end: { ...output, status, httpStatus, responseBytes: answer.body.byteLength, error: message }, answer };
}

/** The runner refused (no slot in time: 429, retried) or failed (500). */
export function attemptRunnerError(err: unknown, invocationId: string, waitedMs: number): { end: InvocationEnd; answer: JobAnswer } {
  if (err instanceof SaturatedError) {
    const answer = errorAnswer(429, "rejected", err.message, invocationId);
    return {
      end: {
        ...NO_OUTPUT,
        durationMs: waitedMs,
        status: "rejected",
        httpStatus: 429,
        responseBytes: answer.body.byteLength,
        error: err.message,
      },
      answer,
    };
  }
  log.error({ err, invocation_id: invocationId }, `invocation ${invocationId}: the runner failed`);
  const answer = errorAnswer(500, "internal", "the gateway failed to run the function", invocationId);
  return {
    end: {
      ...NO_OUTPUT,
      durationMs: waitedMs,
      status: "error",
      httpStatus: 500,
      responseBytes: answer.body.byteLength,
      error: `runner failed: ${String(err)}`,
    },
    answer,
  };
}

/** An attempt the gateway refuses before running it (the version's packages are not ready): a `rejected` row. */
export function attemptRefused(
  httpStatus: number,
  code: string,
  message: string,
  invocationId: string,
): { end: InvocationEnd; answer: JobAnswer } {
  const answer = errorAnswer(httpStatus, code, message, invocationId);
  return {
    end: { ...NO_OUTPUT, durationMs: 0, status: "rejected", httpStatus, responseBytes: answer.body.byteLength, error: message },
    answer,
  };
}

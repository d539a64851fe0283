import { performance } from "node:perf_hooks";
import { Hono } from "hono";
import { v7 as uuidv7 } from "uuid";
import type { Config } from "../config.js";
import type { FunctionStore, FunctionVersion } from "../db/functions.js";
import type { InvocationEnd, InvocationLog } from "../db/invocations.js";
import {
  SaturatedError,
  type InvocationResult,
  type InvocationSpec,
  type Runner,
  type RunStatus,
  type SandboxRequest,
  type SandboxResponse,
} from "../sandbox/types.js";
import { checkBearer, unauthorized, type TokenCheck } from "./auth.js";
import { ApiError, errorBody, notFoundError } from "./errors.js";
import type { Inflight } from "./inflight.js";
import { NAME_PATTERN } from "./schemas.js";

export const INVOCATION_ID_HEADER = "x-invocation-id";

type InvokeEnv = { Variables: { invocationId: string } };

export interface InvokeDeps {
  config: Config;
  functions: FunctionStore;
  invocations: InvocationLog;
  runner: Runner;
  tokenHash: Buffer;
  inflight: Inflight;
  /** Makes invocation ids; UUIDv7 (time-ordered) unless a test passes its own. */
  newId?: () => string;
}

/** HTTP status of each way a run can fail. */
const FAILURE_STATUS: Record<Exclude<RunStatus, "ok">, 500 | 503 | 504> = {
  error: 500,
  timeout: 504,
  oom: 500,
  forbidden: 500,
  interrupted: 503,
};

/** Headers a function may not set: hop-by-hop ones, the length (recomputed) and the gateway's own id. */
const DROPPED_RESPONSE_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
  INVOCATION_ID_HEADER,
]);

/** Statuses whose responses have no body (the Response constructor refuses one). */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

export interface InvocationTarget {
  name: string;
  /** The version asked for with `@N`, or null for the current one. */
  version: number | null;
  /** Path below the function, starting with `/`, percent-encoding kept. */
  path: string;
}

/** Splits `/fn/<name>[@N][/rest]`; null when the name part cannot name a function. */
export function parseTarget(pathname: string): InvocationTarget | null {
  const rest = pathname.slice("/fn/".length);
  const slash = rest.indexOf("/");
  let target: string;
  try {
    target = decodeURIComponent(slash === -1 ? rest : rest.slice(0, slash));
  } catch {
    return null;
  }
  const at = target.lastIndexOf("@");
  const name = at === -1 ? target : target.slice(0, at);
  const versionText = at === -1 ? null : target.slice(at + 1);
  if (!NAME_PATTERN.test(name)) return null;
  if (versionText !== null && !/^[1-9]\d{0,8}$/.test(versionText)) return null;
  return {
    name,
    version: versionText === null ? null : Number(versionText),
    path: slash === -1 ? "/" : rest.slice(slash),
  };
}

/** Bytes of an oversize streamed body read and thrown away after the cap, so its connection can serve the next request. */
export const OVERSIZE_DISCARD_BYTES = 8 * 1024 * 1024;

/** A body within the cap, or the news that it is too large and whether its connection can be kept. */
export type CappedBody = { body: Uint8Array } | { tooLarge: true; keepAlive: boolean };

/**
 * Reads the body up to `max` bytes. Content-Length is checked first so an honest oversize request
 * is refused before a byte is read (the server then discards the rest of it); the count covers
 * chunked bodies and lying clients. Past the cap the rest of a streamed body is read and dropped,
 * up to OVERSIZE_DISCARD_BYTES: answering while the client still sends makes the connection end
 * under it, so the client would see a reset instead of the 413. A body longer still is cut off
 * and its connection must close.
 */
export async function readBodyWithin(request: Request, max: number): Promise<CappedBody> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > max) return { tooLarge: true, keepAlive: true };
  if (!request.body) return { body: new Uint8Array(0) };
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read().catch(() => {
      // The client went away mid-body: nobody is left to answer, and nothing to log but this.
      throw new ApiError(400, "bad_request", "the request body ended early");
    });
    if (done) break;
    size += value.byteLength;
    if (size > max) return { tooLarge: true, keepAlive: await discardRest(reader, OVERSIZE_DISCARD_BYTES) };
    chunks.push(value);
  }
  return { body: Buffer.concat(chunks, size) };
}

/** Reads and drops up to `limit` more bytes; true if the body ended within them, else cancels it. */
async function discardRest(reader: ReadableStreamDefaultReader<Uint8Array>, limit: number): Promise<boolean> {
  let dropped = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return true;
    dropped += value.byteLength;
    if (dropped > limit) {
      await reader.cancel();
      return false;
    }
  }
}

function toSandboxRequest(request: Request, path: string, body: Uint8Array, invocationId: string): SandboxRequest {
  const url = new URL(request.url);
  const headers: [string, string][] = [];
  // The gateway token is never handed to a function; the id lets the function's own logs refer to this invocation.
  for (const [name, value] of request.headers) {
    if (name !== "authorization" && name !== INVOCATION_ID_HEADER) headers.push([name, value]);
  }
  headers.push([INVOCATION_ID_HEADER, invocationId]);
  return { method: request.method, path, query: [...url.searchParams], headers, body, url: request.url };
}

/** The function's answer as an HTTP response, or the reason it cannot be sent. */
function functionResponse(answer: SandboxResponse, maxBytes: number): { response: Response; bytes: number } | { invalid: string } {
  const { status } = answer;
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    return { invalid: `the function answered with an invalid HTTP status (${String(status)})` };
  }
  if (answer.body.byteLength > maxBytes) {
    return { invalid: `the function's response exceeds ${maxBytes} bytes (MAX_RESPONSE_BYTES)` };
  }
  const headers = new Headers();
  for (const [name, value] of answer.headers) {
    if (DROPPED_RESPONSE_HEADERS.has(name.toLowerCase())) continue;
    try {
      headers.append(name, value);
    } catch {
      // An invalid header name or value is dropped rather than failing the whole answer.
    }
  }
  // A Buffer the runner made sits on a plain ArrayBuffer; the DOM typings only want to hear it.
  const body = NULL_BODY_STATUSES.has(status) ? null : (answer.body as Uint8Array<ArrayBuffer>);
  // Node frames a bodiless 205 as chunked; an explicit empty length is what RFC 9110 asks for.
  if (status === 205) headers.set("content-length", "0");
  return { response: new Response(body, { status, headers }), bytes: body?.byteLength ?? 0 };
}

/** An HTTP answer and the log row's end that goes with it. */
interface Outcome {
  response: Response;
  end: InvocationEnd;
}

function jsonError(status: number, code: string, message: string, invocationId: string, headers: Record<string, string> = {}) {
  const text = JSON.stringify(errorBody(code, message, { invocation_id: invocationId }));
  const response = new Response(text, { status, headers: { ...headers, "content-type": "application/json" } });
  return { response, bytes: Buffer.byteLength(text) };
}

const NO_OUTPUT = {
  exitCode: null,
  signal: null,
  stdout: "",
  stderr: "",
  stdoutTruncated: false,
  stderrTruncated: false,
  blockedSyscall: null,
} as const;

/** What the runner reported, as a response and a log row. */
export function outcomeOfResult(result: InvocationResult, invocationId: string, maxResponseBytes: number): Outcome {
  const output = {
    durationMs: result.durationMs,
    exitCode: result.exitCode,
    signal: result.signal,
    // Stored as text: invalid UTF-8 becomes U+FFFD.
    stdout: result.stdout.data.toString("utf8"),
    stderr: result.stderr.data.toString("utf8"),
    stdoutTruncated: result.stdout.truncated,
    stderrTruncated: result.stderr.truncated,
    blockedSyscall: result.blockedSyscall,
  };
  if (result.status === "ok") {
    const answer = result.response
      ? functionResponse(result.response, maxResponseBytes)
      : { invalid: "the function produced no response" };
    if ("response" in answer) {
      return {
        response: answer.response,
        end: { ...output, status: "ok", httpStatus: answer.response.status, responseBytes: answer.bytes, error: null },
      };
    }
    const { response, bytes } = jsonError(500, "error", answer.invalid, invocationId);
    return { response, end: { ...output, status: "error", httpStatus: 500, responseBytes: bytes, error: answer.invalid } };
  }
  const httpStatus = FAILURE_STATUS[result.status];
  const message = result.errorMessage ?? `the function ended with status ${result.status}`;
  const { response, bytes } = jsonError(httpStatus, result.status, message, invocationId);
  return { response, end: { ...output, status: result.status, httpStatus, responseBytes: bytes, error: message } };
}

/** An invocation the gateway refuses without running it: a `rejected` row with the status it answered. */
function rejected(
  httpStatus: 413 | 429,
  code: string,
  message: string,
  invocationId: string,
  headers: Record<string, string>,
  waitedMs = 0,
): Outcome {
  const { response, bytes } = jsonError(httpStatus, code, message, invocationId, headers);
  return { response, end: { ...NO_OUTPUT, durationMs: waitedMs, status: "rejected", httpStatus, responseBytes: bytes, error: message } };
}

/** The runner refused (saturated: 429 with Retry-After) or failed (500, detail only in the log). */
export function outcomeOfRunnerError(err: unknown, invocationId: string, waitedMs: number): Outcome {
  if (err instanceof SaturatedError) {
    const retryAfter = String(Math.max(1, Math.ceil(err.retryAfterSeconds)));
    return rejected(429, "rejected", err.message, invocationId, { "Retry-After": retryAfter }, waitedMs);
  }
  console.error(`invocation ${invocationId}: the runner failed:`, err);
  const { response, bytes } = jsonError(500, "internal", "the gateway failed to run the function", invocationId);
  return {
    response,
    end: { ...NO_OUTPUT, durationMs: waitedMs, status: "error", httpStatus: 500, responseBytes: bytes, error: `runner failed: ${String(err)}` },
  };
}

/** Methods a function cannot be invoked with: a Web Request refuses them. */
const UNSUPPORTED_METHODS = new Set(["TRACE", "TRACK", "CONNECT"]);

/** ANY /fn/:name[@N][/*]: look up, authorize, admit, read the body, run, log, answer. */
export function invokeRoutes(deps: InvokeDeps) {
  const { config, functions, invocations, runner, tokenHash, inflight } = deps;
  const newId = deps.newId ?? uuidv7;
  const app = new Hono<InvokeEnv>();

  // Requests admitted past lookup and auth: reading a body, queued or running. Bounding them
  // bounds the request bodies held in memory, which a public function would otherwise let
  // anyone grow without limit before the slot pool's own admission is reached. A function's
  // own max_concurrency bounds its share.
  const admissionLimit = config.MAX_CONCURRENCY + config.QUEUE_LIMIT;
  const admittedByFunction = new Map<string, number>();

  /** Counts the request in (shutdown waits for it), or returns null when the gateway or the function is at its limit. */
  function admit(fn: FunctionVersion): (() => void) | null {
    const mine = admittedByFunction.get(fn.name) ?? 0;
    if (inflight.size >= admissionLimit || (fn.maxConcurrency !== null && mine >= fn.maxConcurrency)) return null;
    inflight.enter();
    admittedByFunction.set(fn.name, mine + 1);
    return () => {
      inflight.leave();
      const left = (admittedByFunction.get(fn.name) ?? 1) - 1;
      if (left === 0) admittedByFunction.delete(fn.name);
      else admittedByFunction.set(fn.name, left);
    };
  }

  // Every answer under /fn carries the id, including 401/404/413 that never reach the log.
  app.use("/fn/*", async (c, next) => {
    const id = newId();
    c.set("invocationId", id);
    await next();
    c.res.headers.set(INVOCATION_ID_HEADER, id);
  });

  app.all("/fn/*", async (c) => {
    const id = c.get("invocationId");
    if (UNSUPPORTED_METHODS.has(c.req.method)) {
      throw new ApiError(405, "method_not_allowed", `${c.req.method} cannot invoke a function`, {
        Allow: "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
      });
    }
    const target = parseTarget(new URL(c.req.url).pathname);
    if (!target) throw notFoundError("no such function");
    const fn = authorize(target, checkBearer(c.req.header("authorization"), tokenHash));
    const row = { id, functionName: fn.name, version: fn.version, method: c.req.method, path: target.path };

    /** Logs a refusal (the body unread or dropped) and answers it. */
    const refuse = (outcome: Outcome) => {
      invocations.finish(invocations.start({ ...row, requestBytes: 0 }).seq, outcome.end);
      return outcome.response;
    };

    const release = admit(fn);
    if (!release) {
      const outcome = outcomeOfRunnerError(new SaturatedError(1), id, 0);
      // The body is left unread: closing the connection is what keeps it out of memory.
      if (c.req.raw.body) outcome.response.headers.set("Connection", "close");
      return refuse(outcome);
    }
    try {
      const read = await readBodyWithin(c.req.raw, config.MAX_BODY_BYTES);
      if (!("body" in read)) {
        const message = `the request body exceeds ${config.MAX_BODY_BYTES} bytes (MAX_BODY_BYTES)`;
        return refuse(rejected(413, "payload_too_large", message, id, read.keepAlive ? {} : { Connection: "close" }));
      }
      const { body } = read;
      const spec: InvocationSpec = {
        runtime: fn.runtime,
        code: fn.code,
        env: fn.env,
        timeoutMs: fn.timeoutMs,
        memoryMb: fn.memoryMb,
        network: fn.network,
        request: toSandboxRequest(c.req.raw, target.path, body, id),
      };
      // Written before the run, so a crash leaves a `running` row that the next start marks `interrupted`.
      const { seq } = invocations.start({ ...row, requestBytes: body.byteLength });
      const started = performance.now();
      let outcome: Outcome;
      try {
        outcome = outcomeOfResult(await runner.run(spec), id, config.MAX_RESPONSE_BYTES);
      } catch (err) {
        outcome = outcomeOfRunnerError(err, id, performance.now() - started);
      }
      try {
        invocations.finish(seq, outcome.end);
      } catch (err) {
        // The answer still goes out; the row stays `running` and becomes `interrupted` on restart.
        console.error(`invocation ${id}: could not record its end:`, err);
      }
      return outcome.response;
    } finally {
      release();
    }
  });

  /**
   * The version to run, if the caller may run it. Without a valid token, a function that
   * does not exist and one that is not public answer alike (401): names and versions of
   * private functions are not for anonymous callers to probe.
   */
  function authorize(target: InvocationTarget, token: TokenCheck): FunctionVersion {
    const current = functions.get(target.name);
    const fn = current && (target.version === null ? current : functions.getVersion(target.name, target.version));
    // An old version is public only while the current one is too: making a function private covers every version.
    const open = current?.public === true && (fn === undefined || fn.public);
    if (token !== "ok" && !open) throw unauthorized(token);
    if (!current) throw notFoundError(`no function named '${target.name}'`);
    if (!fn) throw notFoundError(`function '${target.name}' has no version ${target.version}`);
    return fn;
  }

  return app;
}

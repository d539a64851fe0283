import type { InterpreterKind, Runtime } from "./runtimes.js";
import type { FunctionSettings } from "./settings.js";
import type { RunStatus } from "./statuses.js";

/**
 * The runner's port: what the HTTP layer hands the sandbox and what it gets back. The HTTP layer
 * depends on this, never on the sandbox's internals.
 */

/** The HTTP request handed to a function, as the sandbox sees it. */
export interface SandboxRequest {
  method: string;
  /** Path below `/fn/:name`, always starting with `/` (e.g. `/` or `/users/7`). */
  path: string;
  /** Query parameters in order; a key may repeat. */
  query: [string, string][];
  /** Header names lower-cased; a name may repeat. */
  headers: [string, string][];
  body: Uint8Array;
  /** The full URL the client asked for, used to build a Web `Request` in Node. */
  url: string;
}

/** What the function asked the gateway to answer with. */
export interface SandboxResponse {
  status: number;
  headers: [string, string][];
  body: Buffer;
}

/**
 * Everything needed to run one invocation: the settings the sandbox enforces (`env` is the
 * function's own variables; nothing else reaches the sandbox) and the request.
 */
export interface InvocationSpec extends Pick<FunctionSettings, "runtime" | "code" | "env" | "timeoutMs" | "memoryMb" | "network"> {
  /** Default "invocation". With "function", `version` names the version whose warm instances may serve it. */
  isolation?: FunctionSettings["isolation"];
  version?: { name: string; version: number; maxConcurrency: number | null };
  request: SandboxRequest;
  /** A ready package environment (docs/packages.md), bound read-only at /packages for this run. */
  packagesDir?: string;
}

export interface CapturedOutput {
  data: Buffer;
  truncated: boolean;
}

/** Where a function's source fails to parse, as its interpreter reports it (1-based; null when it names no place). */
export interface SyntaxProblem {
  line: number | null;
  column: number | null;
  message: string;
}

/** The function's output channels, as live output names them. */
export type OutputChannel = "stdout" | "stderr";

/** What the caller of a run follows while it runs. */
export interface RunOptions {
  /**
   * Aborted when the answer is no longer wanted (its client went away while it was streamed):
   * the function is killed at once and the run ends `client_closed`.
   */
  signal?: AbortSignal;
  /** The function's stdout and stderr as they are written: what the log keeps (up to OUTPUT_CAP_BYTES each). */
  onOutput?: (channel: OutputChannel, data: Buffer) => void;
  /**
   * Takes a streamed answer as soon as its head is known; its body is then read from the stream
   * as the function writes it, and the result's response keeps only the head (an empty body).
   * Without it, a streamed body is collected into the result, capped as a whole one is.
   */
  onStream?: (answer: StreamedResponse) => void;
}

/** A function's answer whose body is still being written. */
export interface StreamedResponse {
  status: number;
  headers: [string, string][];
  /**
   * The body as the function writes it, read under backpressure: while nothing reads, the
   * function's writes wait. Cancelling it stops the function (`client_closed`). It errors when
   * the run ends before the body did (the deadline, MAX_RESPONSE_BYTES, a crash): the result
   * says why.
   */
  body: ReadableStream<Uint8Array>;
}

/** What runs version `version` of function `name`, with its settings, on `request` (its package environment mounted when given). */
export function invocationSpec(
  fn: FunctionSettings & { name: string; version: number },
  request: SandboxRequest,
  packagesDir?: string,
): InvocationSpec {
  return {
    runtime: fn.runtime,
    code: fn.code,
    env: fn.env,
    timeoutMs: fn.timeoutMs,
    memoryMb: fn.memoryMb,
    network: fn.network,
    isolation: fn.isolation,
    version: { name: fn.name, version: fn.version, maxConcurrency: fn.maxConcurrency },
    request,
    ...(packagesDir !== undefined ? { packagesDir } : {}),
  };
}

/** Runs invocations. */
export interface Runner {
  /** Rejects with `SaturatedError` when no slot frees up in time or the sandbox is closing. */
  run(spec: InvocationSpec, options?: RunOptions): Promise<InvocationResult>;
  /** Parses (never runs) a function's source with the real interpreter; null when it parses. */
  checkSyntax(runtime: Runtime, code: string): Promise<SyntaxProblem | null>;
  /**
   * The function was deleted: its warm instances stop now (idle ones at once, busy ones when
   * their invocation ends) rather than when they idle out.
   */
  retire(functionName: string): void;
}

/** No sandbox slot freed up within the queue timeout, or the sandbox is closing. */
export class SaturatedError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super("the gateway is saturated; retry later");
    this.name = "SaturatedError";
  }
}

/** A system call the sandbox refused, and how many times the function made it. */
export interface DeniedSyscall {
  name: string;
  count: number;
}

export interface InvocationResult {
  status: RunStatus;
  exitCode: number | null;
  /** Name of the signal that ended the process, e.g. `SIGKILL`, or null. */
  signal: string | null;
  durationMs: number;
  stdout: CapturedOutput;
  stderr: CapturedOutput;
  /**
   * Name of the system call the process was killed for (status `forbidden`), as the kernel
   * reported it to the gateway's seccomp listener; null for any other end, and when the kernel
   * cannot hand the listener over (`/healthz` says so).
   */
  blockedSyscall: string | null;
  /** Every call the sandbox refused during the run (EPERM'd or killing), as the kernel reported them, in the order first made. */
  deniedSyscalls: DeniedSyscall[];
  /** A one-line explanation for any status but `ok`. */
  errorMessage: string | null;
  /** The function's answer; set when status is `ok` (a body streamed to `onStream` is not in it). */
  response: SandboxResponse | null;
}

/** What the runner reports about itself at /healthz: `ready` is all the gateway relies on; the rest is shown as is. */
export interface RunnerHealth {
  ready: boolean;
  /** Invocations waiting for a sandbox slot (/metrics reads it). */
  queued?: number;
  /** Interpreters started ahead of their invocations and ready to take one, by interpreter (/metrics reads it). */
  standby_by_runtime?: Partial<Record<InterpreterKind, number>>;
}

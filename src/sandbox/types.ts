/** The two languages a function can be written in. */
export type Runtime = "python" | "node";

export const RUNTIMES: readonly Runtime[] = ["python", "node"];

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

/** Everything needed to run one invocation. */
export interface InvocationSpec {
  runtime: Runtime;
  code: string;
  /** The function's own environment variables; nothing else reaches the sandbox. */
  env: Record<string, string>;
  timeoutMs: number;
  memoryMb: number;
  network: boolean;
  request: SandboxRequest;
  /** A ready package environment (docs/packages.md), bound read-only at /packages for this run. */
  packagesDir?: string;
}

/**
 * How an invocation ended. `interrupted`: the sandbox was closed (the gateway is
 * stopping) while it ran. `rejected` is decided by the gateway, before a run.
 */
export type RunStatus = "ok" | "error" | "timeout" | "oom" | "forbidden" | "interrupted";

export interface CapturedOutput {
  data: Buffer;
  truncated: boolean;
}

/** Runs invocations; the HTTP layer depends on this, not on the sandbox internals. */
export interface Runner {
  /** Rejects with `SaturatedError` when every slot is busy and the wait queue is full. */
  run(spec: InvocationSpec): Promise<InvocationResult>;
}

/** Every sandbox slot is busy and the wait queue is full (or the wait timed out). */
export class SaturatedError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super("the gateway is saturated; retry later");
    this.name = "SaturatedError";
  }
}

export interface InvocationResult {
  status: RunStatus;
  exitCode: number | null;
  /** Name of the signal that ended the process, e.g. `SIGKILL`, or null. */
  signal: string | null;
  durationMs: number;
  stdout: CapturedOutput;
  stderr: CapturedOutput;
  /** Name of the syscall the seccomp filter stopped, when known (status `forbidden`). */
  blockedSyscall: string | null;
  /** A one-line explanation for any status but `ok`. */
  errorMessage: string | null;
  /** The function's answer; set when status is `ok`. */
  response: SandboxResponse | null;
}

/**
 * The console's only way to the gateway: same-origin fetch, the session cookie sent by the
 * browser (never visible here), and the console header without which the cookie counts for nothing.
 */

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  /** The problems of a 400 by field (`timeout_ms: Too big...; env.A: ...`), to show beside each field. */
  fieldErrors(): Record<string, string> {
    if (this.status !== 400) return {};
    const errors: Record<string, string> = {};
    for (const part of this.message.split("; ")) {
      const match = /^([a-z_]+)(?:\.[^:]*)?: (.+)$/.exec(part);
      if (match) errors[match[1]!] = errors[match[1]!] ? `${errors[match[1]!]}; ${match[2]}` : match[2]!;
    }
    return errors;
  }
}

/**
 * What a failure means for the person at the console: the gateway's message, and for a 401 or
 * 403 what is missing and how to get it.
 */
export function explain(error: unknown): string {
  if (!(error instanceof ApiFailure)) return error instanceof Error ? error.message : String(error);
  if (error.status === 401) return `${error.message}. Sign in again with an API token.`;
  if (error.status === 403) {
    return (
      `${error.message}. The console acts with the scopes of the token you signed in with: sign out and sign in with a token ` +
      "that has the scope named here (an admin token has every scope; an admin creates scoped tokens with POST /api/tokens)."
    );
  }
  return error.message;
}

type Listener = () => void;
const signedOutListeners = new Set<Listener>();
/** Called whenever the API answers 401: the session is gone. */
export function onSignedOut(listener: Listener): () => void {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

export const CONSOLE_HEADERS = { "X-Fngw-Console": "1" } as const;

export async function api<T>(path: string, init: { method?: string; json?: unknown; signal?: AbortSignal } = {}): Promise<T> {
  const headers: Record<string, string> = { ...CONSOLE_HEADERS };
  if (init.json !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method: init.method ?? "GET",
    headers,
    body: init.json === undefined ? undefined : JSON.stringify(init.json),
    credentials: "same-origin",
    signal: init.signal,
  });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const error = (body as { error?: { code?: string; message?: string } } | null)?.error;
    if (res.status === 401 && !path.startsWith("/api/session")) signedOutListeners.forEach((listener) => listener());
    throw new ApiFailure(res.status, error?.code ?? "error", error?.message ?? `${res.status} ${res.statusText}`);
  }
  return body as T;
}

export const signIn = (token: string) => api<void>("/api/session", { method: "POST", json: { token } });
export const signOut = () => api<void>("/api/session", { method: "DELETE" });

export type Runtime = "python" | "node" | "typescript";
export type Status = "running" | "ok" | "error" | "timeout" | "oom" | "forbidden" | "rejected" | "interrupted" | "client_closed";

export interface FunctionSummary {
  name: string;
  runtime: Runtime;
  version: number;
  public: boolean;
  updated_at: string;
}

/** A version's package environment (null without packages). */
export interface Environment {
  key: string;
  state: "pending" | "building" | "ready" | "failed";
  error: string | null;
  output: string;
  lock: Record<string, string> | null;
  size_bytes: number;
}

/** Settings by their API name; the settings form reads which there are from the OpenAPI document. */
export type Settings = Record<string, unknown>;

export interface FunctionVersion extends Settings {
  version: number;
  runtime: Runtime;
  public: boolean;
  env: Record<string, string>;
  code: string;
  packages: string[];
  environment: Environment | null;
  created_at?: string;
}

export interface FunctionDetail extends FunctionVersion {
  name: string;
  pending_version: { version: number; packages: string[]; environment: Environment | null } | null;
  created_at: string;
  updated_at: string;
}

/** Whether an environment is still being installed (the page polls until it is not). */
export const installing = (environment: Environment | null | undefined) =>
  environment?.state === "pending" || environment?.state === "building";

export interface Invocation {
  id: string;
  function: string;
  version: number;
  status: Status;
  http_status: number | null;
  started_at: string;
  duration_ms: number | null;
  exit_code: number | null;
  error: string | null;
  blocked_syscall: string | null;
  method: string;
  path: string;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  /** Bytes dropped between the head and the tail kept (absent from a gateway that keeps only the head). */
  stdout_dropped_bytes?: number;
  stderr_dropped_bytes?: number;
}

export interface InvocationDetail extends Invocation {
  stdout: string;
  stderr: string;
}

export interface Stats {
  count: number;
  errors: number;
  timeouts: number;
  by_status: Record<Status, number>;
  p50: number | null;
  p95: number | null;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export const fnPath = (name: string) => `/api/functions/${encodeURIComponent(name)}`;

/** Where the console invokes a function as the signed-in user (the session; /fn never sees the cookie). */
export const invokePath = (name: string) => `/api/invoke/${encodeURIComponent(name)}`;

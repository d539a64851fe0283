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

export interface FunctionVersion {
  version: number;
  runtime: Runtime;
  timeout_ms: number;
  memory_mb: number;
  network: boolean;
  public: boolean;
  max_concurrency: number | null;
  env: Record<string, string>;
  code: string;
  created_at?: string;
}

export interface FunctionDetail extends FunctionVersion {
  name: string;
  created_at: string;
  updated_at: string;
}

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

// The gateway's HTTP API as the command-line tool sees it: one place that sends requests, turns
// the answers into values or CliErrors, and owns the exit codes. Nothing of the server is imported.
import { progress } from "./output.js";

/** The exit codes a script can rely on (stated in `fngw --help` and the README). */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  unreachable: 3,
  unauthorized: 4,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The gateway's error body, `{"error": {"code", "message", ...}}`. */
export interface ApiErrorJson {
  code: string;
  message: string;
  line?: number | null;
  column?: number | null;
}

/** An error that ends the command with one line on stderr and the given exit code. */
export class CliError extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    /** The gateway's error, when the gateway answered with one. */
    readonly apiError?: ApiErrorJson,
  ) {
    super(message);
    this.name = "CliError";
  }
}

export const usageError = (message: string) => new CliError(EXIT.usage, message);

export const DEFAULT_URL = "http://localhost:8080";

/** Function names as the gateway accepts them; checked here so a bad one is a usage error, not a request. */
export const FUNCTION_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export function checkName(name: string): string {
  if (!FUNCTION_NAME.test(name)) throw usageError(`'${name}' is not a function name (they match ${FUNCTION_NAME.source})`);
  return name;
}

export interface Connection {
  url: string;
  token: string | undefined;
}

/** `--url`/`--token` win over GATEWAY_URL/GATEWAY_TOKEN. */
export function connection(flags: { url?: string; token?: string }, env: NodeJS.ProcessEnv = process.env): Connection {
  const raw = flags.url ?? env.GATEWAY_URL ?? DEFAULT_URL;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw usageError(`the gateway URL '${raw}' is not a URL (e.g. ${DEFAULT_URL})`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw usageError(`the gateway URL '${raw}' must start with http:// or https://`);
  }
  const token = flags.token ?? env.GATEWAY_TOKEN;
  return { url: parsed.href.replace(/\/+$/, ""), token: token === "" ? undefined : token };
}

export interface RequestOptions {
  method?: string;
  query?: Record<string, string | number | undefined>;
  json?: unknown;
  body?: Uint8Array<ArrayBuffer>;
  headers?: Headers;
  /** What the progress line says while waiting (stderr, TTY only). */
  waitingFor?: string;
  signal?: AbortSignal;
}

interface ErrorBody {
  error?: { code?: unknown; message?: unknown };
}

export class GatewayClient {
  constructor(readonly conn: Connection) {}

  /** Sends a request; the answer whatever its status. Only an unreachable gateway throws (exit 3). */
  async send(pathname: string, options: RequestOptions = {}): Promise<Response> {
    const url = new URL(`${this.conn.url}${pathname}`);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers = new Headers(options.headers);
    if (this.conn.token !== undefined) headers.set("authorization", `Bearer ${this.conn.token}`);
    let body: Uint8Array<ArrayBuffer> | string | undefined = options.body;
    if (options.json !== undefined) {
      headers.set("content-type", "application/json");
      body = JSON.stringify(options.json);
    }
    const done = progress(options.waitingFor ?? `waiting for ${url.host}`);
    try {
      return await fetch(url, { method: options.method ?? "GET", headers, body, signal: options.signal, redirect: "manual" });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      // fetch says "fetch failed" with the socket's error as the cause; without one, it refused to build the request.
      if (!(error instanceof TypeError) || error.cause === undefined) {
        throw usageError(`cannot send this request: ${error instanceof Error ? error.message : String(error)}`);
      }
      throw new CliError(EXIT.unreachable, `cannot reach the gateway at ${this.conn.url}: ${networkReason(error)}`);
    } finally {
      done();
    }
  }

  /** Sends a request and parses a 2xx JSON answer; any other answer becomes a CliError. */
  async json<T>(pathname: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.send(pathname, options);
    await this.expectOk(res);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** Throws the CliError an answer stands for, unless it is 2xx. */
  async expectOk(res: Response): Promise<void> {
    if (res.ok) return;
    throw await this.errorOf(res);
  }

  /** The one-line error of a non-2xx answer: 401 → exit 4, anything else → exit 1. */
  async errorOf(res: Response): Promise<CliError> {
    const text = await res.text().catch(() => "");
    let message = `the gateway answered ${res.status} ${res.statusText}`.trim();
    let apiError: ApiErrorJson | undefined;
    try {
      const parsed = JSON.parse(text) as ErrorBody;
      if (typeof parsed.error?.message === "string") {
        message = parsed.error.message;
        apiError = parsed.error as ApiErrorJson;
      }
    } catch {
      // Not the gateway's JSON error (a proxy's page, say): the status line is all there is to say.
    }
    if (res.status === 401) {
      const hint = this.conn.token === undefined ? "set GATEWAY_TOKEN or pass --token" : "check GATEWAY_TOKEN or --token";
      return new CliError(EXIT.unauthorized, `unauthorized: ${message} (${hint})`, apiError);
    }
    return new CliError(EXIT.failed, message, apiError);
  }
}

/** fetch hides the reason in `cause` (ECONNREFUSED, ENOTFOUND, ...). */
function networkReason(error: unknown): string {
  const cause = error instanceof Error ? (error.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  if (typeof cause?.code === "string") return cause.code;
  if (typeof cause?.message === "string") return cause.message;
  return error instanceof Error ? error.message : String(error);
}

import { validateHeaderName, validateHeaderValue } from "node:http";
import type { SandboxRequest, SandboxResponse } from "../../core/runner.js";
import { INVOCATION_ID_HEADER } from "../middleware/invocation-id.js";

// Translation between HTTP and the runner's port: the client's request as the function sees it,
// and the function's answer as the client gets it. The answer was validated by the sandbox
// (status range, header shape, size); what is left here is what only HTTP cares about.

/** Headers a function may not set: hop-by-hop ones, the length (recomputed) and the gateway's own id. */
export const DROPPED_RESPONSE_HEADERS: ReadonlySet<string> = new Set([
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
export const NULL_BODY_STATUSES: ReadonlySet<number> = new Set([101, 103, 204, 205, 304]);

export function toSandboxRequest(
  request: Request,
  path: string,
  body: Uint8Array,
  invocationId: string,
  url = request.url,
): SandboxRequest {
  const headers: [string, string][] = [];
  // The gateway token is never handed to a function; the id lets the function's own logs refer to this invocation.
  for (const [name, value] of request.headers) {
    if (name !== "authorization" && name !== INVOCATION_ID_HEADER) headers.push([name, value]);
  }
  headers.push([INVOCATION_ID_HEADER, invocationId]);
  return { method: request.method, path, query: [...new URL(url).searchParams], headers, body, url };
}

/** A header of the function's answer that did not go out, and why. */
export interface DroppedHeader {
  name: string;
  reason: string;
}

/**
 * The function's answer as an HTTP response, the bytes of its body, and the headers dropped from
 * it. Names and values are checked with Node's own rules (`validateHeaderName`,
 * `validateHeaderValue`): the Headers class lets a control character such as \x01 or \x7f through,
 * and Node then refuses to write the whole answer.
 */
export function toHttpResponse(answer: SandboxResponse): { response: Response; bytes: number; dropped: DroppedHeader[] } {
  const { status } = answer;
  const { headers, dropped } = answerHeaders(answer);
  // A Buffer the runner made sits on a plain ArrayBuffer; the DOM typings only want to hear it.
  const body = NULL_BODY_STATUSES.has(status) ? null : (answer.body as Uint8Array<ArrayBuffer>);
  return { response: new Response(body, { status, headers }), bytes: body?.byteLength ?? 0, dropped };
}

/**
 * The headers of the function's answer as they go out, and those dropped. An event stream gets
 * `Cache-Control: no-cache` (unless the function chose its own) and `X-Accel-Buffering: no`, so
 * that neither a cache nor a proxy in front (nginx) holds its events back; the gateway itself
 * never buffers nor compresses an answer.
 */
export function answerHeaders(answer: Pick<SandboxResponse, "status" | "headers">): { headers: Headers; dropped: DroppedHeader[] } {
  const headers = new Headers();
  const dropped: DroppedHeader[] = [];
  for (const [name, value] of answer.headers) {
    if (DROPPED_RESPONSE_HEADERS.has(name.toLowerCase())) continue;
    try {
      validateHeaderName(name);
      validateHeaderValue(name, value);
      headers.append(name, value);
    } catch (err) {
      dropped.push({ name, reason: err instanceof Error ? err.message : String(err) });
    }
  }
  if (isEventStream(headers.get("content-type"))) {
    if (!headers.has("cache-control")) headers.set("cache-control", "no-cache");
    headers.set("x-accel-buffering", "no");
  }
  // Node frames a bodiless 205 as chunked; an explicit empty length is what RFC 9110 asks for.
  if (answer.status === 205) headers.set("content-length", "0");
  return { headers, dropped };
}

export function isEventStream(contentType: string | null | undefined): boolean {
  return /^\s*text\/event-stream\s*(;|$)/i.test(contentType ?? "");
}

/**
 * Whether the client asks for live output: an Accept naming `text/event-stream` (with a
 * non-zero q) gets the function's stdout and stderr as events as they are written, then its
 * answer as a `result` event (routes/invoke.ts).
 */
export function wantsLiveOutput(accept: string | undefined): boolean {
  return (accept ?? "").split(",").some((range) => {
    const [type, ...params] = range.split(";").map((part) => part.trim().toLowerCase());
    const q = params.find((param) => param.startsWith("q="));
    return type === "text/event-stream" && (q === undefined || Number(q.slice(2)) > 0);
  });
}

/** One line per dropped header, for the invocation's stderr: the function's author reads the log, not the gateway's. */
export function describeDropped(dropped: DroppedHeader[]): string {
  // JSON quoting keeps the offending characters visible (and out of the stored text as raw control bytes).
  return dropped.map(({ name, reason }) => `[fngw] dropped response header ${quoteIfNeeded(name)}: ${reason}\n`).join("");
}

function quoteIfNeeded(name: string): string {
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) ? name : JSON.stringify(name);
}

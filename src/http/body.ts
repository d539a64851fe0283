import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context } from "hono";
import { ApiError } from "./errors.js";

/** Bytes of an oversize streamed body read and thrown away after the cap, so its connection can serve the next request. */
export const OVERSIZE_DISCARD_BYTES = 8 * 1024 * 1024;

/** The first buffer of a body of unknown or large declared length; it doubles as bytes arrive, up to the cap. */
const INITIAL_BUFFER_BYTES = 64 * 1024;

/** A body within the cap; or too large (and whether its connection can be kept); or not sent in time. */
export type CappedBody = { body: Buffer } | { tooLarge: true; keepAlive: boolean } | { timedOut: true };

export interface BodyLimits {
  maxBytes: number;
  /** The whole body must have arrived this many ms after reading starts (BODY_READ_TIMEOUT_MS). */
  timeoutMs: number;
}

/**
 * Whether the request carries a body. Under the Node server this is read from the headers (a
 * length above 0, or chunked framing): touching the Request's body there would build the Web
 * stream this module avoids. In-process requests say it with their body.
 */
export function declaresBody(request: Request, incoming: IncomingMessage | undefined): boolean {
  if (!incoming) return request.body !== null;
  const length = request.headers.get("content-length");
  return request.headers.has("transfer-encoding") || (length !== null && length !== "0");
}

/**
 * Reads the body within the limits. Content-Length is checked first so an honest oversize request
 * is refused before a byte is read (the server then discards the rest of it); the count covers
 * chunked bodies and lying clients. Past the cap the rest of a streamed body is read and dropped,
 * up to OVERSIZE_DISCARD_BYTES: answering while the client still sends makes the connection end
 * under it, so the client would see a reset instead of the 413. A body longer still is cut off
 * and its connection must close.
 *
 * Under the Node server the body is read from the IncomingMessage itself into one growing
 * buffer: through the Web stream hono's adapter makes of it, every chunk (one byte, with chunked
 * framing) kept an object and a promise, some 200 bytes of memory per body byte.
 */
export async function readBodyWithin(request: Request, limits: BodyLimits, incoming?: IncomingMessage): Promise<CappedBody> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limits.maxBytes) return { tooLarge: true, keepAlive: true };
  if (incoming) return readIncoming(incoming, declared === null ? null : Number(declared), limits);
  if (!request.body) return { body: Buffer.alloc(0) };
  return readWebStream(request.body, limits);
}

/** The Node request behind a hono context, when it came through the Node server (not when the app is called in-process). */
export function incomingOf(c: Context): IncomingMessage | undefined {
  // Typed loosely by hono: the Node adapter passes { incoming, outgoing } as the env.
  return (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
}

/** The Node response behind a hono context, when it came through the Node server: a stream cut short destroys it. */
export function outgoingOf(c: Context): ServerResponse | undefined {
  return (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
}

/** The Node request's bytes, copied chunk by chunk into one buffer; each chunk is garbage as soon as it is copied. */
function readIncoming(incoming: IncomingMessage, declared: number | null, limits: BodyLimits): Promise<CappedBody> {
  if (incoming.readableEnded) return Promise.resolve({ body: Buffer.alloc(0) });
  return new Promise((resolve, reject) => {
    let buffer = Buffer.allocUnsafe(Math.min(declared ?? INITIAL_BUFFER_BYTES, INITIAL_BUFFER_BYTES, limits.maxBytes));
    let size = 0;
    let dropped: number | null = null; // counting once past the cap
    const finish = (outcome: CappedBody | ApiError) => {
      clearTimeout(timer);
      incoming.off("data", onData).off("end", onEnd).off("error", onAbort).off("close", onAbort);
      if (!incoming.readableEnded) incoming.pause();
      if (outcome instanceof ApiError) reject(outcome);
      else resolve(outcome);
    };
    const onData = (chunk: Buffer) => {
      if (dropped !== null) {
        dropped += chunk.byteLength;
        if (dropped > OVERSIZE_DISCARD_BYTES) finish({ tooLarge: true, keepAlive: false });
        return;
      }
      if (size + chunk.byteLength > limits.maxBytes) {
        dropped = size + chunk.byteLength - limits.maxBytes;
        buffer = Buffer.alloc(0);
        return;
      }
      if (size + chunk.byteLength > buffer.byteLength) {
        const grown = Buffer.allocUnsafe(Math.min(Math.max(2 * buffer.byteLength, size + chunk.byteLength), limits.maxBytes));
        buffer.copy(grown, 0, 0, size);
        buffer = grown;
      }
      chunk.copy(buffer, size);
      size += chunk.byteLength;
    };
    const onEnd = () => finish(dropped !== null ? { tooLarge: true, keepAlive: true } : { body: buffer.subarray(0, size) });
    // The client went away mid-body: nobody is left to answer, and nothing to log but this.
    const onAbort = () => finish(new ApiError(400, "bad_request", "the request body ended early"));
    const timer = setTimeout(() => finish({ timedOut: true }), limits.timeoutMs);
    incoming.on("data", onData).on("end", onEnd).on("error", onAbort).on("close", onAbort);
  });
}

/** The same over a Web stream, for requests that did not come through the Node server (the app called in-process). */
async function readWebStream(stream: ReadableStream<Uint8Array>, limits: BodyLimits): Promise<CappedBody> {
  const reader = stream.getReader();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    reader.cancel().catch(() => {});
  }, limits.timeoutMs);
  try {
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read().catch(() => {
        if (timedOut) return { done: true, value: undefined };
        throw new ApiError(400, "bad_request", "the request body ended early");
      });
      if (timedOut) return { timedOut: true };
      if (done || !value) break;
      size += value.byteLength;
      if (size > limits.maxBytes) return { tooLarge: true, keepAlive: await discardRest(reader, OVERSIZE_DISCARD_BYTES) };
      chunks.push(value);
    }
    return { body: Buffer.concat(chunks, size) };
  } finally {
    clearTimeout(timer);
  }
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

import { ApiError } from "./errors.js";

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

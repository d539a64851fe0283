import type { Readable } from "node:stream";
import type { SandboxResponse, StreamedResponse } from "../core/runner.js";
import { type ResultFrames, ResultReader } from "./protocol.js";

/**
 * Bytes of a streamed body queued for its reader (the HTTP answer) before the gateway stops
 * reading the function's result channel. Then the kernel's socket buffer fills, and the
 * function's next write waits: a slow client paces the function, and the gateway holds about
 * this much of one invocation's body (plus one read of the channel, at most 64 KiB).
 */
export const STREAM_QUEUE_BYTES = 256 * 1024;

export interface ResultChannelOptions {
  maxResponseBytes: number;
  /** Warm instances: the end frame of this invocation. */
  endFrame?: Buffer;
  /** Takes a streamed answer as its head arrives (RunOptions.onStream); without it the body is collected. */
  onStream?: (answer: StreamedResponse) => void;
  /** The answer cannot be delivered (past MAX_RESPONSE_BYTES, a broken stream): kill the process. */
  hopeless: () => void;
  /** The streamed body's reader cancelled it: its client is gone. */
  cancelled: () => void;
}

/**
 * One invocation's result channel: its frames read as they arrive (protocol.ts), and a streamed
 * body handed on as a ReadableStream whose reading paces the channel: the socket is paused while
 * the stream's queue is full and resumed when its reader pulls.
 */
export class ResultChannel {
  private readonly reader: ResultReader;
  private body: ReadableStreamDefaultController<Uint8Array> | null = null;

  constructor(
    private readonly source: Readable,
    private readonly options: ResultChannelOptions,
  ) {
    const onStream = options.onStream;
    this.reader = new ResultReader({
      maxResponseBytes: options.maxResponseBytes,
      endFrame: options.endFrame,
      hopeless: options.hopeless,
      sink: onStream && {
        head: (response) => onStream(this.open(response)),
        data: (bytes) => {
          const body = this.body;
          if (body === null) return;
          body.enqueue(bytes);
          if ((body.desiredSize ?? 0) <= 0) this.source.pause();
        },
        end: () => {
          this.body?.close();
          this.body = null;
        },
      },
    });
  }

  push(chunk: Buffer): void {
    this.reader.push(chunk);
  }

  /** This invocation's end frame was read (warm instances). */
  get ended(): boolean {
    return this.reader.ended;
  }

  /** What followed the end frame: the next invocation's. */
  get rest(): Buffer {
    return this.reader.rest;
  }

  /**
   * The process is being killed, or is gone: a body still open errors (its reader learns the
   * answer is cut short; the result says why), the rest of the channel is read and dropped.
   */
  abandon(): void {
    if (this.body !== null) {
      this.body.error(new Error("the function's answer ended before its body did"));
      this.body = null;
    }
    this.reader.dropBody();
    this.source.resume();
  }

  /** The channel reached its end of file (or the invocation its end frame). */
  finish(): ResultFrames {
    this.abandon();
    return this.reader.finish();
  }

  private open(head: SandboxResponse): StreamedResponse {
    const body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.body = controller;
        },
        pull: () => {
          this.source.resume();
        },
        cancel: () => {
          this.body = null;
          this.reader.dropBody();
          this.source.resume();
          this.options.cancelled();
        },
      },
      { highWaterMark: STREAM_QUEUE_BYTES, size: (chunk) => chunk.byteLength },
    );
    return { status: head.status, headers: head.headers, body };
  }
}

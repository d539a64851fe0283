import { performance } from "node:perf_hooks";
import { StringDecoder } from "node:string_decoder";
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { InvocationResult, OutputChannel, RunOptions, StreamedResponse } from "../../core/runner.js";
import { isEventStream } from "./exchange.js";
import type { Outcome } from "./outcome.js";

// Live output (`Accept: text/event-stream` on any function): its stdout and stderr as events as
// they are written, then its answer as a `result` event and how the run ended as an `end` event.
// A function that itself answers with an event stream has its events relayed as they come,
// between the output's: a browser's EventSource (which always asks for text/event-stream) gets
// the function's events, and the named ones of live output only if it listens for them.

/** One Server-Sent Event; its data split into `data:` lines as the format wants (a client joins them with \n). */
export function sseEvent(event: string, data: string): string {
  return `event: ${event}\n${data
    .split(/\r\n|\r|\n/)
    .map((line) => `data: ${line}`)
    .join("\n")}\n\n`;
}

/** Where an event ends in an event stream: a blank line, whatever the line endings. */
const EVENT_END = /(?:\r\n|\r|\n)(?:\r\n|\r|\n)/;
/** How much of the queued events (in characters) may wait for a slow client before the relay stops reading the function's. */
const RELAY_QUEUE_CHARS = 256 * 1024;

/** The function's answer as the `result` event carries it: the body as text when it is UTF-8, else base64; null when relayed as events. */
function resultEvent(response: Response, body: Buffer | null): string {
  let text: string | null = null;
  let encoding: "utf8" | "base64" | null = null;
  if (body !== null) {
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(body);
      encoding = "utf8";
    } catch {
      text = body.toString("base64");
      encoding = "base64";
    }
  }
  return JSON.stringify({ status: response.status, headers: [...response.headers], body: text, body_encoding: encoding });
}

export interface LiveOutput {
  /** Runs the function with these options (rejects when it could not run: the queue's timeout, say). */
  run(options: RunOptions): Promise<InvocationResult>;
  /** How the run (or its refusal) is answered and logged, as a whole answer would be. */
  outcomeOf(run: PromiseSettledResult<InvocationResult>): Outcome;
  /** Writes the row (this answer's status and bytes in it); called before `result` and `end` go out. */
  settle(outcome: Outcome): Promise<void>;
  invocationId: string;
  /** When the run started, for the first byte's time. */
  runStarted: number;
}

/**
 * Answers with an event stream at once and relays the run into it. What waits for a slow client
 * is bounded: live output carries what the log keeps (OUTPUT_CAP_BYTES per channel), relayed
 * events wait up to RELAY_QUEUE_CHARS (then the function is paced), and a streamed answer that is
 * not an event stream is collected, capped as a whole one is. A client that goes away stops the
 * function (`client_closed`).
 */
export function liveOutput(c: Context, live: LiveOutput): Response {
  c.header("X-Accel-Buffering", "no");
  return streamSSE(c, async (stream) => {
    const stop = new AbortController();
    stream.onAbort(() => stop.abort());
    const queue: string[] = [];
    let queuedChars = 0;
    let wake: (() => void) | null = null;
    let drained = null as (() => void) | null; // set by the relay while it waits (assigned in a closure: not narrowed)
    let ended = false;
    let bytes = 0;
    let firstEventAt: number | null = null;
    const push = (event: string) => {
      if (event === "") return;
      queue.push(event);
      queuedChars += event.length;
      wake?.();
    };
    const write = async (text: string) => {
      if (stream.aborted) return;
      firstEventAt ??= performance.now();
      bytes += Buffer.byteLength(text);
      await stream.write(text);
    };

    const decoders: Record<OutputChannel, StringDecoder> = { stdout: new StringDecoder("utf8"), stderr: new StringDecoder("utf8") };
    const output = (channel: OutputChannel, text: string) => text !== "" && push(sseEvent(channel, text));
    let answerBody: Buffer | null = null;
    let relayed = false;
    let reading: Promise<void> = Promise.resolve();
    const onStream = (answer: StreamedResponse) => {
      const contentType = answer.headers.find(([name]) => name.toLowerCase() === "content-type")?.[1];
      if (isEventStream(contentType)) {
        relayed = true;
        reading = relay(answer.body);
        return;
      }
      const chunks: Buffer[] = [];
      reading = collect(answer.body, chunks).then(() => {
        answerBody = Buffer.concat(chunks);
      });
    };
    /** The function's own events, each whole, into the stream between the output's. */
    const relay = async (body: ReadableStream<Uint8Array>) => {
      const decoder = new StringDecoder("utf8");
      let pending = "";
      try {
        for await (const chunk of body) {
          pending += decoder.write(Buffer.from(chunk));
          for (let end = EVENT_END.exec(pending); end !== null; end = EVENT_END.exec(pending)) {
            push(`${pending.slice(0, end.index)}\n\n`);
            pending = pending.slice(end.index + end[0].length);
          }
          while (queuedChars > RELAY_QUEUE_CHARS && !stream.aborted) await new Promise<void>((resolve) => (drained = resolve));
        }
      } catch {
        // cut short: the result says why
      }
      // An event the function left unfinished is dropped, as an EventSource would drop it.
    };

    const running = live.run({
      signal: stop.signal,
      onOutput: (channel, data) => output(channel, decoders[channel].write(data)),
      onStream,
    });
    const settledRun = Promise.allSettled([running]).then(([run]) => run!);
    void settledRun.then(() => {
      ended = true;
      wake?.();
    });
    for (;;) {
      const next = queue.shift();
      if (next !== undefined) {
        queuedChars -= next.length;
        if (queuedChars <= RELAY_QUEUE_CHARS) drained?.();
        await write(next);
        continue;
      }
      if (ended) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
    const run = await settledRun;
    await reading;
    for (const channel of ["stdout", "stderr"] as const) output(channel, decoders[channel].end());
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) await write(next);

    // A streamed answer that was not an event stream went to `answerBody`: it is the answer's body.
    const response = run.status === "fulfilled" ? run.value.response : null;
    const outcome = live.outcomeOf(
      run.status === "fulfilled" && response !== null && answerBody !== null
        ? { status: "fulfilled", value: { ...run.value, response: { ...response, body: answerBody } } }
        : run,
    );
    const ok = outcome.end.status === "ok";
    const body = ok && relayed ? null : Buffer.from(await outcome.response.arrayBuffer());
    const result = sseEvent("result", resultEvent(outcome.response, body));
    const { end } = outcome;
    const summary = {
      status: end.status,
      exit_code: end.exitCode,
      duration_ms: end.durationMs,
      invocation_id: live.invocationId,
      ...(end.error === null ? {} : { error: end.error }),
    };
    const last = sseEvent("end", JSON.stringify(summary));
    // The row says what this answer was: 200, an event stream of these many bytes.
    const sent = stream.aborted ? bytes : bytes + Buffer.byteLength(result) + Buffer.byteLength(last);
    firstEventAt ??= performance.now();
    await live.settle({
      ...outcome,
      end: { ...end, httpStatus: 200, responseBytes: sent },
      firstByteMs: firstEventAt - live.runStarted,
    });
    await write(result);
    await write(last);
  });
}

async function collect(body: ReadableStream<Uint8Array>, into: Buffer[]): Promise<void> {
  try {
    for await (const chunk of body) into.push(Buffer.from(chunk));
  } catch {
    // cut short: the result says why
  }
}

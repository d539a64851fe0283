import type { InvocationResult, InvocationSpec, Runner, StreamedResponse } from "../../core/runner.js";
import { answerHeaders, NULL_BODY_STATUSES } from "./exchange.js";
import type { SentStream } from "./outcome.js";

// A function's answer streamed to its client: the head as soon as the function gives it, the
// body pulled from the runner's stream only as fast as the client reads (so backpressure reaches
// the function), the log row written before the client sees the body's end.

/** How a run answers: whole once it has ended, or streamed as soon as its head is known. */
export type Answer =
  | { kind: "whole"; result: InvocationResult }
  | { kind: "streamed"; head: StreamedResponse; result: Promise<InvocationResult> };

/**
 * Runs the invocation for an HTTP answer. Once a streamed head is known, the client going away
 * (`request` aborted) stops the function: nobody is left to read what it writes. A whole answer's
 * function runs to its end whatever the client does, as before streaming existed.
 */
export async function runForAnswer(runner: Runner, spec: InvocationSpec, request: AbortSignal): Promise<Answer> {
  const stop = new AbortController();
  let streamed: (head: StreamedResponse) => void = () => {};
  const head = new Promise<StreamedResponse>((resolve) => (streamed = resolve));
  const result = runner.run(spec, { signal: stop.signal, onStream: (answer) => streamed(answer) });
  const first = await Promise.race([
    result.then((whole) => ({ kind: "whole", result: whole }) as const),
    head.then((answer) => ({ kind: "streamed", head: answer }) as const),
  ]);
  if (first.kind === "whole") return first;
  const gone = () => stop.abort();
  if (request.aborted) gone();
  else request.addEventListener("abort", gone, { once: true });
  void result.finally(() => request.removeEventListener("abort", gone)).catch(() => {});
  return { kind: "streamed", head: first.head, result };
}

/**
 * The streamed answer as an HTTP response. `settle` runs once, when the body has ended, failed or
 * been cancelled by the client, with what was sent; the client sees the body's end only after it.
 * A body cut short (the deadline, MAX_RESPONSE_BYTES, a crash) is not ended cleanly: `cut`
 * destroys the connection, so the client cannot take a truncated body for a whole one.
 */
export function streamedResponse(head: StreamedResponse, settle: (sent: SentStream) => Promise<void>, cut?: () => void): Response {
  const { headers, dropped } = answerHeaders(head);
  const sent: SentStream = { httpStatus: head.status, bytes: 0, dropped };
  const reader = head.body.getReader();
  let settled: Promise<void> | null = null;
  const finish = () => (settled ??= settle(sent));
  if (NULL_BODY_STATUSES.has(head.status)) {
    // No body may go out: the function's is read and dropped, so that it can end.
    void (async () => {
      try {
        while (!(await reader.read()).done);
      } catch {
        // cut short: the result says why
      }
      await finish();
    })();
    return new Response(null, { status: head.status, headers });
  }
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let next: ReadableStreamReadResult<Uint8Array>;
        try {
          next = await reader.read();
        } catch {
          await finish();
          if (cut) {
            cut();
            controller.close();
          } else controller.error(new Error("the function's answer was cut short"));
          return;
        }
        if (next.done) {
          await finish();
          controller.close();
          return;
        }
        sent.bytes += next.value.byteLength;
        controller.enqueue(next.value);
      },
      async cancel() {
        // The runner stops the function: client_closed (unless the client's abort came first and
        // stopped it already: then its body has errored, and cancelling it rejects).
        await reader.cancel().catch(() => {});
        await finish();
      },
    },
    // Pulled only when the server writes: nothing of the body waits here.
    { highWaterMark: 0 },
  );
  return new Response(body, { status: head.status, headers });
}

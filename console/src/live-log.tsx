import { createParser } from "eventsource-parser";
import { useEffect, useState } from "preact/hooks";
import { findDroppedLine } from "../../src/core/output";
import { api, CONSOLE_HEADERS, type Invocation, type InvocationDetail, type Page } from "./api";
import { ago, messageOf, ms, statusClass } from "./util";

const SHOWN = 50;
const RECONNECT_MS = 2000;

/**
 * Follows /api/invocations/stream with fetch (EventSource cannot send the console header) and
 * hands each `invocation` event to `onItem`; reconnects after a drop until aborted.
 */
async function follow(name: string, onItem: (item: Invocation) => void, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    try {
      const res = await fetch(`/api/invocations/stream?function=${encodeURIComponent(name)}`, { headers: CONSOLE_HEADERS, credentials: "same-origin", signal });
      if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
      const parser = createParser({
        onEvent: (event) => {
          if (event.event === "invocation") onItem(JSON.parse(event.data) as Invocation);
        },
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
    } catch {
      // Dropped or refused: try again shortly (an expired session shows up on the next API call).
    }
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

/** The function's invocations, newest first, live; a row opens its stdout and stderr. */
export function LiveLog({ name }: { name: string }) {
  const [items, setItems] = useState<Invocation[] | null>(null);
  const [open, setOpen] = useState<InvocationDetail | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const abort = new AbortController();
    api<Page<Invocation>>(`/api/invocations?function=${encodeURIComponent(name)}&limit=${SHOWN}`, { signal: abort.signal })
      .then((page) => {
        setItems((live) => merge(page.items, live ?? []));
        void follow(name, (item) => setItems((current) => merge([item], current ?? [])), abort.signal);
      })
      .catch((err: unknown) => {
        if (!abort.signal.aborted) setError(messageOf(err));
      });
    return () => abort.abort();
  }, [name]);

  const show = async (id: string) => {
    try {
      setOpen(await api<InvocationDetail>(`/api/invocations/${encodeURIComponent(id)}`));
    } catch (err) {
      setError(messageOf(err));
    }
  };

  if (error) return <p class="error" role="alert">{error}</p>;
  if (!items) return <p class="muted">Loading…</p>;
  return (
    <section class="log">
      <div class="table-scroll">
        <table data-testid="invocations">
          <thead>
            <tr>
              <th>When</th>
              <th>Status</th>
              <th>HTTP</th>
              <th>Duration</th>
              <th>Request</th>
            </tr>
          </thead>
          <tbody>
            {items.length === 0 && (
              <tr>
                <td colSpan={5} class="muted">
                  No invocations yet; they appear here as they finish.
                </td>
              </tr>
            )}
            {items.map((item) => (
              <tr key={item.id} class={`clickable${open?.id === item.id ? " selected" : ""}`} data-id={item.id} onClick={() => void show(item.id)}>
                <td title={item.started_at}>{ago(item.started_at)}</td>
                <td>
                  <span class={`status ${statusClass(item.status)}`}>{item.status}</span>
                </td>
                <td>{item.http_status ?? "–"}</td>
                <td>{ms(item.duration_ms)}</td>
                <td class="mono">
                  {item.method} {item.path} <span class="muted">v{item.version}</span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {open && (
        <div class="card detail" data-testid="invocation-detail">
          <div class="toolbar">
            <h3 class="mono">{open.id}</h3>
            <button class="small" onClick={() => setOpen(null)}>
              Close
            </button>
          </div>
          {open.error && <p class="error">{open.error}</p>}
          {open.blocked_syscall && <p class="error">blocked system call: {open.blocked_syscall}</p>}
          <Output title="stdout" text={open.stdout} dropped={open.stdout_dropped_bytes ?? 0} truncated={open.stdout_truncated} />
          <Output title="stderr" text={open.stderr} dropped={open.stderr_dropped_bytes ?? 0} truncated={open.stderr_truncated} />
        </div>
      )}
    </section>
  );
}

/**
 * One stream of an invocation's output in a box of bounded height that scrolls; when the log kept
 * only its head and tail, the gateway's line between them is set apart and the count is in the title.
 */
function Output({ title, text, dropped, truncated }: { title: string; text: string; dropped: number; truncated: boolean }) {
  const gap = findDroppedLine(text, dropped);
  const note = dropped > 0 ? ` (${dropped.toLocaleString("en")} bytes dropped between its head and its tail)` : truncated ? " (truncated)" : "";
  return (
    <>
      <h4 data-testid={`${title}-title`}>
        {title}
        {note}
      </h4>
      <pre class="mono output" data-testid={title}>
        {text === "" ? (
          "(empty)"
        ) : gap ? (
          <>
            {text.slice(0, gap.start)}
            <span class="dropped" data-testid={`${title}-dropped`}>
              {text.slice(gap.start, gap.end)}
            </span>
            {text.slice(gap.end)}
          </>
        ) : (
          text
        )}
      </pre>
    </>
  );
}

/** New items first, no duplicates, at most SHOWN. */
function merge(incoming: Invocation[], current: Invocation[]): Invocation[] {
  const seen = new Set(incoming.map((item) => item.id));
  return [...incoming, ...current.filter((item) => !seen.has(item.id))]
    .sort((a, b) => b.started_at.localeCompare(a.started_at))
    .slice(0, SHOWN);
}

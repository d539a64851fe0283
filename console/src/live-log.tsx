import { createParser } from "eventsource-parser";
import { useEffect, useState } from "preact/hooks";
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
          <h4>stdout{open.stdout_truncated && " (truncated)"}</h4>
          <pre class="mono" data-testid="stdout">{open.stdout || "(empty)"}</pre>
          <h4>stderr{open.stderr_truncated && " (truncated)"}</h4>
          <pre class="mono" data-testid="stderr">{open.stderr || "(empty)"}</pre>
        </div>
      )}
    </section>
  );
}

/** New items first, no duplicates, at most SHOWN. */
function merge(incoming: Invocation[], current: Invocation[]): Invocation[] {
  const seen = new Set(incoming.map((item) => item.id));
  return [...incoming, ...current.filter((item) => !seen.has(item.id))]
    .sort((a, b) => b.started_at.localeCompare(a.started_at))
    .slice(0, SHOWN);
}

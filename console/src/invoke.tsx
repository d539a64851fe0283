import { useState } from "preact/hooks";
import { readAsItComes } from "./read-body";
import { messageOf } from "./util";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"];

interface Answer {
  status: number;
  headers: [string, string][];
  body: string;
  durationMs: number;
}

/** `Name: value` per line; lines without a colon are ignored. */
function headerLines(text: string): [string, string][] {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.includes(":"))
    .map((line) => {
      const at = line.indexOf(":");
      return [line.slice(0, at).trim(), line.slice(at + 1).trim()];
    });
}

/**
 * Sends a request to /fn/<name>. The console's session does not authenticate /fn (the gateway
 * strips its cookie there): a private function needs an Authorization header given here.
 */
export function InvokePanel({ name }: { name: string }) {
  const [method, setMethod] = useState("GET");
  const [path, setPath] = useState("");
  const [headers, setHeaders] = useState("");
  const [body, setBody] = useState("");
  const [answer, setAnswer] = useState<Answer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const send = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const started = performance.now();
    try {
      const suffix = path === "" || path.startsWith("/") || path.startsWith("?") ? path : `/${path}`;
      const res = await fetch(`/fn/${encodeURIComponent(name)}${suffix}`, {
        method,
        headers: headerLines(headers),
        body: method === "GET" ? undefined : body,
        credentials: "omit",
      });
      // The head is shown as soon as it is here, the body as it arrives (a streamed answer, live output).
      const head = { status: res.status, headers: [...res.headers], durationMs: performance.now() - started };
      setAnswer({ ...head, body: "" });
      const text = await readAsItComes(res, (sofar) => setAnswer({ ...head, body: sofar }));
      setAnswer({ ...head, body: text, durationMs: performance.now() - started });
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="invoke">
      <form onSubmit={send}>
        <div class="toolbar">
          <select name="method" value={method} onChange={(e) => setMethod(e.currentTarget.value)} aria-label="Method">
            {METHODS.map((m) => (
              <option key={m}>{m}</option>
            ))}
          </select>
          <span class="muted mono">/fn/{name}</span>
          <input name="path" class="grow mono" placeholder="/path?query=1" value={path} onInput={(e) => setPath(e.currentTarget.value)} aria-label="Path" />
          <button type="submit" disabled={busy}>
            Send
          </button>
        </div>
        <label>
          Headers (one <code>Name: value</code> a line)
          <textarea name="headers" rows={3} class="mono" value={headers} onInput={(e) => setHeaders(e.currentTarget.value)} />
        </label>
        {method !== "GET" && (
          <label>
            Body
            <textarea name="body" rows={5} class="mono" value={body} onInput={(e) => setBody(e.currentTarget.value)} />
          </label>
        )}
      </form>
      {error && <p class="error" role="alert">{error}</p>}
      {answer && (
        <div class="answer" data-testid="invoke-answer">
          <p>
            <span class={`status ${answer.status < 400 ? "ok" : "bad"}`} data-testid="invoke-status">
              {answer.status}
            </span>{" "}
            {busy ? (
              <span class="muted" data-testid="invoke-receiving">
                receiving…
              </span>
            ) : (
              <span class="muted">{Math.round(answer.durationMs)} ms</span>
            )}
          </p>
          <pre class="mono small">{answer.headers.map(([k, v]) => `${k}: ${v}`).join("\n")}</pre>
          <pre class="mono" data-testid="invoke-body">{answer.body}</pre>
        </div>
      )}
    </section>
  );
}

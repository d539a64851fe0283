import { useState } from "preact/hooks";
import { CONSOLE_HEADERS, invokePath } from "./api";
import { readAsItComes } from "./read-body";
import { messageOf } from "./util";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"];

interface Answer {
  status: number;
  headers: [string, string][];
  body: string;
  durationMs: number;
  /** For a 401 or 403 of the gateway's own (nothing ran): what is missing and how to get it. */
  refusal: string | null;
}

/**
 * A 401 or 403 the gateway answered before running anything carries its error shape without an
 * invocation_id; say what it means at the console. A function's own 401 or 403 is its answer.
 */
function refusalOf(status: number, body: string, name: string): string | null {
  if (status !== 401 && status !== 403) return null;
  let error: { message?: unknown; invocation_id?: unknown } | undefined;
  try {
    error = (JSON.parse(body) as { error?: typeof error }).error;
  } catch {
    return null;
  }
  if (typeof error?.message !== "string" || error.invocation_id !== undefined) return null;
  if (status === 401) return "Your console session has ended (expired, signed out, or its token revoked): sign in again.";
  return (
    `The token you signed in with cannot invoke ${name}: it needs the scope invoke:${name} (or a matching invoke:<prefix>*, or admin). ` +
    "Sign in with such a token, or give one here as a header: Authorization: Bearer <token>."
  );
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
 * Sends a request to the function as the signed-in user: through /api/invoke/<name>, which runs
 * the same invocation as /fn/<name> with the session's token, so a private function needs no token
 * pasted. (/fn itself never sees the session: the gateway strips its cookie there.) An
 * Authorization header given here is used instead of the session.
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
      const res = await fetch(`${invokePath(name)}${suffix}`, {
        method,
        headers: [...headerLines(headers), ...Object.entries(CONSOLE_HEADERS)],
        body: method === "GET" ? undefined : body,
        credentials: "same-origin",
      });
      // The head is shown as soon as it is here, the body as it arrives (a streamed answer, live output).
      const head = { status: res.status, headers: [...res.headers], durationMs: performance.now() - started, refusal: null };
      setAnswer({ ...head, body: "" });
      const text = await readAsItComes(res, (sofar) => setAnswer({ ...head, body: sofar }));
      const refusal = refusalOf(res.status, text, name);
      setAnswer({ ...head, body: text, durationMs: performance.now() - started, refusal });
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
          {answer.refusal && (
            <p class="error" role="alert" data-testid="invoke-refusal">
              {answer.refusal}
            </p>
          )}
          <pre class="mono small output">{answer.headers.map(([k, v]) => `${k}: ${v}`).join("\n")}</pre>
          <pre class="mono output" data-testid="invoke-body">
            {answer.body}
          </pre>
        </div>
      )}
    </section>
  );
}

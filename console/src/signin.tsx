import { useState } from "preact/hooks";
import { signIn } from "./api";
import { messageOf } from "./util";

/** The token goes to POST /api/session once; the browser keeps only the HttpOnly session cookie. */
export function SignIn({ onSignedIn, notice }: { onSignedIn: () => void; notice?: string | null }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(token);
      setToken("");
      onSignedIn();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="signin">
      <form class="card" onSubmit={submit}>
        <h1>fngw</h1>
        {notice && <p class="notice">{notice}</p>}
        <label>
          API token
          <input name="token" type="password" autocomplete="current-password" required value={token} onInput={(e) => setToken(e.currentTarget.value)} />
        </label>
        <p class="hint">
          The gateway's admin token (printed at its first start, or GATEWAY_TOKEN), or a scoped token from POST /api/tokens: the console acts
          with its scopes (deploy to change functions, logs:read for the log, invoke:&lt;name&gt; to call private functions).
        </p>
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        {error && <p class="error" role="alert">{error}</p>}
      </form>
    </main>
  );
}

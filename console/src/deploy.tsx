import { useState } from "preact/hooks";
import { api, type FunctionDetail, type Runtime } from "./api";
import { CodeEditor } from "./editor";
import { messageOf } from "./util";

const TEMPLATES: Record<Runtime, string> = {
  python: 'def handler(request):\n    print("called")\n    return {"hello": request.query.get("name", "world")}\n',
  node: 'export default async function (request) {\n  console.log("called");\n  return Response.json({ hello: new URL(request.url).searchParams.get("name") ?? "world" });\n}\n',
  typescript:
    'export default async function (request: Request): Promise<Response> {\n  console.log("called");\n  const name: string = new URL(request.url).searchParams.get("name") ?? "world";\n  return Response.json({ hello: name });\n}\n',
};

/** Registers a new function (version 1) and opens its page. */
export function Deploy() {
  const [name, setName] = useState("");
  const [runtime, setRuntime] = useState<Runtime>("python");
  const [code, setCode] = useState(TEMPLATES.python);
  const [isPublic, setPublic] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const changeRuntime = (next: Runtime) => {
    if (code === TEMPLATES[runtime]) setCode(TEMPLATES[next]);
    setRuntime(next);
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const created = await api<FunctionDetail>("/api/functions", { method: "POST", json: { name, runtime, code, public: isPublic } });
      location.hash = `#/fn/${created.name}`;
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card deploy" onSubmit={submit}>
      <h2>New function</h2>
      <div class="fields">
        <label>
          Name
          <input name="name" required pattern="[a-z0-9][a-z0-9_\-]{0,62}" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Runtime
          <select name="runtime" value={runtime} onChange={(e) => changeRuntime(e.currentTarget.value as Runtime)}>
            <option value="python">Python</option>
            <option value="node">JavaScript (Node)</option>
            <option value="typescript">TypeScript (Node)</option>
          </select>
        </label>
        <label class="check">
          <input name="public" type="checkbox" checked={isPublic} onChange={(e) => setPublic(e.currentTarget.checked)} />
          Public (callable without the token)
        </label>
      </div>
      <CodeEditor value={code} runtime={runtime} onChange={setCode} label="Function code" />
      <button type="submit" disabled={busy}>
        Deploy
      </button>
      {error && <p class="error" role="alert">{error}</p>}
    </form>
  );
}

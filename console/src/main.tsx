import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, onSignedOut, signOut } from "./api";
import { Deploy } from "./deploy";
import { FunctionPage, TABS, type Tab } from "./function-page";
import { FunctionsList } from "./functions-list";
import { JobsPage } from "./jobs";
import { SignIn } from "./signin";
import "./style.css";

type Route = { page: "list" } | { page: "new" } | { page: "jobs"; view: string | undefined; open: string | undefined } | { page: "function"; name: string; tab: Tab };

/** Hash routes: #/, #/new, #/jobs[/<view>[/<job id>]], #/fn/<name>[/<tab>]. */
function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "new") return { page: "new" };
  if (parts[0] === "jobs") return { page: "jobs", view: parts[1], open: parts[2] };
  if (parts[0] === "fn" && parts[1]) {
    const tab = TABS.find((t) => t === parts[2]) ?? "code";
    return { page: "function", name: parts[1], tab };
  }
  return { page: "list" };
}

function App() {
  const [signedIn, setSignedIn] = useState<boolean | null>(null);
  const [ended, setEnded] = useState<string | null>(null);
  const [route, setRoute] = useState(() => parseRoute(location.hash));

  useEffect(() => {
    const onHash = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", onHash);
    const stop = onSignedOut(() => {
      setEnded("Your session has ended (it expired, you signed out elsewhere, or its token was revoked or has expired): sign in again.");
      setSignedIn(false);
    });
    // Whether the session cookie (invisible to script) is still good.
    api<{ signed_in: boolean }>("/api/session").then(
      (session) => setSignedIn(session.signed_in),
      () => setSignedIn(false),
    );
    return () => {
      removeEventListener("hashchange", onHash);
      stop();
    };
  }, []);

  if (signedIn === null) return <p class="muted center">Loading…</p>;
  if (!signedIn)
    return (
      <SignIn
        notice={ended}
        onSignedIn={() => {
          setEnded(null);
          setSignedIn(true);
        }}
      />
    );
  const leave = async () => {
    await signOut().catch(() => undefined);
    setEnded(null);
    setSignedIn(false);
  };
  return (
    <>
      <header class="top">
        <a class="brand" href="#/">
          fngw
        </a>
        <nav>
          <a href="#/">Functions</a>
          <a href="#/new">Deploy</a>
          <a href="#/jobs">Jobs</a>
          <a href="/docs">API</a>
          <button class="link" onClick={() => void leave()}>
            Sign out
          </button>
        </nav>
      </header>
      <main class="content">
        {route.page === "list" && <FunctionsList />}
        {route.page === "new" && <Deploy />}
        {route.page === "jobs" && <JobsPage view={route.view} open={route.open} />}
        {route.page === "function" && <FunctionPage key={route.name} name={route.name} tab={route.tab} />}
      </main>
    </>
  );
}

const root = document.getElementById("app");
if (root) render(<App />, root);

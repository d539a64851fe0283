import type { Environment, FunctionDetail } from "./api";

const STATE_TEXT: Record<Environment["state"], string> = {
  pending: "queued for install",
  building: "installing",
  ready: "ready",
  failed: "failed",
};

/** One version's packages and their environment's state; a failure shows the installer's error and output. */
function VersionPackages({ title, packages, environment }: { title: string; packages: string[]; environment: Environment | null }) {
  return (
    <div class="packages-version" data-testid="packages-version">
      <h4>
        {title}:{" "}
        {packages.length === 0 ? (
          <span class="muted">no packages</span>
        ) : (
          <span class={`status ${environment?.state === "ready" ? "ok" : environment?.state === "failed" ? "bad" : "running"}`} data-testid="packages-state">
            {environment ? STATE_TEXT[environment.state] : "not installed by this gateway"}
          </span>
        )}
      </h4>
      {packages.length > 0 && (
        <ul class="mono package-list">
          {packages.map((spec) => (
            <li key={spec}>
              {spec}
              {environment?.lock && <span class="muted"> → {lockedVersion(spec, environment.lock)}</span>}
            </li>
          ))}
        </ul>
      )}
      {environment?.state === "failed" && (
        <>
          <p class="error" data-testid="packages-error">
            {environment.error ?? "the install failed"}
          </p>
          <p class="hint">
            A failed list stays failed: registering the same list again reuses the failure. Fix the list (pin another version, drop a
            package) and save it as a new version.
          </p>
        </>
      )}
      {environment && environment.output !== "" && environment.state !== "ready" && (
        <details open={environment.state === "failed"}>
          <summary>The installer's output</summary>
          <pre class="mono output" data-testid="packages-output">
            {environment.output}
          </pre>
        </details>
      )}
    </div>
  );
}

/** `numpy>=2` in a lock of `{numpy: "2.1.0", ...}`: the version installed, by the spec's package name. */
function lockedVersion(spec: string, lock: Record<string, string>): string {
  const name = /^(@?[^@<>=!~ [;]+)/.exec(spec)?.[1]?.toLowerCase().replace(/_/g, "-") ?? spec;
  const entry = Object.entries(lock).find(([locked]) => locked.toLowerCase().replace(/_/g, "-") === name);
  return entry ? entry[1] : "installed";
}

/** The current version's packages, and the version waiting for its own (current once they are ready). */
export function PackageState({ fn }: { fn: FunctionDetail }) {
  return (
    <section class="card packages" data-testid="packages">
      <h3>Packages</h3>
      <VersionPackages title={`v${fn.version} (current)`} packages={fn.packages} environment={fn.environment} />
      {fn.pending_version && (
        <VersionPackages
          title={`v${fn.pending_version.version} (pending: current once its packages are ready)`}
          packages={fn.pending_version.packages}
          environment={fn.pending_version.environment}
        />
      )}
    </section>
  );
}

/** Why a function cannot run as it stands, for the list: its current version's packages, or a pending version's failure. */
export function runProblem(fn: FunctionDetail): string | null {
  if (fn.environment?.state === "failed") return "packages failed: it answers 503";
  if (fn.environment && fn.environment.state !== "ready") return "packages installing: it answers 503 until ready";
  if (fn.pending_version?.environment?.state === "failed") return `v${fn.pending_version.version}'s packages failed; v${fn.version} serves`;
  if (fn.pending_version) return `v${fn.pending_version.version} installing its packages`;
  return null;
}

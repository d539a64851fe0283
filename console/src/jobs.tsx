import { useEffect, useState } from "preact/hooks";
import { api } from "./api";
import { ago, messageOf, ms } from "./util";

/** A job as GET /api/jobs lists it. */
interface JobSummary {
  id: string;
  function: string;
  trigger: string;
  state: string;
  attempt_count: number;
  max_attempts: number;
  created_at: string;
  next_attempt_at: string | null;
  finished_at: string | null;
  last_error: string | null;
}

/** A job as GET /api/invocations/:id shows it. */
interface JobDetail extends JobSummary {
  result: { status: number; body: string; body_encoding: string; truncated: boolean } | null;
  attempts: { id: string; attempt: number; status: string; http_status: number | null; started_at: string; duration_ms: number | null; node: string }[];
  callback: { url: string; state: string; deliveries: { attempt: number; at: string; status: number | null; error: string | null }[] } | null;
}

/** The lists the page offers: what waits, the dead letters, everything. */
const VIEWS = [
  { key: "queued", label: "Queued", states: ["queued", "retrying", "running"] },
  { key: "failed", label: "Failed", states: ["failed", "expired"] },
  { key: "all", label: "All", states: [null] },
] as const;
type View = (typeof VIEWS)[number]["key"];

/** Asynchronous invocations: what is queued, the dead letters (failed, expired) with a retry each, and one job's attempts. */
export function JobsPage(props: { view: string | undefined; open: string | undefined }) {
  const view: View = VIEWS.find((v) => v.key === props.view)?.key ?? "queued";
  const open = props.open ?? null;
  const [jobs, setJobs] = useState<JobSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    let live = true;
    const states = VIEWS.find((v) => v.key === view)!.states;
    Promise.all(states.map((state) => api<{ items: JobSummary[] }>(`/api/jobs?limit=100${state ? `&state=${state}` : ""}`)))
      .then((pages) => {
        if (!live) return;
        setJobs(pages.flatMap((page) => page.items).sort((a, b) => (a.created_at < b.created_at ? 1 : -1)));
        setError(null);
      })
      .catch((err: unknown) => live && setError(messageOf(err)));
    // What waits changes by the second: the list follows it.
    const timer = setTimeout(() => setReload((n) => n + 1), 3000);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [view, reload]);

  const act = async (path: string, method: string) => {
    try {
      await api(path, { method });
      setReload((n) => n + 1);
    } catch (err) {
      setError(messageOf(err));
    }
  };

  return (
    <section>
      <div class="toolbar">
        <h2>Jobs</h2>
        <span class="muted">asynchronous invocations (Prefer: respond-async) and schedules' runs</span>
      </div>
      <nav class="tabs" role="tablist">
        {VIEWS.map((v) => (
          <a key={v.key} role="tab" aria-selected={v.key === view} class={v.key === view ? "active" : ""} href={`#/jobs/${v.key}`}>
            {v.label}
          </a>
        ))}
      </nav>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {jobs === null ? (
        <p class="muted">Loading…</p>
      ) : jobs.length === 0 ? (
        <p class="muted">{view === "failed" ? "No failed or expired jobs." : view === "queued" ? "Nothing is queued." : "No jobs yet."}</p>
      ) : (
        <div class="table-scroll">
          <table data-testid="jobs">
            <thead>
              <tr>
                <th>job</th>
                <th>function</th>
                <th>state</th>
                <th>attempts</th>
                <th>created</th>
                <th>error</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {jobs.map((job) => (
                <tr key={job.id} data-state={job.state}>
                  <td class="mono">
                    <a href={open === job.id ? `#/jobs/${view}` : `#/jobs/${view}/${job.id}`} title={job.id}>
                      {job.id.slice(0, 13)}…
                    </a>
                  </td>
                  <td>
                    <a href={`#/fn/${job.function}/schedules`}>{job.function}</a>
                    {job.trigger === "schedule" && <span class="tag">schedule</span>}
                  </td>
                  <td class={job.state === "succeeded" ? "ok" : job.state === "failed" || job.state === "expired" ? "bad" : "running"}>{job.state}</td>
                  <td>
                    {job.attempt_count}/{job.max_attempts}
                  </td>
                  <td title={job.created_at}>{ago(job.created_at)}</td>
                  <td class="wrap">{job.last_error ?? ""}</td>
                  <td>
                    {(job.state === "failed" || job.state === "expired" || job.state === "cancelled") && (
                      <button type="button" onClick={() => void act(`/api/invocations/${job.id}/retry`, "POST")}>
                        Retry
                      </button>
                    )}
                    {(job.state === "queued" || job.state === "retrying") && (
                      <button type="button" onClick={() => void act(`/api/invocations/${job.id}`, "DELETE")}>
                        Cancel
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {open && <JobView id={open} />}
    </section>
  );
}

/** One job: each attempt's row, the answer kept, the callback's deliveries. */
function JobView({ id }: { id: string }) {
  const [job, setJob] = useState<JobDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<JobDetail>(`/api/invocations/${id}`).then(setJob, (err: unknown) => setError(messageOf(err)));
  }, [id]);
  if (error) return <p class="error">{error}</p>;
  if (!job) return <p class="muted">Loading…</p>;
  return (
    <div class="panel" data-testid="job">
      <h3 class="mono">{job.id}</h3>
      <p>
        {job.state}, {job.attempt_count} of {job.max_attempts} attempts
        {job.next_attempt_at && `; next at ${job.next_attempt_at}`}
      </p>
      {job.attempts.length > 0 && (
        <table>
          <thead>
            <tr>
              <th>attempt</th>
              <th>status</th>
              <th>http</th>
              <th>started</th>
              <th>duration</th>
              <th>node</th>
            </tr>
          </thead>
          <tbody>
            {job.attempts.map((a) => (
              <tr key={a.id}>
                <td>{a.attempt}</td>
                <td class={a.status === "ok" ? "ok" : "bad"}>{a.status}</td>
                <td>{a.http_status ?? "–"}</td>
                <td title={a.started_at}>{ago(a.started_at)}</td>
                <td>{ms(a.duration_ms)}</td>
                <td class="mono">{a.node}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {job.result && (
        <>
          <h4>
            Answer {job.result.status}
            {job.result.truncated && " (cut at ASYNC_RESULT_MAX_BYTES)"}
          </h4>
          <pre class="output">{job.result.body}</pre>
        </>
      )}
      {job.callback && (
        <>
          <h4>
            Callback to {job.callback.url}: {job.callback.state}
          </h4>
          <ul>
            {job.callback.deliveries.map((d) => (
              <li key={d.attempt}>
                {d.attempt}. {d.at}: {d.status ?? "no answer"} {d.error ?? ""}
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}

interface ScheduleStatus {
  cron: string;
  timezone: string;
  enabled: boolean;
  overlap: string;
  next: string[];
  recent: { tick_at: string; outcome: string; job_id: string | null; job_state: string | null; node: string }[];
}

/** A function's schedules: each with its next five runs and its last twenty ticks. */
export function Schedules({ name }: { name: string }) {
  const [items, setItems] = useState<ScheduleStatus[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<{ items: ScheduleStatus[] }>(`/api/functions/${encodeURIComponent(name)}/schedules`).then(
      (page) => setItems(page.items),
      (err: unknown) => setError(messageOf(err)),
    );
  }, [name]);
  if (error) return <p class="error">{error}</p>;
  if (!items) return <p class="muted">Loading…</p>;
  if (items.length === 0) {
    return <p class="muted">No schedules. Add one under settings, e.g. [{'{"cron": "*/5 * * * *", "timezone": "Europe/Berlin"}'}].</p>;
  }
  return (
    <div data-testid="schedules">
      {items.map((s) => (
        <div key={`${s.cron} ${s.timezone}`} class="panel">
          <h3>
            <span class="mono">{s.cron}</span> <span class="muted">{s.timezone}</span>
            {!s.enabled && <span class="tag">disabled</span>}
            <span class="tag">overlap {s.overlap}</span>
          </h3>
          <h4>Next runs</h4>
          <ol class="next-runs">
            {s.next.map((time) => (
              <li key={time}>{time}</li>
            ))}
          </ol>
          <h4>Last ticks</h4>
          {s.recent.length === 0 ? (
            <p class="muted">None yet.</p>
          ) : (
            <ul>
              {s.recent.map((tick) => (
                <li key={tick.tick_at}>
                  {tick.tick_at}: {tick.outcome}
                  {tick.job_state && ` (${tick.job_state})`}
                </li>
              ))}
            </ul>
          )}
        </div>
      ))}
    </div>
  );
}

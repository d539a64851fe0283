// jobs, retry, cancel: asynchronous invocations (invoke --async makes them), and a job as `logs <id>` shows it.
import { type Command, Option } from "commander";
import { JOB_STATES } from "../core/jobs.js";
import { checkName, type GatewayClient } from "./client.js";
import { contextOf, positiveInteger } from "./context.js";
import { keyValues, printJson, printLine, table } from "./output.js";

/** A job as GET /api/jobs lists it. */
interface JobSummaryJson {
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
  callback_state: string | null;
}

/** GET /api/invocations/:id for a job. */
export interface JobJson extends JobSummaryJson {
  kind: "job";
  version: number | null;
  expires_at: string;
  scheduled_at: string | null;
  redrive_of: string | null;
  result: { status: number; headers: [string, string][]; body: string; body_encoding: string; truncated: boolean } | null;
  attempts: {
    id: string;
    attempt: number;
    status: string;
    http_status: number | null;
    started_at: string;
    duration_ms: number | null;
    node: string;
  }[];
  callback: {
    url: string;
    state: string;
    deliveries: { attempt: number; at: string; status: number | null; error: string | null }[];
  } | null;
}

/** Prints a job: its state, each attempt's row, its answer and its callback's deliveries. */
export function printJob(job: JobJson, write: (text: string) => void): void {
  write(
    `${keyValues([
      ["id", job.id],
      ["function", job.version === null ? job.function : `${job.function}@${job.version}`],
      ["trigger", job.scheduled_at ? `${job.trigger} (tick ${job.scheduled_at})` : job.trigger],
      ["state", job.state],
      ["attempts", `${job.attempt_count} of ${job.max_attempts}`],
      ["created_at", job.created_at],
      ["next_attempt", job.next_attempt_at],
      ["finished_at", job.finished_at],
      ["expires_at", job.expires_at],
      ["error", job.last_error],
      ...(job.redrive_of ? [["redrive_of", job.redrive_of] as [string, string]] : []),
    ])}\n`,
  );
  if (job.attempts.length > 0) {
    write(
      `\n${table(
        ["ATTEMPT", "INVOCATION", "STATUS", "HTTP", "STARTED", "MS", "NODE"],
        job.attempts.map((a) => [
          a.attempt,
          a.id,
          a.status,
          a.http_status,
          a.started_at,
          a.duration_ms === null ? null : Math.round(a.duration_ms),
          a.node,
        ]),
      )}\n`,
    );
  }
  if (job.result) {
    const truncated = job.result.truncated ? ", cut at ASYNC_RESULT_MAX_BYTES" : "";
    write(`\n--- answer: ${job.result.status} (${job.result.body_encoding}${truncated}) ---\n${job.result.body}\n`);
  }
  if (job.callback) {
    write(`\ncallback ${job.callback.url}: ${job.callback.state}\n`);
    for (const d of job.callback.deliveries) write(`  ${d.attempt}  ${d.at}  ${d.status ?? "-"}  ${d.error ?? ""}\n`);
  }
}

interface JobsFlags {
  failed?: boolean;
  state?: string;
  function?: string;
  limit?: number;
}

async function listJobs(flags: JobsFlags, command: Command): Promise<void> {
  const { client, json } = contextOf(command);
  const query = new URLSearchParams();
  const state = flags.failed ? "failed" : flags.state;
  if (state) query.set("state", state);
  if (flags.function) query.set("function", checkName(flags.function));
  query.set("limit", String(flags.limit ?? 50));
  const page = await client.json<{ items: JobSummaryJson[]; next_cursor: string | null }>(`/api/jobs?${query}`);
  if (json) return printJson(page);
  if (page.items.length === 0) return printLine(state ? `no ${state} jobs` : "no jobs");
  printLine(
    table(
      ["ID", "FUNCTION", "TRIGGER", "STATE", "ATTEMPTS", "CREATED", "NEXT/FINISHED", "ERROR"],
      page.items.map((j) => [
        j.id,
        j.function,
        j.trigger,
        j.state,
        `${j.attempt_count}/${j.max_attempts}`,
        j.created_at,
        j.next_attempt_at ?? j.finished_at,
        j.last_error === null ? null : j.last_error.slice(0, 60),
      ]),
    ),
  );
}

async function retry(id: string, _flags: unknown, command: Command): Promise<void> {
  const { client, json } = contextOf(command);
  const answer = await client.json<{ id: string; state: string; location: string }>(`/api/invocations/${encodeURIComponent(id)}/retry`, {
    method: "POST",
    waitingFor: `queueing ${id} again`,
  });
  if (json) return printJson(answer);
  printLine(`queued again as ${answer.id} (${answer.location})`);
}

async function cancel(id: string, _flags: unknown, command: Command): Promise<void> {
  const { client, json } = contextOf(command);
  const job = await client.json<JobJson>(`/api/invocations/${encodeURIComponent(id)}`, { method: "DELETE" });
  if (json) return printJson(job);
  printLine(`cancelled ${job.id}`);
}

/** A function's schedules as `show` prints them: each with its next run and its last outcome. */
export async function scheduleLines(client: GatewayClient, name: string): Promise<[string, string][]> {
  type Status = {
    cron: string;
    timezone: string;
    enabled: boolean;
    overlap: string;
    next: string[];
    recent: { tick_at: string; outcome: string }[];
  };
  const { items } = await client.json<{ items: Status[] }>(`/api/functions/${name}/schedules`);
  return items.map((s) => {
    const last = s.recent[0];
    const state = s.enabled ? `next ${s.next[0] ?? "-"}` : "disabled";
    return ["schedule", `${s.cron} (${s.timezone}, overlap ${s.overlap}): ${state}${last ? `; last ${last.tick_at} ${last.outcome}` : ""}`];
  });
}

export function registerJobCommands(program: Command): void {
  program
    .command("jobs")
    .description("asynchronous invocations, newest first (--failed: the dead letters)")
    .option("--failed", "only the jobs that failed")
    .addOption(new Option("--state <state>", "only jobs in this state").choices([...JOB_STATES]))
    .option("--function <name>", "only this function's jobs")
    .option("--limit <n>", "at most this many (default 50)", positiveInteger)
    .action(listJobs);
  program.command("retry").description("run an ended job again, as a new job").argument("<id>").action(retry);
  program.command("cancel").description("cancel a queued job").argument("<id>").action(cancel);
}

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { RunnerHealth } from "../core/runner.js";
import { INTERPRETERS } from "../core/runtimes.js";
import type { EndStatus } from "../core/statuses.js";

/** Why the gateway refused an invocation without running it (the `reason` label). */
export type RejectionReason =
  | "saturated" // 429: past the admission limit (before or after the body)
  | "reading" // 429: MAX_READING_REQUESTS bodies being received
  | "body_too_large" // 413
  | "packages" // 503: the version's packages are not installed (yet)
  | "body_timeout" // 408
  | "queue_timeout"; // 429: no sandbox slot within QUEUE_TIMEOUT_MS, or the sandbox closing

/** What the gauges read at scrape time. */
export interface MetricsSources {
  /** Invocations admitted and not yet answered. */
  inFlight: () => number;
  /** The runner's health: queue depth and standby interpreters, when it reports them. */
  health: () => RunnerHealth;
  /** The database's size on disk and in use. */
  databaseBytes?: () => Promise<{ file: number; used: number }>;
  /** The job queue's use (every gateway's jobs waiting or running), and the jobs running here. */
  jobQueue?: () => Promise<{ jobs: number; bytes: number }>;
  jobsRunning?: () => number;
  /** This gateway's node id: every series carries it as the `node` label, so several gateways' figures can be told apart. */
  node?: string;
}

/** Invocation durations: 1 ms to 60 s (a function's timeout reaches 300 s: those land in +Inf). */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Writes of log rows (a batch's wait and write): tens of µs on SQLite, a round trip or more on PostgreSQL, seconds when locked or away. */
const LOG_WRITE_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5];

/**
 * The gateway's Prometheus metrics, in a registry of its own (one per app: nothing global, so
 * apps built side by side in one process do not share figures). Label values are bounded: a
 * function name is counted only once the caller was allowed to run it (so only registered
 * functions appear), statuses and reasons are enums.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly invocations = new Counter({
    name: "fngw_invocations_total",
    help: "Invocations that ended, by function and status (rejected included).",
    labelNames: ["function", "status"] as const,
    registers: [this.registry],
  });
  private readonly duration = new Histogram({
    name: "fngw_invocation_duration_seconds",
    help: "Wall-clock time of invocations that ran, by function.",
    labelNames: ["function"] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly rejections = new Counter({
    name: "fngw_rejections_total",
    help: "Invocations refused without running, by reason.",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  private readonly streams = new Counter({
    name: "fngw_streamed_invocations_total",
    help: "Invocations answered as a stream, by function and mode: `body` (the function's body as it wrote it), `events` (live output).",
    labelNames: ["function", "mode"] as const,
    registers: [this.registry],
  });
  private readonly firstBytes = new Histogram({
    name: "fngw_first_byte_seconds",
    help: "Streamed invocations: from the start of the run to the first byte of the function's answer, by function.",
    labelNames: ["function"] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly logWrites = new Histogram({
    name: "fngw_log_write_seconds",
    help: "Time to write an invocation's log row: its start and its finish.",
    labelNames: ["write"] as const,
    buckets: LOG_WRITE_BUCKETS,
    registers: [this.registry],
  });

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    if (sources.node !== undefined) this.registry.setDefaultLabels({ node: sources.node });
    new Gauge({
      name: "fngw_invocations_in_flight",
      help: "Invocations admitted and not yet answered (waiting for a slot or running).",
      registers,
      collect() {
        this.set(sources.inFlight());
      },
    });
    new Gauge({
      name: "fngw_queue_depth",
      help: "Admitted invocations waiting for a sandbox slot.",
      registers,
      collect() {
        this.set(sources.health().queued ?? 0);
      },
    });
    new Gauge({
      name: "fngw_standby_interpreters",
      help: "Interpreters started ahead of their invocations and ready to take one, by runtime.",
      labelNames: ["runtime"] as const,
      registers,
      collect() {
        const byRuntime = sources.health().standby_by_runtime ?? {};
        for (const runtime of INTERPRETERS) this.set({ runtime }, byRuntime[runtime] ?? 0);
      },
    });
    const databaseBytes = sources.databaseBytes;
    if (databaseBytes) {
      new Gauge({
        name: "fngw_database_bytes",
        help: "The database: `file` is its size on disk (SQLite: the file and write-ahead log), `used` what is in use (SQLite: pages; PostgreSQL: the log).",
        labelNames: ["kind"] as const,
        registers,
        async collect() {
          const { file, used } = await databaseBytes();
          this.set({ kind: "file" }, file);
          this.set({ kind: "used" }, used);
        },
      });
    }
    const jobQueue = sources.jobQueue;
    if (jobQueue) {
      new Gauge({
        name: "fngw_job_queue",
        help: "Asynchronous invocations waiting or running on every gateway (`jobs`), and the bytes of their requests (`bytes`): what ASYNC_QUEUE_MAX_JOBS and ASYNC_QUEUE_MAX_MB bound.",
        labelNames: ["kind"] as const,
        registers,
        async collect() {
          const { jobs, bytes } = await jobQueue();
          this.set({ kind: "jobs" }, jobs);
          this.set({ kind: "bytes" }, bytes);
        },
      });
    }
    const jobsRunning = sources.jobsRunning;
    if (jobsRunning) {
      new Gauge({
        name: "fngw_jobs_running",
        help: "Asynchronous invocations this gateway runs now (at most ASYNC_MAX_CONCURRENCY).",
        registers,
        collect() {
          this.set(jobsRunning());
        },
      });
    }
    collectDefaultMetrics({ register: this.registry });
  }

  /** An invocation ended (ran or was refused); `durationMs` is its run's, null when it did not run. */
  invocationEnded(functionName: string, status: EndStatus, durationMs: number | null): void {
    this.invocations.inc({ function: functionName, status });
    if (status !== "rejected" && durationMs !== null) this.duration.observe({ function: functionName }, durationMs / 1000);
  }

  /** An invocation's answer is streamed (its end is counted by `invocationEnded` as any other's). */
  streamed(functionName: string, mode: "body" | "events"): void {
    this.streams.inc({ function: functionName, mode });
  }

  /** A streamed invocation's time to first byte. */
  firstByte(functionName: string, ms: number | null): void {
    if (ms !== null) this.firstBytes.observe({ function: functionName }, ms / 1000);
  }

  rejected(reason: RejectionReason): void {
    this.rejections.inc({ reason });
  }

  /** Records how long a log write took (its caller times it: the end's write is asynchronous). */
  observeLogWrite(write: "start" | "finish", seconds: number): void {
    this.logWrites.observe({ write }, seconds);
  }

  /** The text exposition and its content type. */
  async expose(): Promise<{ text: string; contentType: string }> {
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}

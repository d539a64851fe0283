import { cutHeadAndTail } from "./output.js";
import type { DeniedSyscall } from "./runner.js";
import type { EndStatus, InvocationStatus } from "./statuses.js";

/**
 * The invocation log's vocabulary: what a row holds, what is known when an invocation starts and
 * when it ends, and how the log is queried. The stores of both engines, the HTTP layer and the
 * job runner speak it.
 */

/** What started an invocation: a caller waiting on HTTP, an async job, or a schedule's tick. */
export const TRIGGERS = ["http", "async", "schedule"] as const;
export type Trigger = (typeof TRIGGERS)[number];

export type { DeniedSyscall } from "./runner.js";

/** A row of the log. Times are epoch ms; `seq` is the row's key in start order, `finishedSeq` its place in finish order. */
export interface InvocationRow {
  seq: number;
  /** The public, time-ordered id (UUIDv7). */
  id: string;
  functionName: string;
  version: number;
  /** The gateway (node id) that ran it. */
  node: string;
  trigger: Trigger;
  /** 1 for the first attempt of a job (and for every synchronous call), 2 for its first retry, … */
  attempt: number;
  /** The async job this attempt belongs to; null for a synchronous call. */
  jobId: string | null;
  startedAt: number;
  durationMs: number | null;
  /** Milliseconds from the start to the first byte of the answer sent. */
  firstByteMs: number | null;
  exitCode: number | null;
  signal: string | null;
  status: InvocationStatus;
  httpStatus: number | null;
  requestBytes: number;
  responseBytes: number | null;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** Bytes of output left out of what is stored (cut in the middle: the head and the tail are kept, `core/output.ts`). */
  stdoutDroppedBytes: number;
  stderrDroppedBytes: number;
  error: string | null;
  /** The call that ended the run (status `forbidden`), as the kernel named it. */
  blockedSyscall: string | null;
  /** Calls refused softly (EPERM) during the run, as the kernel named them. */
  deniedSyscalls: DeniedSyscall[] | null;
  method: string;
  path: string;
  finishedSeq: number | null;
}

/** A row as listed: everything but the stdout/stderr bodies. */
export type InvocationSummary = Omit<InvocationRow, "stdout" | "stderr">;

/** What is known when an invocation starts; the row is written with status `running`. */
export interface InvocationStart {
  id: string;
  functionName: string;
  version: number;
  requestBytes: number;
  method: string;
  path: string;
  trigger?: Trigger;
  attempt?: number;
  jobId?: string | null;
}

/** How an invocation ended. */
export interface InvocationEnd {
  status: EndStatus;
  durationMs: number | null;
  exitCode: number | null;
  signal: string | null;
  httpStatus: number | null;
  responseBytes: number | null;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  error: string | null;
  blockedSyscall: string | null;
  firstByteMs?: number | null;
  deniedSyscalls?: DeniedSyscall[] | null;
}

/** An end as stored: output cut to the log's cap, and how much was left out. */
export interface StoredEnd extends InvocationEnd {
  stdoutDroppedBytes: number;
  stderrDroppedBytes: number;
}

export interface InvocationFilter {
  functionName?: string;
  status?: InvocationStatus;
  /** Inclusive lower bound on started_at (epoch ms). */
  since?: number;
  /** Exclusive upper bound on started_at (epoch ms). */
  until?: number;
  /** Only rows older than this key (the cursor). */
  beforeSeq?: number;
  /** Only the attempts of this job. */
  jobId?: string;
  /** Instead: only rows that finished after this finish key, oldest first (`?after=`). */
  afterFinishedSeq?: number;
  limit: number;
}

export interface InvocationPage {
  items: InvocationSummary[];
  /** Key of the last item when more rows follow, else null. */
  nextBeforeSeq: number | null;
  /** With afterFinishedSeq: whether more rows follow the last item already. */
  more: boolean;
}

export interface InvocationStats {
  count: number;
  byStatus: Record<InvocationStatus, number>;
  durationMs: { p50: number | null; p95: number | null; p99: number | null; max: number | null; mean: number | null };
}

/** The end fields of an invocation that never ran: no process, no output, no refused call. */
export const NO_OUTPUT = {
  exitCode: null,
  signal: null,
  stdout: "",
  stderr: "",
  stdoutTruncated: false,
  stderrTruncated: false,
  blockedSyscall: null,
} as const;

/** Message stored on rows that were still running when their gateway stopped. */
export const INTERRUPTED_MESSAGE = "the gateway stopped while this invocation ran";

/** Message stored on rows whose gateway stopped answering its heartbeat. */
export const NODE_LOST_MESSAGE = "the gateway running this invocation stopped answering (its node lease ran out)";

/**
 * Text as the log stores it: NUL (U+0000) becomes U+FFFD, as invalid bytes do. PostgreSQL's text
 * cannot hold NUL at all, and a function decides what its output and its error messages contain;
 * both engines store the same.
 */
export const storableText = (text: string): string => (text.includes("\0") ? text.replaceAll("\0", "\uFFFD") : text);

/** An end as the log stores it: output cut to `maxOutputBytes` each (its head and its tail: `output.ts`), text storable. */
export function storedEnd(end: InvocationEnd, maxOutputBytes: number): StoredEnd {
  const stdout = cutHeadAndTail(storableText(end.stdout), maxOutputBytes);
  const stderr = cutHeadAndTail(storableText(end.stderr), maxOutputBytes);
  return {
    ...end,
    error: end.error === null ? null : storableText(end.error),
    stdout: stdout.text,
    stderr: stderr.text,
    stdoutTruncated: end.stdoutTruncated || stdout.droppedBytes > 0,
    stderrTruncated: end.stderrTruncated || stderr.droppedBytes > 0,
    stdoutDroppedBytes: stdout.droppedBytes,
    stderrDroppedBytes: stderr.droppedBytes,
  };
}

import { z } from "@hono/zod-openapi";
import { type InvocationSummary, TRIGGERS } from "../../core/invocations.js";
import { INVOCATION_STATUSES } from "../../core/statuses.js";
import { FunctionNameSchema, isoTime } from "../schemas.js";

// The wire shape of an invocation log row: the log's pages, one invocation, the live stream, a job's attempts.

export const InvocationSchema = z
  .object({
    id: z.string().openapi({ example: "0193b6c4-2f1e-7c3a-9d7e-5a1b2c3d4e5f" }),
    function: FunctionNameSchema,
    version: z.number().int(),
    node: z.string().openapi({ description: "The gateway (node id) that ran it" }),
    trigger: z.enum(TRIGGERS).openapi({ description: "http: a caller waited on it; async: a queued job; schedule: a schedule's tick" }),
    attempt: z.number().int().openapi({ description: "1 for a first attempt, 2 for its first retry, …" }),
    status: z.enum(INVOCATION_STATUSES),
    http_status: z.number().int().nullable(),
    started_at: z.string(),
    duration_ms: z.number().nullable(),
    first_byte_ms: z.number().nullable().openapi({ description: "Milliseconds from the start to the first byte of the answer" }),
    exit_code: z.number().int().nullable(),
    signal: z.string().nullable(),
    request_bytes: z.number().int(),
    response_bytes: z.number().int().nullable(),
    stdout_truncated: z.boolean(),
    stderr_truncated: z.boolean(),
    stdout_dropped_bytes: z.number().int().openapi({ description: "Bytes of stdout not stored (LOG_OUTPUT_MAX_BYTES)" }),
    stderr_dropped_bytes: z.number().int(),
    error: z.string().nullable(),
    blocked_syscall: z.string().nullable(),
    denied_syscalls: z
      .array(z.object({ name: z.string(), count: z.number().int() }))
      .nullable()
      .openapi({ description: "System calls the sandbox refused with EPERM during the run, as the kernel named them" }),
    method: z.string(),
    path: z.string(),
  })
  .openapi("Invocation");

export const InvocationDetailSchema = InvocationSchema.extend({
  stdout: z.string().openapi({ description: "UTF-8 (invalid bytes replaced), capped at OUTPUT_CAP_BYTES" }),
  stderr: z.string(),
}).openapi("InvocationDetail");

export function invocationJson(row: InvocationSummary): z.infer<typeof InvocationSchema> {
  return {
    id: row.id,
    function: row.functionName,
    version: row.version,
    node: row.node,
    trigger: row.trigger,
    attempt: row.attempt,
    status: row.status,
    http_status: row.httpStatus,
    started_at: isoTime(row.startedAt),
    duration_ms: row.durationMs,
    first_byte_ms: row.firstByteMs,
    exit_code: row.exitCode,
    signal: row.signal,
    request_bytes: row.requestBytes,
    response_bytes: row.responseBytes,
    stdout_truncated: row.stdoutTruncated,
    stderr_truncated: row.stderrTruncated,
    stdout_dropped_bytes: row.stdoutDroppedBytes,
    stderr_dropped_bytes: row.stderrDroppedBytes,
    error: row.error,
    blocked_syscall: row.blockedSyscall,
    denied_syscalls: row.deniedSyscalls,
    method: row.method,
    path: row.path,
  };
}

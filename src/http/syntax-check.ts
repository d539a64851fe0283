import { log } from "../core/log.js";
import type { Runner } from "../core/runner.js";
import type { Runtime } from "../core/runtimes.js";
import { ApiError } from "./errors.js";

export type CheckSyntax = Runner["checkSyntax"];

/** Refuses code that does not parse, with the interpreter's message, line and column; fails closed when the check cannot answer. */
export async function requireValidSyntax(checkSyntax: CheckSyntax, runtime: Runtime, code: string): Promise<void> {
  let problem: Awaited<ReturnType<CheckSyntax>>;
  try {
    problem = await checkSyntax(runtime, code);
  } catch (err) {
    log.error({ err }, "the syntax check failed");
    throw new ApiError(503, "unavailable", "the syntax check could not run; the function was not stored, retry later");
  }
  if (!problem) return;
  const place = problem.line === null ? "" : ` at line ${problem.line}${problem.column === null ? "" : `, column ${problem.column}`}`;
  throw new ApiError(400, "syntax_error", `code: ${problem.message}${place}`, {}, { line: problem.line, column: problem.column });
}

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
  // JavaScript takes a NUL inside a string literal; PostgreSQL's text cannot hold one, and no engine stores what another cannot.
  const nul = code.indexOf("\0");
  if (!problem && nul !== -1) {
    const before = code.slice(0, nul).split("\n");
    problem = {
      line: before.length,
      column: before.at(-1)!.length + 1,
      message: "the code contains a NUL character (U+0000); write it as \\0 or \\u0000",
    };
  }
  if (!problem) return;
  const place = problem.line === null ? "" : ` at line ${problem.line}${problem.column === null ? "" : `, column ${problem.column}`}`;
  throw new ApiError(400, "syntax_error", `code: ${problem.message}${place}`, {}, { line: problem.line, column: problem.column });
}

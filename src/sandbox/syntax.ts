import { execFile } from "node:child_process";
import type { SyntaxProblem } from "../core/runner.js";
import type { InterpreterKind } from "../core/runtimes.js";
import type { Interpreters } from "./binaries.js";

/**
 * Checks a function's syntax at registration, in a child process of the real interpreter, so the
 * answer is the interpreter's own (its message, line and column) and not a guess.
 *
 * Why a parse-only child, not a sandbox slot: the check never runs the code. Python's
 * `compile(code, "<function>", "exec")` and Node's `--check` only parse (and Python compiles to
 * bytecode): no statement executes, no import is resolved or loaded. What remains is the parser
 * itself facing hostile input, so the child is still given nothing: the source on stdin only, an
 * empty environment, `/` as its directory, no privileges (Node is started as nobody; Python,
 * whose binary may live under a root-only directory, drops to nobody and caps its memory and CPU
 * time before it reads the source), and a deadline after which it is killed. Taking a sandbox
 * slot would make registrations compete with invocations for slots, for no gain in what the
 * child can reach.
 */

const NOBODY = 65534;
const CHECK_TIMEOUT_MS = 5000;
/** A whole long source line can come back in Node's report; its first lines are all that is read. */
const MAX_REPORT_BYTES = 16 * 1024 * 1024;

export class SyntaxCheckError extends Error {
  override name = "SyntaxCheckError";
}

const PYTHON_CHECK = `
import json, os, resource, sys
source = sys.stdin.buffer.read()
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
resource.setrlimit(resource.RLIMIT_CPU, (5, 5))
if os.getuid() == 0:  # a gateway runs as root; elsewhere (the unit tests) the caller is unprivileged already
    os.setgroups([])
    os.setgid(${NOBODY})
    os.setuid(${NOBODY})
try:
    compile(source, "<function>", "exec", dont_inherit=True)
    print(json.dumps(None))
except SyntaxError as e:
    place = lambda n: n if isinstance(n, int) and n > 0 else None  # a decoding error names line 0, column -1
    print(json.dumps({"line": place(e.lineno), "column": place(e.lineno) and place(e.offset), "message": f"{type(e).__name__}: {e.msg}"}))
except (ValueError, MemoryError, RecursionError) as e:
    print(json.dumps({"line": None, "column": None, "message": f"{type(e).__name__}: {e}"}))
`;

/** The same signals the Node prescript uses to load a function as an ES module rather than CommonJS. */
const MODULE_SYNTAX =
  /Cannot use import statement outside a module|Unexpected token 'export'|Cannot use 'import\.meta' outside a module|await is only valid in async functions and the top level bodies of modules/;

function run(
  file: string,
  args: string[],
  source: string,
  asNobody: boolean,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        env: {},
        cwd: "/",
        timeout: CHECK_TIMEOUT_MS,
        killSignal: "SIGKILL",
        maxBuffer: MAX_REPORT_BYTES,
        // Only root can switch; an unprivileged caller (the unit tests) is unprivileged already.
        ...(asNobody && process.getuid?.() === 0 ? { uid: NOBODY, gid: NOBODY } : {}),
      },
      (error, stdout, stderr) => {
        if (error && (error.killed || error.signal)) {
          reject(new SyntaxCheckError(`the syntax check did not finish within ${CHECK_TIMEOUT_MS} ms`));
        } else if (error && typeof error.code !== "number") {
          reject(new SyntaxCheckError(`the syntax check could not run: ${error.message}`));
        } else {
          resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
        }
      },
    );
    child.stdin?.on("error", () => {}); // a child that died early: its exit says why
    child.stdin?.end(source);
  });
}

async function checkPython(binary: string, code: string): Promise<SyntaxProblem | null> {
  const { code: exit, stdout, stderr } = await run(binary, ["-I", "-S", "-B", "-c", PYTHON_CHECK], code, false);
  if (exit !== 0) throw new SyntaxCheckError(`the Python syntax check failed: ${stderr.trim().split("\n").at(-1) ?? `exit ${exit}`}`);
  return JSON.parse(stdout) as SyntaxProblem | null;
}

/** Node's report of a syntax error: `[stdin]:LINE`, the line, a caret under the column, a blank line, `SyntaxError: ...`. */
function parseNodeReport(stderr: string): SyntaxProblem {
  const lines = stderr.split("\n");
  const line = /^\[stdin\]:(\d+)$/.exec(lines[0] ?? "")?.[1];
  const caret = lines[2]?.indexOf("^") ?? -1;
  const message = lines.find((l) => /^\w*Error: /.test(l)) ?? "SyntaxError";
  return { line: line ? Number(line) : null, column: line && caret >= 0 ? caret + 1 : null, message };
}

async function checkNode(binary: string, code: string): Promise<SyntaxProblem | null> {
  // As the prescript loads it: CommonJS first, an ES module when the source only parses as one.
  let problem: SyntaxProblem | null = null;
  for (const inputType of ["commonjs", "module"]) {
    const { code: exit, stderr } = await run(binary, ["--no-warnings", `--input-type=${inputType}`, "--check"], code, true);
    if (exit === 0) return null;
    problem = parseNodeReport(stderr);
    if (!problem.message.startsWith("SyntaxError") && problem.line === null) {
      throw new SyntaxCheckError(`the Node syntax check failed: ${stderr.trim().split("\n").at(-1) ?? `exit ${exit}`}`);
    }
    if (inputType === "commonjs" && !MODULE_SYNTAX.test(problem.message)) return problem;
  }
  return problem;
}

/** The syntax problem of `code` in `runtime`, or null when it parses. Rejects with SyntaxCheckError when the check cannot give an answer. */
export function checkSyntax(interpreters: Interpreters, runtime: InterpreterKind, code: string): Promise<SyntaxProblem | null> {
  return runtime === "python" ? checkPython(interpreters.python.binary, code) : checkNode(interpreters.node.binary, code);
}

// Longer than most files: pip's and npm's runs share the confinement, the limits and the reading
// of their failures into one clear message each, which is most of the file.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { satisfies } from "@renovatebot/pep440";
import type { InterpreterKind } from "../core/runtimes.js";
import type { SlotCgroup } from "../sandbox/cgroups/setup.js";
import { killStrayProcesses } from "../sandbox/slots.js";
import type { Confinement } from "./confine.js";
import { checkNpmLock, LockError, pipPins } from "./lock.js";
import { canonicalPythonName, type PackageSpec } from "./spec.js";

// One install: pip or npm, run as the installers' own unprivileged uid, with a minimal
// environment, in a new process group, under a time limit and (when cgroups are usable) a
// memory limit, writing only its staging directory. Package code is never run: pip takes
// wheels only and compiles nothing, npm runs no lifecycle script.

export interface InstallerTools {
  /** The real Python binary the sandbox runs (never a shim): wheels must match it. */
  pythonBinary: string;
  /** The Node binary, and npm's entry script run with it. */
  nodeBinary: string;
  npmCli: string;
  /** Runs a command as the installers' uid in a mount namespace that can reach the above. */
  confinement: Confinement;
}

export interface InstallLimits {
  uid: number;
  timeoutMs: number;
  memoryMb: number;
  outputCapBytes: number;
}

export interface InstallJob {
  runtime: InterpreterKind;
  packages: PackageSpec[];
  /** Owned by the installers' uid: holds `tree/` (the result) and `home/` (HOME and caches). */
  stagingDir: string;
  /** A lock another install resolved (`lock.ts`): installed exactly, with no resolution; null resolves `packages`. */
  lock: string | null;
  cgroup: SlotCgroup | null;
}

export interface InstallOutcome {
  ok: boolean;
  /** A one-line reason when not ok. */
  error: string | null;
  /** The installer's stdout and stderr together, bounded (the tail is kept). */
  output: string;
  /** `name==version` lines (Python) or package-lock.json (Node); null when not ok. */
  lock: string | null;
}

/** Runs one install to its end; never throws for a failed install, only for a broken host. */
export async function runInstall(tools: InstallerTools, limits: InstallLimits, job: InstallJob): Promise<InstallOutcome> {
  const tree = path.join(job.stagingDir, "tree");
  const home = path.join(job.stagingDir, "home");
  const env = installerEnv(home);
  const run = (args: string[], binary: string) =>
    runConfined(tools.confinement.wrap(limits.uid, [binary, ...args]), { cwd: tree, env, limits, cgroup: job.cgroup });

  if (job.runtime === "python") {
    let requirements: string[];
    try {
      // From a lock: exactly its pins, and nothing they would pull in (the lock lists that too).
      requirements = job.lock === null ? ["--", ...job.packages.map((p) => p.spec)] : ["--no-deps", "--", ...pipPins(job.lock)];
    } catch (error) {
      if (error instanceof LockError) return { ok: false, error: error.message, output: "", lock: null };
      throw error;
    }
    const pip = [tools.pythonBinary, "-I", "-m", "pip"];
    const installed = await run(
      [
        ...pip.slice(1),
        "install",
        "--only-binary=:all:",
        "--no-compile",
        "--target",
        tree,
        "--disable-pip-version-check",
        "--no-input",
        "--no-cache-dir",
        ...requirements,
      ],
      pip[0]!,
    );
    if (!installed.ok)
      return {
        ok: false,
        error:
          job.lock === null
            ? await explainPipFailure(installed, job.packages, (args) => run([...pip.slice(1), ...args], pip[0]!))
            : pipErrors(installed),
        output: installed.output,
        lock: null,
      };
    // The jail cannot write bytecode, so it is compiled here (compiling runs no package code);
    // unchecked-hash: the sealed tree never changes, so no source timestamp need match.
    // A file that does not compile (e.g. Python 2 test data) only stays uncompiled.
    const compiled = await run(
      [...pip.slice(1, 2), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", tree],
      pip[0]!,
    );
    if (!compiled.ok && !compiled.reason.startsWith("the installer exited"))
      return { ok: false, error: compiled.reason, output: installed.output + compiled.output, lock: null };
    const frozen = await run([...pip.slice(1), "list", "--path", tree, "--format=freeze", "--disable-pip-version-check"], pip[0]!);
    if (!frozen.ok)
      return {
        ok: false,
        error: `listing the installed versions failed: ${frozen.reason}`,
        output: installed.output + frozen.output,
        lock: null,
      };
    return { ok: true, error: null, output: installed.output, lock: frozen.stdout };
  }

  // The manifest is the gateway's own: dependencies only, no scripts, private.
  const dependencies = Object.fromEntries(job.packages.map((p) => [p.name, p.spec.slice(p.name.length + 1)]));
  fs.writeFileSync(path.join(tree, "package.json"), `${JSON.stringify({ name: "fngw-packages", private: true, dependencies }, null, 2)}\n`);
  if (job.lock !== null) {
    // From a lock: `npm ci` installs exactly it (and fails if it does not match the manifest).
    try {
      checkNpmLock(job.lock);
    } catch (error) {
      if (error instanceof LockError) return { ok: false, error: error.message, output: "", lock: null };
      throw error;
    }
    fs.writeFileSync(path.join(tree, "package-lock.json"), job.lock);
  }
  const installed = await run(
    [
      tools.npmCli,
      job.lock === null ? "install" : "ci",
      "--ignore-scripts",
      "--no-audit",
      "--no-fund",
      "--omit=dev",
      "--no-update-notifier",
      "--loglevel=warn",
    ],
    tools.nodeBinary,
  );
  if (!installed.ok) return { ok: false, error: explainNpmFailure(installed), output: installed.output, lock: null };
  const lock = fs.readFileSync(path.join(tree, "package-lock.json"), "utf8");
  return { ok: true, error: null, output: installed.output, lock };
}

/** The installer's whole environment: nothing of the gateway's (no token, no settings). */
export function installerEnv(home: string): Record<string, string> {
  return {
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HOME: home,
    TMPDIR: home,
    LANG: "C.UTF-8",
    PIP_NO_CACHE_DIR: "1",
    npm_config_cache: path.join(home, ".npm"),
    // npm trusts the host's CA store, as a distribution's Node does: the functions' Node (the
    // registry's build) carries only its own bundle, and a host behind a TLS-inspecting proxy
    // adds the proxy's CA to the store.
    NODE_USE_SYSTEM_CA: "1",
  };
}

interface ProcessResult {
  ok: boolean;
  /** Why it failed: exit code, signal, time limit or memory limit. */
  reason: string;
  stdout: string;
  output: string;
}

async function runConfined(
  command: string[],
  options: { cwd: string; env: Record<string, string>; limits: InstallLimits; cgroup: SlotCgroup | null },
): Promise<ProcessResult> {
  const { limits, cgroup } = options;
  cgroup?.setMemoryLimit(limits.memoryMb);
  const oomBefore = cgroup?.oomKills() ?? 0;
  // detached: a process group of its own, so the time limit kills pip's or npm's children too.
  // Started as root (the namespace needs it); the confinement drops to the uid before exec.
  const child = spawn(command[0]!, command.slice(1), {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (child.pid !== undefined) cgroup?.join(child.pid);
  const output = new BoundedText(limits.outputCapBytes);
  const stdout = new BoundedText(4 * 2 ** 20);
  child.stdout.on("data", (chunk: Buffer) => {
    output.push(chunk);
    stdout.push(chunk);
  });
  child.stderr.on("data", (chunk: Buffer) => output.push(chunk));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid);
  }, limits.timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.on("error", (error) => {
      output.push(Buffer.from(`${error.message}\n`));
      resolve([null, null]);
    });
    child.on("close", (exitCode, exitSignal) => resolve([exitCode, exitSignal]));
  });
  clearTimeout(timer);
  // Nothing the installer started may outlive it: its group, its cgroup, its uid.
  killGroup(child.pid);
  cgroup?.killAll();
  killStrayProcesses([{ uid: limits.uid }]);
  const oomKilled = cgroup !== null && cgroup.oomKills() > oomBefore;
  const reason = timedOut
    ? `the install took longer than ${limits.timeoutMs} ms and was stopped`
    : oomKilled
      ? `the install ran out of memory (${limits.memoryMb} MB)`
      : code === 0
        ? ""
        : signal
          ? `the installer was killed by ${signal}`
          : `the installer exited with code ${code}`;
  return { ok: reason === "", reason, stdout: stdout.text(), output: output.text() };
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // the group is gone already
  }
}

/** pip says the same for a missing package, an unmatched constraint and a source-only one; the index tells them apart. */
async function explainPipFailure(
  result: ProcessResult,
  packages: PackageSpec[],
  pip: (args: string[]) => Promise<ProcessResult>,
): Promise<string> {
  if (!result.reason.startsWith("the installer exited")) return result.reason; // time, memory, signal
  const unsatisfied = /Could not find a version that satisfies the requirement ([A-Za-z0-9._-]+)/.exec(result.output);
  if (unsatisfied) {
    const name = canonicalPythonName(unsatisfied[1]!);
    // Lists every release, source-only ones included; reads the index, runs no package code.
    const listed = await pip(["index", "versions", name, "--disable-pip-version-check", "--no-input"]);
    if (/No matching distribution found/.test(listed.output)) return `${name}: no such package on the package index`;
    const available = (/Available versions: (.*)/.exec(listed.output)?.[1] ?? "")
      .split(",")
      .map((v) => v.trim())
      .filter(Boolean);
    const constraint = packages.find((p) => p.name === name)?.spec.replace(/^[a-z0-9-]+(\[[^\]]*\])?/, "") ?? "";
    if (listed.ok && constraint !== "" && !available.some((version) => satisfies(version, constraint))) {
      return `${name}: no release matches ${constraint}`;
    }
    if (listed.ok) {
      return `${name} has no wheel for this Python and platform, only a source distribution, which needs a build step; packages that need building are not supported`;
    }
  }
  return pipErrors(result);
}

/** pip's own ERROR lines (the first three), else why the process failed. */
function pipErrors(result: ProcessResult): string {
  const errors = result.output.split("\n").filter((line) => line.startsWith("ERROR:"));
  return errors.length > 0 ? errors.slice(0, 3).join(" ").slice(0, 500) : result.reason;
}

function explainNpmFailure(result: ProcessResult): string {
  if (!result.reason.startsWith("the installer exited")) return result.reason; // time, memory, signal
  const missing = /404\s+'?([^'\s]+)'? is not in this registry|404 Not Found - GET \S+\/([^/\s]+)(?:\s|$)/.exec(result.output);
  if (missing) return `${decodeURIComponent(missing[1] ?? missing[2]!)}: no such package in the npm registry`;
  if (/ETARGET/.test(result.output)) {
    const line = /No matching version found for (\S+)/.exec(result.output);
    return line ? `no release matches ${line[1]}` : "no release matches a constraint";
  }
  const errors = result.output.split("\n").filter((line) => /^npm (error|ERR!)/.test(line));
  return errors.length > 0 ? errors.slice(0, 3).join(" ").slice(0, 500) : result.reason;
}

/** Keeps the last `cap` bytes of a stream (errors come at the end), and says how much was dropped. */
class BoundedText {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = 0;
  constructor(private readonly cap: number) {}
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.cap && this.chunks.length > 0) {
      const excess = this.size - this.cap;
      const first = this.chunks[0]!;
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
        this.dropped += first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
        this.dropped += excess;
      }
    }
  }
  text(): string {
    const body = Buffer.concat(this.chunks).toString("utf8");
    return this.dropped > 0 ? `[${this.dropped} earlier bytes dropped]\n${body}` : body;
  }
}

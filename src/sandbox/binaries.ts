import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** What the jail must provide for Python to import its standard library lazily after the lock. */
export interface PythonInstall {
  /** The real interpreter binary (never a shim such as pyenv's). */
  binary: string;
  version: string;
  /** Directories of the standard library (lib-dynload included) to bind read-only at the same path. */
  libraryDirs: string[];
  /** Shared libraries that lib-dynload modules open, as ldd resolves them. */
  sharedLibraries: string[];
}

export interface NodeInstall {
  binary: string;
  version: string;
  /** native/build/fngw-exec: starts the sandboxed Node with io_uring_setup refused (native/launcher/fngw-exec.c). */
  launcher: string;
  /** koffi's entry file; loaded by the prescript before the lock, from the host. */
  koffiPath: string;
}

export interface Interpreters {
  python: PythonInstall;
  node: NodeInstall;
}

// The system libraries a manylinux wheel may link against without bundling them (PEP 600's
// list, display libraries left out) plus zlib, which numpy's bundled libgfortran opens:
// copied into the jail so that binary packages (docs/packages.md) load there.
const WHEEL_LIBRARIES = ["libstdc++.so.6", "libgcc_s.so.1", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0", "libz.so.1"];

// Extension modules that need a display or a terminal; their libraries stay out of the jail.
const SKIPPED_MODULES = /^(_tkinter|_curses|_curses_panel|readline)\./;

const PYTHON_PROBE = `
import importlib.util, json, os, sys, sysconfig
paths = [p for p in sys.path if p]
print(json.dumps({"binary": sys.executable, "version": sys.version.split()[0],
                  "stdlib": sysconfig.get_path("stdlib"), "paths": paths,
                  "bytecode": os.path.exists(importlib.util.cache_from_source(json.__file__))}))
`;

// Inside the jail Python cannot write bytecode, so a standard library installed without it
// (e.g. with PYTHONDONTWRITEBYTECODE set) would be compiled from source at every import.
const PYTHON_COMPILE_STDLIB = `
import compileall, re, sys, sysconfig
skip = re.compile(r"/(test|tests|idlelib|tkinter|turtledemo|lib2to3)/")
sys.exit(0 if compileall.compile_dir(sysconfig.get_path("stdlib"), quiet=2, workers=0, rx=skip) else 1)
`;

/**
 * The Node that runs functions unless NODE_BIN says otherwise: Node 24 LTS from the registry's
 * node-linux-<arch> package, pinned by runtimes/node/package-lock.json and installed by
 * scripts/setup.sh, whatever Node runs the gateway.
 */
/** The launcher of sandboxed Node interpreters, built with the library by scripts/build-native.sh. */
export const NODE_LAUNCHER = fileURLToPath(new URL("../../native/build/fngw-exec", import.meta.url));

export const FUNCTION_NODE_BINARY = fileURLToPath(
  new URL(`../../runtimes/node/node_modules/node-linux-${process.arch}/bin/node`, import.meta.url),
);

/** Resolves the real interpreters once at start-up; spawning them later costs no lookup. `nodeBin` defaults to FUNCTION_NODE_BINARY. */
export function resolveInterpreters(pythonBin: string, nodeBin: string | undefined): Interpreters {
  return { python: resolvePython(pythonBin), node: resolveNode(nodeBin ?? functionNode()) };
}

function functionNode(): string {
  if (!fs.existsSync(FUNCTION_NODE_BINARY)) {
    throw new Error(`the functions' Node is not installed at ${FUNCTION_NODE_BINARY}: run scripts/setup.sh (or set NODE_BIN)`);
  }
  return FUNCTION_NODE_BINARY;
}

function resolvePython(pythonBin: string): PythonInstall {
  const probe = JSON.parse(
    execFileSync(pythonBin, ["-I", "-S", "-c", PYTHON_PROBE], { encoding: "utf8", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } }),
  ) as { binary: string; version: string; stdlib: string; paths: string[]; bytecode: boolean };
  if (!probe.bytecode) execFileSync(probe.binary, ["-I", "-S", "-c", PYTHON_COMPILE_STDLIB], { stdio: "ignore", env: {} });
  const binary = fs.realpathSync(probe.binary);
  const stdlib = fs.realpathSync(probe.stdlib);
  // sys.path under -I -S: the zip (usually absent), the stdlib and lib-dynload.
  const existing = probe.paths.filter((p) => fs.existsSync(p)).map((p) => fs.realpathSync(p));
  const libraryDirs = [stdlib, ...existing.filter((p) => !isInside(p, stdlib))];
  const dynload = existing.find((p) => path.basename(p) === "lib-dynload");
  const sharedLibraries = dedupe([...(dynload ? sharedLibrariesOf(dynload) : []), ...systemLibraries(WHEEL_LIBRARIES)]).sort();
  return { binary, version: probe.version, libraryDirs: dedupe(libraryDirs), sharedLibraries };
}

function resolveNode(nodeBin: string): NodeInstall {
  const binary = fs.realpathSync(nodeBin.includes("/") ? nodeBin : which(nodeBin));
  const version = execFileSync(binary, ["--version"], { encoding: "utf8", env: {} }).trim();
  const koffiPath = createRequire(import.meta.url).resolve("koffi");
  return { binary, version, koffiPath, launcher: NODE_LAUNCHER };
}

function sharedLibrariesOf(dynloadDir: string): string[] {
  const modules = fs
    .readdirSync(dynloadDir)
    .filter((name) => name.endsWith(".so") && !SKIPPED_MODULES.test(name))
    .map((name) => path.join(dynloadDir, name));
  if (modules.length === 0) return [];
  const output = execFileSync("ldd", modules, { encoding: "utf8" });
  const libraries = new Set<string>();
  for (const match of output.matchAll(/=>\s+(\/\S+)\s+\(0x/g)) libraries.add(match[1]!);
  return [...libraries].sort();
}

/** Where the dynamic linker finds each named library on this host (those it does not know are left out). */
function systemLibraries(names: string[]): string[] {
  const cache = execFileSync("ldconfig", ["-p"], { encoding: "utf8" });
  const found: string[] = [];
  for (const name of names) {
    const escaped = name.replace(/[.+]/g, "\\$&");
    const match = new RegExp(`^\\s+${escaped} \\((?:libc6,x86-64|libc6,AArch64)[^)]*\\) => (\\S+)$`, "m").exec(cache);
    if (match) found.push(match[1]!);
  }
  return found;
}

function which(command: string): string {
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(":")) {
    const candidate = path.join(dir, command);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new Error(`${command} not found on PATH`);
}

function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative === "" || (!relative.startsWith("..") && !path.isAbsolute(relative));
}

function dedupe(paths: string[]): string[] {
  return [...new Set(paths)];
}

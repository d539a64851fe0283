import type { Runtime } from "../core/runtimes.js";
import { canonicalPythonName } from "./spec.js";

// A function that imports a package it does not list fails with the interpreter's own message;
// the gateway appends one line to the stored stderr saying what to do about it. Read from the
// stderr text, gateway-side: the sandbox's prescripts stay as they are.

const PYTHON_MISSING = /ModuleNotFoundError: No module named '([^'\s]+)'/g;
// CommonJS require: "Cannot find module 'x'"; ES import: "Cannot find package 'x' imported from ..." (ERR_MODULE_NOT_FOUND);
// an ES function without packages is imported from a data: URL, where a bare name fails as ERR_UNSUPPORTED_RESOLVE_REQUEST.
const NODE_MISSING = /Cannot find (?:module|package) '([^'\s]+)'|Failed to resolve module specifier "([^"\s]+)"/g;

/** The hint line for the first missing third-party module that the packages do not name; null when none. */
export function missingPackageHint(runtime: Runtime, stderr: string, packages: readonly string[]): string | null {
  const listed = new Set(packages.map((spec) => listedName(runtime, spec)));
  const pattern = runtime === "python" ? PYTHON_MISSING : NODE_MISSING;
  for (const match of stderr.matchAll(pattern)) {
    const found = (match[1] ?? match[2])!;
    const name = runtime === "python" ? pythonTopLevel(found) : nodePackageName(found);
    if (name === null) continue;
    const key = runtime === "python" ? canonicalPythonName(name) : name;
    if (!listed.has(key)) return `fngw: hint: '${name}' is not installed; add it to the function's packages`;
  }
  return null;
}

/** `a.b.c` → `a`; relative imports name no package. */
function pythonTopLevel(module: string): string | null {
  return module.startsWith(".") ? null : module.split(".")[0]!;
}

/** `lodash/fp` → `lodash`, `@scope/pkg/x` → `@scope/pkg`; paths, URLs and built-ins name no package. */
function nodePackageName(specifier: string): string | null {
  if (/^(?:\.|\/|[a-z]+:)/i.test(specifier)) return null;
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}

/** The package name a spec lists, in the form the hint compares (Python: PEP 503). */
function listedName(runtime: Runtime, spec: string): string {
  if (runtime === "python") return canonicalPythonName(/^\s*([A-Za-z0-9._-]+)/.exec(spec)?.[1] ?? spec);
  const trimmed = spec.trim();
  const at = trimmed.indexOf("@", 1);
  return at < 0 ? trimmed : trimmed.slice(0, at);
}

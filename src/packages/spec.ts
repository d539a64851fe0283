import { validRange } from "@renovatebot/pep440";
import npa from "npm-package-arg";
import validateNpmPackageName from "validate-npm-package-name";
import type { Runtime } from "../core/runtimes.js";

// A function version's `packages` list: registry packages by name, with version constraints,
// nothing else. Whatever could make the installer fetch from elsewhere or run an option
// (URLs, paths, VCS references, tarballs, npm aliases, pip options, environment markers) is
// refused with a message that says which entry and why (the HTTP layer answers it as a 400).
//
// Python has no maintained PEP 508 parser on npm, so a strict subset is accepted here (see
// PYTHON_REQUIREMENT) and its version specifier is checked by a PEP 440 implementation.
// Node specs are parsed by npm's own `npm-package-arg` and names by `validate-npm-package-name`.

export const MAX_PACKAGES = 32;
export const MAX_SPEC_LENGTH = 200;

/** One refused packages list; `message` names the entry and the reason. */
export class PackageSpecError extends Error {
  readonly code = "invalid_packages";
  constructor(message: string) {
    super(message);
    this.name = "PackageSpecError";
  }
}

/** A validated package: its canonical name and its spec in normalised form. */
export interface PackageSpec {
  name: string;
  spec: string;
}

/**
 * Validates a packages list for a runtime and returns it normalised: canonical names,
 * no whitespace, sorted by name, duplicates merged. Throws PackageSpecError.
 */
export function normalisePackages(runtime: Runtime, input: unknown): PackageSpec[] {
  if (!Array.isArray(input)) throw new PackageSpecError("packages must be an array of strings");
  if (input.length > MAX_PACKAGES) throw new PackageSpecError(`packages may list at most ${MAX_PACKAGES} entries (got ${input.length})`);
  const byName = new Map<string, PackageSpec>();
  input.forEach((entry: unknown, index) => {
    const where = `packages[${index}]`;
    if (typeof entry !== "string") throw new PackageSpecError(`${where} must be a string`);
    if (entry.length === 0 || entry.length > MAX_SPEC_LENGTH) {
      throw new PackageSpecError(`${where} must be 1 to ${MAX_SPEC_LENGTH} characters long`);
    }
    // Printable ASCII and plain spaces only: no newline or control character can reach an
    // installer's command line or manifest.
    if (!/^[\x20-\x7e]+$/.test(entry)) throw new PackageSpecError(`${where}: only printable ASCII characters are accepted`);
    const parsed = runtime === "python" ? parsePython(entry, where) : parseNode(entry, where);
    const earlier = byName.get(parsed.name);
    if (earlier && earlier.spec !== parsed.spec) {
      throw new PackageSpecError(`${where}: ${parsed.name} is listed twice with different constraints (${earlier.spec}, ${parsed.spec})`);
    }
    byName.set(parsed.name, parsed);
  });
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

// --- Python -------------------------------------------------------------------------------

// The accepted subset of PEP 508: `name`, optional `[extra, ...]`, optional version
// specifier (comma-separated clauses of ~= == != <= >= < >). No URL (`@`), no environment
// marker (`;`), no parenthesised specifier, no `===` (arbitrary strings), no option.
const NAME = "[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?";
const CLAUSE = "(?:~=|==|!=|<=|>=|<|>)\\s*[A-Za-z0-9.*+!_-]+";
const PYTHON_REQUIREMENT = new RegExp(
  `^\\s*(${NAME})\\s*(?:\\[\\s*(${NAME}(?:\\s*,\\s*${NAME})*)?\\s*\\])?\\s*(${CLAUSE}(?:\\s*,\\s*${CLAUSE})*)?\\s*$`,
);

/** PEP 503: lower case, runs of `-`, `_` and `.` become one `-`. */
export function canonicalPythonName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, "-");
}

function parsePython(entry: string, where: string): PackageSpec {
  const refusal = pythonRefusal(entry);
  if (refusal) throw new PackageSpecError(`${where} (${JSON.stringify(entry)}): ${refusal}`);
  const match = PYTHON_REQUIREMENT.exec(entry);
  if (!match) {
    throw new PackageSpecError(
      `${where} (${JSON.stringify(entry)}): not a requirement of the form name[extras]<constraints>, e.g. "requests==2.32.3" or "numpy>=2,<3"`,
    );
  }
  const name = canonicalPythonName(match[1]!);
  const extras = match[2] ? [...new Set(match[2].split(",").map((e) => canonicalPythonName(e.trim())))].sort() : [];
  const clauses = match[3] ? match[3].split(",").map((c) => c.replace(/\s+/g, "")) : [];
  for (const clause of clauses) {
    if (!validRange(clause))
      throw new PackageSpecError(
        `${where} (${JSON.stringify(entry)}): ${JSON.stringify(clause)} is not a valid PEP 440 version constraint`,
      );
  }
  const sortedClauses = [...new Set(clauses)].sort();
  return { name, spec: name + (extras.length ? `[${extras.join(",")}]` : "") + sortedClauses.join(",") };
}

/** The specific reason for the forms that are refused on purpose, for a clearer message. */
function pythonRefusal(entry: string): string | null {
  const text = entry.trim();
  if (text.startsWith("-")) return "pip options are not accepted; list package names only";
  if (/[;]/.test(text)) return "environment markers are not accepted";
  if (/^[a-z][a-z0-9+.-]*:/i.test(text) || text.includes("@")) return "only registry packages are accepted: no URLs or direct references";
  if (/[/\\]/.test(text)) return "only registry packages are accepted: no paths";
  if (text.includes("===")) return "arbitrary equality (===) is not accepted; use ==";
  if (/[()]/.test(text)) return "write the version constraint without parentheses, e.g. name>=1,<2";
  return null;
}

// --- Node ---------------------------------------------------------------------------------

function parseNode(entry: string, where: string): PackageSpec {
  const quoted = `${where} (${JSON.stringify(entry)})`;
  if (entry.trim().startsWith("-")) throw new PackageSpecError(`${quoted}: npm options are not accepted; list package specs only`);
  let parsed: npa.Result;
  try {
    parsed = npa(entry.trim());
  } catch (error) {
    throw new PackageSpecError(`${quoted}: ${(error as Error).message}`);
  }
  // npm-package-arg reads an invalid bare name as a tag of no package.
  const name = parsed.name ?? (parsed.registry ? entry.trim() : undefined);
  if (name !== undefined) {
    const validity = validateNpmPackageName(name);
    if (!validity.validForOldPackages) {
      const reasons = [...(validity.errors ?? []), ...(validity.warnings ?? [])].join("; ");
      throw new PackageSpecError(`${quoted}: invalid package name: ${reasons}`);
    }
  }
  if (parsed.type === "alias") throw new PackageSpecError(`${quoted}: aliases (npm:) are not accepted; name the package itself`);
  if (!parsed.registry || !parsed.name || !["version", "range", "tag"].includes(parsed.type)) {
    throw new PackageSpecError(`${quoted}: only registry packages are accepted (name or name@version-range), not a ${parsed.type} spec`);
  }
  const constraint = (parsed.fetchSpec ?? "*").trim() || "*";
  return { name: parsed.name, spec: `${parsed.name}@${constraint}` };
}

import { NAME_PATTERN } from "../schemas.js";

export interface InvocationTarget {
  name: string;
  /** The version asked for with `@N`, or null for the current one. */
  version: number | null;
  /** Path below the function, starting with `/`, percent-encoding kept. */
  path: string;
}

/** Splits `/fn/<name>[@N][/rest]`; null when the name part cannot name a function. */
export function parseTarget(pathname: string): InvocationTarget | null {
  const rest = pathname.slice("/fn/".length);
  const slash = rest.indexOf("/");
  let target: string;
  try {
    target = decodeURIComponent(slash === -1 ? rest : rest.slice(0, slash));
  } catch {
    return null;
  }
  const at = target.lastIndexOf("@");
  const name = at === -1 ? target : target.slice(0, at);
  const versionText = at === -1 ? null : target.slice(at + 1);
  if (!NAME_PATTERN.test(name)) return null;
  if (versionText !== null && !/^[1-9]\d{0,8}$/.test(versionText)) return null;
  return {
    name,
    version: versionText === null ? null : Number(versionText),
    path: slash === -1 ? "/" : rest.slice(slash),
  };
}

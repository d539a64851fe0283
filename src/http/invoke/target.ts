import { NAME_PATTERN } from "../schemas.js";

export interface InvocationTarget {
  name: string;
  /** The version asked for with `@N`, or null for the current one. */
  version: number | null;
  /** Path below the function, starting with `/`, percent-encoding kept. */
  path: string;
}

/** Splits `<prefix><name>[@N][/rest]` (`/fn/` unless given); null when the name part cannot name a function. */
export function parseTarget(pathname: string, prefix = "/fn/"): InvocationTarget | null {
  const rest = pathname.slice(prefix.length);
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

/** The URL a function is shown: the request's, with the mount's prefix put back to `/fn/` (so /api/invoke looks like /fn to it). */
export function functionUrl(url: string, prefix = "/fn/"): string {
  if (prefix === "/fn/") return url;
  const parsed = new URL(url);
  parsed.pathname = `/fn/${parsed.pathname.slice(prefix.length)}`;
  return parsed.href;
}

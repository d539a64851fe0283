/**
 * What a token may do. `admin` may do everything (token management included); `deploy` creates,
 * updates, rolls back and deletes functions and reads their definitions; `logs:read` reads the
 * invocation log and stats; `metrics:read` reads /metrics; `invoke:<name>` and `invoke:<prefix>*` call private functions.
 */
export const ROUTE_SCOPES = ["admin", "deploy", "logs:read", "metrics:read"] as const;
export type RouteScope = (typeof ROUTE_SCOPES)[number];

/** A scope as a token may carry it; the name part follows the function name pattern (a prefix may be empty: `invoke:*`). */
export const SCOPE_PATTERN = /^(admin|deploy|logs:read|metrics:read|invoke:[a-z0-9][a-z0-9_-]{0,62}|invoke:([a-z0-9][a-z0-9_-]{0,61})?\*)$/;

/** Whether scopes allow a route that needs `needed`. */
export function grants(scopes: readonly string[], needed: RouteScope): boolean {
  return scopes.includes("admin") || scopes.includes(needed);
}

/** Whether scopes allow calling the private function `name`. */
export function grantsInvoke(scopes: readonly string[], name: string): boolean {
  return scopes.some((scope) => {
    if (scope === "admin") return true;
    if (!scope.startsWith("invoke:")) return false;
    const pattern = scope.slice("invoke:".length);
    return pattern.endsWith("*") ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
  });
}

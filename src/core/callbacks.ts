import crypto from "node:crypto";
import ipaddr from "ipaddr.js";

/**
 * Callbacks: where a job's answer may be sent, and how it is signed. Pure: the resolving and the
 * sending are the job runner's (src/jobs/callbacks.ts); what is allowed is decided here.
 */

/** The header that carries the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`, as Stripe signs webhooks. */
export const SIGNATURE_HEADER = "X-Fngw-Signature";

/** Delivery attempts of one callback, and the longest a delivery may take. */
export const CALLBACK_URL_MAX_LENGTH = 2048;

/** The signature header's value for `body` sent at `unixSeconds` with `secret`. */
export function callbackSignature(secret: string, unixSeconds: number, body: Uint8Array): string {
  const mac = crypto.createHmac("sha256", secret).update(`${unixSeconds}.`).update(body).digest("hex");
  return `t=${unixSeconds},v1=${mac}`;
}

/**
 * Whether `header` signs `body` with `secret`, within `toleranceSeconds` of `nowSeconds` (what a
 * receiver checks; the tests' receiver uses it). Compared in constant time.
 */
export function verifyCallbackSignature(
  secret: string,
  header: string | null,
  body: Uint8Array,
  nowSeconds: number,
  toleranceSeconds = 300,
): boolean {
  if (!header) return false;
  const parts = new Map<string, string[]>();
  for (const item of header.split(",")) {
    const [key, value] = item.split("=", 2);
    if (key && value) parts.set(key.trim(), [...(parts.get(key.trim()) ?? []), value.trim()]);
  }
  const t = Number(parts.get("t")?.[0]);
  if (!Number.isInteger(t) || Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const expected = Buffer.from(callbackSignature(secret, t, body).split("v1=")[1]!, "hex");
  return (parts.get("v1") ?? []).some((given) => {
    const bytes = Buffer.from(given, "hex");
    return bytes.length === expected.length && crypto.timingSafeEqual(bytes, expected);
  });
}

/** A callback URL as given, checked for its form: http(s), a host, no credentials. The address is checked once resolved. */
export function parseCallbackUrl(text: string): { url: URL } | { problem: string } {
  if (text.length > CALLBACK_URL_MAX_LENGTH) return { problem: `must be at most ${CALLBACK_URL_MAX_LENGTH} characters` };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { problem: "is not a URL" };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return { problem: `must be http or https, not ${url.protocol.slice(0, -1)}` };
  if (url.username !== "" || url.password !== "") return { problem: "must not carry credentials" };
  if (url.hostname === "") return { problem: "has no host" };
  return { url };
}

/**
 * The host a URL names, as an address when it is one: the WHATWG parser has already read every
 * spelling of an IPv4 address (`0x7f000001`, `2130706433`, `0177.0.0.1`, `127.1`) as dotted
 * decimal, and an IPv6 one comes in brackets.
 */
export function literalAddress(url: URL): string | null {
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  return ipaddr.isValid(host) ? host : null;
}

/**
 * Why a callback may not go to `address`, or null when it may: only public unicast addresses. An
 * IPv4-mapped IPv6 address is judged as the IPv4 address it maps; loopback, private (RFC 1918,
 * unique-local), link-local (169.254/16, where cloud metadata answers, and fe80::/10),
 * carrier-grade NAT, unspecified, multicast, reserved, documentation and the transition ranges
 * that embed an IPv4 address (NAT64, 6to4, Teredo) are refused.
 */
export function addressProblem(address: string): string | null {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.process(address);
  } catch {
    return `${address} is not an IP address`;
  }
  const range = parsed.range();
  if (range === "unicast") return null;
  return `${address} is a ${range} address`;
}

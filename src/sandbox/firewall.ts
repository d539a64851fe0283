import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";

// Functions with `network: true` may open IPv4/IPv6 sockets; the seccomp filter cannot see
// where they connect (the address is behind a pointer). These netfilter rules, matched on
// the sandbox uids, refuse the host's own networks: its loopback (the gateway's port, any
// database listening on localhost) and link-local addresses (cloud metadata endpoints).
// A DNS server on loopback (e.g. systemd-resolved's 127.0.0.53) stays reachable on port 53.

export interface FirewallOptions {
  /** First and last sandbox uid. */
  uids: [number, number];
  /** CIDRs the sandboxes may not reach, IPv4 and IPv6 mixed. */
  blocked: string[];
}

export interface Firewall {
  /** Whether the rules are in place; false when iptables is missing or refused them. */
  readonly active: boolean;
  readonly notes: string[];
  close(): void;
}

const TOOLS = { 4: "iptables", 6: "ip6tables" } as const;

export function setupFirewall(options: FirewallOptions): Firewall {
  const notes: string[] = [];
  const installed: Array<() => void> = [];
  const [first, last] = options.uids;
  const chain = `FNGW-${first}`;
  const owner = ["-m", "owner", "--uid-owner", `${first}-${last}`];
  for (const family of [4, 6] as const) {
    const blocked = options.blocked.filter((cidr) => net.isIP(cidr.split("/")[0]!) === family);
    if (blocked.length === 0) continue;
    const tool = TOOLS[family];
    const run = (...args: string[]) => execFileSync(tool, ["-w", ...args], { stdio: ["ignore", "ignore", "pipe"] });
    try {
      removeChain(run, chain, owner); // left by an earlier gateway with the same uids
      run("-N", chain);
      for (const server of loopbackNameservers(family)) {
        for (const protocol of ["udp", "tcp"]) run("-A", chain, "-d", server, "-p", protocol, "--dport", "53", "-j", "RETURN");
      }
      for (const cidr of blocked) run("-A", chain, "-d", cidr, "-j", "REJECT");
      run("-I", "OUTPUT", "1", ...owner, "-j", chain);
      installed.push(() => removeChain(run, chain, owner));
    } catch (error) {
      notes.push(`${tool}: ${describe(error)}`);
    }
  }
  const active = installed.length > 0 && notes.length === 0;
  return {
    active,
    notes,
    close: () => {
      for (const remove of installed) remove();
    },
  };
}

function removeChain(run: (...args: string[]) => void, chain: string, owner: string[]): void {
  const attempt = (...args: string[]) => {
    try {
      run(...args);
      return true;
    } catch {
      return false;
    }
  };
  while (attempt("-D", "OUTPUT", ...owner, "-j", chain)) {
    // every jump to it, in case an earlier gateway added more than one
  }
  if (attempt("-F", chain)) attempt("-X", chain);
}

/** Nameservers of the host's resolv.conf (which the jail copies) that sit on loopback. */
function loopbackNameservers(family: 4 | 6): string[] {
  let text = "";
  try {
    text = fs.readFileSync("/etc/resolv.conf", "utf8");
  } catch {
    return [];
  }
  return [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)]
    .map((m) => m[1]!)
    .filter((ip) => net.isIP(ip) === family && (family === 4 ? ip.startsWith("127.") : ip === "::1"));
}

function describe(error: unknown): string {
  const err = error as NodeJS.ErrnoException & { stderr?: Buffer };
  if (err.code === "ENOENT") return "not installed";
  return (err.stderr?.toString().trim() || err.message).split("\n")[0]!;
}

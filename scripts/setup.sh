#!/bin/sh
# Idempotent set-up shared by `npm start` and `npm test`: dependencies and the sandbox library.
set -eu
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
sh scripts/build-native.sh
sh scripts/build-console.sh

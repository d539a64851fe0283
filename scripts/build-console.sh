#!/bin/sh
# Builds the web console (console/ → console/dist, served at /console/) when its sources, or the
# installed dependencies, are newer than the last build.
set -eu
cd "$(dirname "$0")/.."
stamp=console/dist/index.html
# src/core/output.ts: the console finds the log's dropped-bytes line with the gateway's own code.
if [ -f "$stamp" ] && [ -z "$(find console package-lock.json src/core/output.ts -path console/dist -prune -o -newer "$stamp" -type f -print | head -n 1)" ]; then
  exit 0
fi
npx vite build --config console/vite.config.ts --logLevel warn
touch "$stamp"

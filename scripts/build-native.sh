#!/bin/sh
# Builds the sandbox library (native/build/libsandbox.so, its header, and refusals.json, the
# policy's answers to the calls it refuses) and the Node launcher (native/build/fngw-exec) when
# their sources changed.
set -eu
cd "$(dirname "$0")/../native"
out=build/libsandbox.so
if [ ! -f "$out" ] || [ ! -f build/refusals.json ] || [ -n "$(find . -name '*.go' -newer "$out" -o -name '*.c' -newer "$out" -o -name '*.h' -newer "$out" -o -name go.sum -newer "$out" | grep -v '^./build/' | head -n 1)" ]; then
  echo "building $out"
  CGO_ENABLED=1 go build -trimpath -buildmode=c-shared -o "$out" ./cmd/libsandbox
  # How the gateway answers the calls the filter hands to its listener (native/README.md).
  go run ./cmd/tables -refusals > build/refusals.json.tmp && mv build/refusals.json.tmp build/refusals.json
fi
launcher=build/fngw-exec
if [ ! -f "$launcher" ] || [ launcher/fngw-exec.c -nt "$launcher" ]; then
  echo "building $launcher"
  mkdir -p build
  ${CC:-cc} -O2 -Wall -Werror -o "$launcher" launcher/fngw-exec.c
fi

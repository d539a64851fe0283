#!/bin/sh
# Builds the sandbox library (native/build/libsandbox.so and its header) when its sources changed.
set -eu
cd "$(dirname "$0")/../native"
out=build/libsandbox.so
if [ -f "$out" ] && [ -z "$(find . -name '*.go' -newer "$out" -o -name '*.c' -newer "$out" -o -name '*.h' -newer "$out" -o -name go.sum -newer "$out" | grep -v '^./build/' | head -n 1)" ]; then
  exit 0
fi
echo "building $out"
CGO_ENABLED=1 go build -trimpath -buildmode=c-shared -o "$out" ./cmd/libsandbox

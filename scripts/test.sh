#!/bin/sh
# The whole test suite: lint and formatting, types, the Go library's tests, then every vitest
# suite (unit and privileged). Needs root (the jail).
set -eu
cd "$(dirname "$0")/.."
npx biome check .
(cd native && go vet ./... && go test ./...)
npx tsc --noEmit
npx tsc -p console --noEmit
npx vitest run "$@"

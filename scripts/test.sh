#!/bin/sh
# The whole test suite: the Go library's tests, then every vitest suite. Needs root (the jail).
set -eu
cd "$(dirname "$0")/.."
(cd native && go vet ./... && go test ./...)
npx tsc --noEmit
npx tsc -p console --noEmit
npx vitest run "$@"

#!/usr/bin/env node
// Runs the TypeScript entry through tsx's ESM loader, so the command works from a clean clone
// after `npm ci` with no build step. Node resolves this file's symlinks (npm link, node_modules/.bin),
// so the import below finds the package's own src/ and node_modules.
import { register } from "tsx/esm/api";

register();
await import("../src/cli/main.ts");

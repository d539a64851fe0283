import { defineConfig } from "vitest/config";

// Two projects, chosen by folder:
// - unit: pure modules (test/unit: the wire protocol, the settings), the database, the HTTP API over
//   a scripted runner, and cgroup set-up against a stand-in tree. No root, no Go library, no
//   interpreter: runs anywhere in seconds (`npx vitest --project unit`).
// - privileged: the real sandbox (test/sandbox), the real gateway end to end (test/e2e), the fngw
//   CLI against it (test/cli) and the console and docs in Debian's Chromium (test/browser). Needs
//   root and native/build/libsandbox.so (`npx vitest --project privileged`, as root).
const UNIT = ["test/unit/**/*.test.ts", "test/db/**/*.test.ts", "test/http/**/*.test.ts", "test/cgroups/**/*.test.ts"];
const PRIVILEGED = [
  "test/sandbox/**/*.test.ts",
  "test/e2e/**/*.test.ts",
  "test/cli/**/*.test.ts",
  "test/browser/**/*.test.ts",
  "test/packages/**/*.test.ts",
];

export default defineConfig({
  test: {
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: "unit", include: UNIT } },
      { extends: true, test: { name: "privileged", include: PRIVILEGED } },
    ],
  },
});

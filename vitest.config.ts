import { configDefaults, defineConfig } from "vitest/config";

// Three projects, chosen by folder:
// - unit: pure modules (test/unit: the wire protocol, the settings), the store on SQLite
//   (test/store), the HTTP API over a scripted runner on SQLite (test/http), and cgroup set-up
//   against a stand-in tree. No root, no Go library, no interpreter but for syntax checks: runs
//   anywhere in seconds (`npx vitest --project unit`).
// - postgres: the same store and HTTP tests on a real PostgreSQL server, started for the run
//   (test/postgres-setup.ts; needs root and Debian's postgresql).
// What is one engine's own runs in that engine's project only: test/store/sqlite.test.ts in
// unit; test/store/postgres.test.ts and outage.test.ts (the server stopped and started) in postgres.
// - privileged: the real sandbox (test/sandbox), the real gateway end to end (test/e2e), several
//   gateways on one PostgreSQL (test/cluster), the fngw CLI against it (test/cli) and the console
//   and docs in Debian's Chromium (test/browser). Needs root and native/build/libsandbox.so
//   (`npx vitest --project privileged`, as root).
const ENGINE_NEUTRAL = ["test/store/**/*.test.ts", "test/http/**/*.test.ts"];
const SQLITE_ONLY = ["test/store/sqlite.test.ts"];
const POSTGRES_ONLY = ["test/store/postgres.test.ts", "test/store/outage.test.ts"];
const UNIT = ["test/unit/**/*.test.ts", ...ENGINE_NEUTRAL, "test/cgroups/**/*.test.ts"];
const PRIVILEGED = [
  "test/sandbox/**/*.test.ts",
  "test/e2e/**/*.test.ts",
  "test/cluster/**/*.test.ts",
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
      { extends: true, test: { name: "unit", include: UNIT, exclude: [...configDefaults.exclude, ...POSTGRES_ONLY] } },
      {
        extends: true,
        test: {
          name: "postgres",
          include: ENGINE_NEUTRAL,
          exclude: [...configDefaults.exclude, ...SQLITE_ONLY],
          env: { TEST_STORE: "postgres" },
          globalSetup: ["test/postgres-setup.ts"],
        },
      },
      { extends: true, test: { name: "privileged", include: PRIVILEGED } },
    ],
  },
});

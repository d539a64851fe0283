import type { TestProject } from "vitest/node";
import { startPostgres } from "../scripts/postgres.js";

// Global set-up of the `postgres` project: one throwaway server for the run; each gateway under
// test makes a database of its own on it (test/postgres.ts).

declare module "vitest" {
  export interface ProvidedContext {
    postgresUrl: string;
    postgresDataDir: string;
  }
}

export default async function setup(project: TestProject) {
  const server = await startPostgres();
  project.provide("postgresUrl", server.url);
  project.provide("postgresDataDir", server.dataDir);
  return () => server.stop();
}

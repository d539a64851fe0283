import { defineConfig } from "drizzle-kit";

// `npm run db:generate` writes SQL migrations from each engine's schema; the gateway applies them at start-up.
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/store/postgres/schema.ts",
  out: "./migrations/postgres",
});

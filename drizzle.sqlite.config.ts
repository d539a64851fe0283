import { defineConfig } from "drizzle-kit";

// `npm run db:generate` writes SQL migrations from each engine's schema; the gateway applies them at start-up.
export default defineConfig({
  dialect: "sqlite",
  schema: "./src/store/sqlite/schema.ts",
  out: "./migrations/sqlite",
});

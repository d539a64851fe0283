import { defineConfig } from "drizzle-kit";

// `npm run db:generate` writes SQL migrations from the schema; the gateway applies them at start-up.
export default defineConfig({
  dialect: "sqlite",
  schema: "./src/db/schema.ts",
  out: "./migrations",
});
